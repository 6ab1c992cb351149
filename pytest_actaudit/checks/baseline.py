"""Baseline images: written with ``--actaudit-generate-baseline DIR``, compared with
``assert_matches_baseline``. Exact uint8 PNGs at the model's resolution, one folder
per (model, class), plus the metrics in ``meta.json``. numpy and OpenCV only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..report.images import slug
from ..report.writer import atomic_write
from .verdict import AuditFailure


class Baselined(Protocol):
    """What a baseline is made of and compared with: a ``ClassAudit``'s images."""

    @property
    def label(self) -> str: ...
    @property
    def index(self) -> int: ...
    @property
    def model_name(self) -> str: ...
    @property
    def seeds(self) -> list[int]: ...
    @property
    def steps(self) -> int: ...
    @property
    def images(self) -> NDArray[np.uint8]: ...
    @property
    def logits(self) -> NDArray[np.float64]: ...
    @property
    def probabilities(self) -> NDArray[np.float64]: ...
    @property
    def settings(self) -> dict[str, Any]: ...


def read_png(path: Path) -> NDArray[np.uint8]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"baseline image {path} cannot be read (missing or not a PNG)")
    if image.ndim == 2:
        return np.asarray(image[..., None], np.uint8)
    code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
    return np.asarray(cv2.cvtColor(image, code), np.uint8)


class BaselineStore:
    """One baseline folder; ``generate`` says whether this run writes or compares."""

    def __init__(self, folder: str | Path, *, generate: bool) -> None:
        self.folder = Path(folder)
        self.generate = generate

    def path(self, audit: Baselined) -> Path:
        model = slug(Path(audit.model_name).stem or "model")
        return self.folder / model / f"{audit.index:04d}-{slug(audit.label)}"

    def write(self, audit: Baselined) -> Path:
        from ..report.images import encode_png

        where = self.path(audit)
        where.mkdir(parents=True, exist_ok=True)
        for seed, image in zip(audit.seeds, audit.images, strict=True):
            atomic_write(where / f"seed{seed}.png", encode_png(image))
        meta = {
            "label": audit.label,
            "index": audit.index,
            "steps": audit.steps,
            "seeds": audit.seeds,
            "logits": [float(v) for v in audit.logits],
            "probabilities": [float(v) for v in audit.probabilities],
            "engine": audit.settings.get("engine", {}),
        }
        atomic_write(where / "meta.json", json.dumps(meta, indent=1).encode())
        return where

    def read(self, audit: Baselined) -> tuple[dict[str, Any], dict[int, NDArray[np.uint8]]]:
        """(meta, {seed: image}); raises FileNotFoundError naming the command that
        makes the baseline."""
        where = self.path(audit)
        if not (where / "meta.json").is_file():
            raise FileNotFoundError(
                f"no baseline for class {audit.label!r} in {where}; write one with "
                f"`pytest --actaudit --actaudit-generate-baseline {self.folder}` and commit it"
            )
        meta = json.loads((where / "meta.json").read_text())
        images = {}
        for seed in audit.seeds:
            png = where / f"seed{seed}.png"
            if png.is_file():
                images[seed] = read_png(png)
        return meta, images


def similarities(
    audit: Baselined, stored: dict[int, NDArray[np.uint8]]
) -> tuple[list[float], NDArray[np.uint8], str]:
    """Each seed's SSIM with its stored image (0 where none, or of another shape), the
    stored images in seed order (black where missing or of another shape) and a note
    naming those seeds."""
    from .metrics import ssim

    shape = audit.images.shape[1:]
    fits = {seed: image for seed, image in stored.items() if image.shape == shape}
    values = [
        ssim(image, fits[seed]) if seed in fits else 0.0
        for seed, image in zip(audit.seeds, audit.images, strict=True)
    ]
    images = np.stack([fits.get(s, np.zeros_like(audit.images[0])) for s in audit.seeds])
    missing = [s for s in audit.seeds if s not in stored]
    other = {s: stored[s].shape for s in audit.seeds if s in stored and s not in fits}
    notes = [f"no baseline image for seeds {missing}"] if missing else []
    notes += [
        f"baseline image of seed {s} is {h}×{w}, not {shape[0]}×{shape[1]}"
        for s, (h, w, *_) in other.items()
    ]
    return values, images, "; ".join(notes)


def compared(
    store: BaselineStore | None, audit: Baselined, min_similarity: float
) -> tuple[str, list[float], float, NDArray[np.uint8] | None, str]:
    """The baseline check's metric, per-seed values, threshold, the stored images (seed
    order) and a note: written (with ``generate``: the check passes), missing (every seed
    0, the note names the command that makes it) or each seed's SSIM with its stored
    image. Without a store: ``AuditFailure`` naming the options that give one."""
    if store is None:
        raise AuditFailure(
            f"class {audit.label!r}: no baseline folder configured; pass "
            "--actaudit-baseline DIR (ini actaudit_baseline), and make one with "
            "--actaudit-generate-baseline DIR"
        )
    if store.generate:
        where = store.write(audit)
        return f"written to {where}", [1.0] * len(audit.seeds), 0.0, None, ""
    try:
        meta, stored = store.read(audit)
    except FileNotFoundError as exc:
        return "ssim (baseline missing)", [0.0] * len(audit.seeds), min_similarity, None, str(exc)
    values, images, note = similarities(audit, stored)
    if min(values, default=1.0) < min_similarity:
        made = made_otherwise(meta, audit, store.folder)
        note = "; ".join(part for part in (note, made) if part)
    return "ssim", values, min_similarity, images, note


# What the engine's defaults were before baselines recorded their settings: the images of
# such a baseline are those of these settings.
UNRECORDED = {"learning_rate": 0.05, "stop_change": 0.0}


def made_otherwise(meta: dict[str, Any], audit: Baselined, folder: Path) -> str:
    """Why a failing comparison may not be drift: the baseline was made with other steps
    or engine settings than this run's (``""`` when it was not), and the fix."""
    made = dict(meta.get("engine") or UNRECORDED)
    now = dict(audit.settings.get("engine") or {})
    changed = [
        f"{key} {made[key]!r} → {now[key]!r}"
        for key in sorted(set(made) & set(now))
        if made[key] != now[key]
    ]
    if meta.get("steps") not in (None, audit.steps):
        changed.insert(0, f"steps {meta['steps']} → {audit.steps}")
    if not changed:
        return ""
    when = "" if meta.get("engine") else " (it predates recorded engine settings)"
    return (
        f"the baseline was made with other settings than this run's{when}: "
        f"{', '.join(changed)}; images of other settings differ without any drift, so "
        f"regenerate it with this run's: `pytest --actaudit --actaudit-generate-baseline "
        f"{folder}`"
    )
