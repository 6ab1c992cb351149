"""Baseline images: written with ``--actaudit-generate-baseline DIR``, compared with
``assert_matches_baseline``. Exact uint8 PNGs at the model's resolution, one folder
per (model, class), plus the metrics in ``meta.json``. numpy and OpenCV only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..report.images import slug
from ..report.writer import atomic_write

if TYPE_CHECKING:
    from .audit import ClassAudit


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

    def path(self, audit: ClassAudit) -> Path:
        model = slug(Path(audit.model_name).stem or "model")
        return self.folder / model / f"{audit.index:04d}-{slug(audit.label)}"

    def write(self, audit: ClassAudit) -> Path:
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
        }
        atomic_write(where / "meta.json", json.dumps(meta, indent=1).encode())
        return where

    def read(self, audit: ClassAudit) -> tuple[dict[str, Any], dict[int, NDArray[np.uint8]]]:
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
