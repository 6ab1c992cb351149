"""Unseen detail: where a channel of the model's last spatial layer fires far above
anything it does on any trusted image, a patch around that place is carried into the
other classes' references.

Evidence the references never show cannot be the object, whatever the model's accuracy;
its control is the same places of the class's own references. A seed whose detector
fires ``DECISIVE_NOVELTY`` × beyond the trusted images counts alone (the other evidence
is read as the median over seeds)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .evidence import Detectors, Images
from .transfer import Batch, Plan, Sources, isolate

PATCH_FRACTION = 1 / 4  # side of the part carried around each unseen detector's peak
# a detector firing this many times its trusted maximum is unseen: low enough to catch a
# background the references never show, high enough to leave clean classes alone
# (docs/shortcuts.md gives the measured rates)
NOVELTY = 12.0
NOVEL_CHANNELS = 3  # the most novel detectors whose places are carried


def detector_novelty(
    trusted: NDArray[np.floating], fired: NDArray[np.floating]
) -> NDArray[np.floating]:
    """Per seed × detector: how far beyond any trusted image the detector fires, as the
    ratio of its peak to the trusted images' largest (plus 1% of the median of those,
    so a detector the trusted images never fire is not divided by zero).

    A detector whose response is not finite on a seed's image or on any trusted image
    carries no evidence: its novelty is 0, and it never hides another one (a NaN in
    the row would make the row's maximum NaN, which no threshold passes)."""
    known = np.isfinite(fired) & np.all(np.isfinite(trusted), axis=0)
    trusted = np.where(np.isfinite(trusted), trusted, trusted.dtype.type(0))
    ceiling = trusted.max(axis=0) if len(trusted) else np.zeros(fired.shape[1])
    floor = 0.01 * float(np.median(ceiling[ceiling > 0])) if np.any(ceiling > 0) else 1e-6
    zero = fired.dtype.type(0)
    return np.where(known, np.where(known, fired, zero) / (ceiling + floor), zero)


def unseen_plan(
    sources: Sources, references: Images, detectors: Detectors | None, batch: Batch
) -> Plan:
    """Per seed, the places of its most novel detectors carried into the other classes'
    references; the control: the union of those places, from the own-class partners."""
    images, others = sources.images, sources.others
    height, width = images.shape[1:3]
    if detectors is None:
        trusted, fired = np.zeros((1, 0)), np.zeros((len(images), 0))
        places = np.zeros((len(images), 0, 2))
    else:
        trusted, _ = detectors(references)
        fired, places = detectors(images)
    novelty = detector_novelty(trusted, fired)  # seeds × K
    side = max(2, round(sources.short * PATCH_FRACTION))
    where, components, masks = [], [], []
    tests: list[slice | None] = []
    for s_i, image in enumerate(images):
        top = [j for j in np.argsort(-novelty[s_i])[:NOVEL_CHANNELS] if novelty[s_i, j] >= NOVELTY]
        mask, spots = _spots(places[s_i], top, side, height, width)
        masks.append(mask)
        ratio = float(novelty[s_i].max()) if novelty.shape[1] else 0.0
        if top:
            where.append(
                f"a detector {ratio:.0f}× stronger than on any trusted image, at "
                + "; ".join(dict.fromkeys(spots))
            )
        else:
            where.append(f"no detector beyond the trusted images' range (at most {ratio:.1f}×)")
        tests.append(
            batch.add(np.where(mask[None, :, :, None], image[None], others)) if top else None
        )
        components.append(isolate(image, mask))
    union = np.any(masks, axis=0)
    pair = sources.pair
    controls = [batch.add(np.where(union[None, :, :, None], pair, others))] if union.any() else []
    novel = novelty.max(axis=1, initial=0.0)
    return Plan("unseen detail", where, tests, controls, components, novel)


def _spots(
    places: NDArray[np.float64], top: list[int], side: int, height: int, width: int
) -> tuple[NDArray[np.bool_], list[str]]:
    """The mask of a side × side patch around each chosen detector's peak (kept inside
    the image), and where each patch's centre is, in words."""
    mask = np.zeros((height, width), bool)
    spots = []
    for j in top:
        cy, cx = places[j]
        y0 = int(np.clip(round(cy - side / 2), 0, height - side))
        x0 = int(np.clip(round(cx - side / 2), 0, width - side))
        mask[y0 : y0 + side, x0 : x0 + side] = True
        spots.append(f"x={x0 + side // 2}, y={y0 + side // 2}")
    return mask, spots
