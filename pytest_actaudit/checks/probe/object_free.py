"""Object-free edits (:mod:`pytest_actaudit.checks.edits`): not from the maximization
images. A bank of simple edits that hold no object (bands, frames, dots, a corner mark,
colour casts, replaced backgrounds) is screened once per model; the class's best ones
are applied to the other classes' references. The measure is the share they make the
model read as the class with at least ``edits.MARGIN_FACTOR`` × its median margin on
real images: a partial shortcut (the model still reads the real object) wins that
clearly; a model merely tipped over by an unfamiliar input does not."""

from __future__ import annotations

import numpy as np

from .. import edits
from .evidence import Evidence, Images
from .transfer import Batch, Readings, Sources


def unfit_for_margins(references: Images) -> str:
    """Why the object-free edits' readings cannot be measured against the model's margin
    on these references ("" if they can): most are grey pictures (R = G = B) in a colour
    model's input. A colour model reads grayscale photos less surely than its real
    images, so that yardstick shrinks while a plain edit on a grey picture tips a clean
    model's reading as far as ever (the demo's clean model reads a frame on grey shapes as
    a square more surely than the grey shapes themselves). The edit the class needs is
    read without a margin and is still measured: a colour cast that a grey reference needs
    is how a colour shortcut shows on grey references."""
    if references.ndim != 4 or references.shape[-1] != 3 or len(references) == 0:
        return ""
    grey = int(np.sum(edits.grey_images(references)))
    if 2 * grey < len(references):
        return ""
    return (
        f"{grey} of the {len(references)} references are grayscale pictures in a colour "
        "model's input: its margins on them are no yardstick of how clearly it reads real "
        "images (give colour references)"
    )


def object_free_plan(
    sources: Sources, screened: edits.Screen, unfit: str, batch: Batch
) -> tuple[list[edits.Edit], list[slice]]:
    """The class's best screened edits (none when the references are ``unfit`` for
    margins), each applied to every other-class reference."""
    best = [] if unfit else screened.best.get(sources.index, [])
    kept = [screened.edits[e] for e in best]
    return kept, [batch.add(edit.apply(sources.others, seed=k)) for k, edit in enumerate(kept)]


def object_free_evidence(
    kept: list[edits.Edit],
    tests: list[slice],
    readings: Readings,
    screened: edits.Screen,
    unfit: str,
) -> Evidence:
    """The best object-free edit's evidence: the share of other-class references it
    makes the model read as the class with at least ``MARGIN_FACTOR`` × the model's
    typical margin. Not per seed (the edit does not come from the images): every seed
    gets the same value, and the control is zero (the yardstick is in the share)."""
    seeds = readings.seeds
    if unfit:
        return Evidence(
            "object-free edit", f"not measured: {unfit}", np.zeros(seeds), 0.0,
            control_what="none (not measured)",
        )  # fmt: skip
    bar = edits.MARGIN_FACTOR * screened.yardstick
    control_what = (
        f"none: a reading counts only with a margin ≥ {edits.MARGIN_FACTOR:g}× the "
        f"model's median margin on the trusted references ({bar:.1f} ≥ "
        f"{edits.MARGIN_FACTOR:g} × {screened.yardstick:.1f})"
    )
    if not kept:
        return Evidence(
            "object-free edit", "no edit screened", np.zeros(seeds), 0.0,
            control_what=control_what,
        )  # fmt: skip
    probabilities, index = readings.probabilities, readings.index
    shares = [edits.confident_share(probabilities[t], index, screened.yardstick) for t in tests]
    best = int(np.argmax(shares))
    edit, test = kept[best], tests[best]
    read = readings.read_as_class(test)
    where = f"{edit.description} (read as this class: {read:.0%}, {shares[best]:.0%} clearly)"
    shown = readings.batch.images(test)
    height, width, channels = shown.shape[1:]
    grey = np.full((1, height, width, channels), 128, np.uint8)
    return Evidence(
        kind="object-free edit",
        where=where,
        flip_rates=np.full(seeds, shares[best]),
        control_rate=0.0,
        examples=list(shown[: readings.examples]),
        component=edit.apply(grey)[0],
        control_what=control_what,
    )
