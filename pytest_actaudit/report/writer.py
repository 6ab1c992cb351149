"""Writes the report folder: images, ``results.json`` (atomically), ``index.html``."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .images import encode_png, energy, heatmap_overlay, mean_image, slug, upscale
from .render import render_html

SCHEMA = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see
    a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _stretch(diff: Any) -> Any:
    """Absolute difference, brightened so small drifts are visible (×4, capped)."""
    return np.minimum(diff.astype(np.uint16) * 4, 255).astype(np.uint8)


def build_results(
    run: Mapping[str, Any], audits: Sequence[Any], outcomes: Mapping[str, str], folder: Path
) -> dict[str, Any]:
    """The results document; writes each seed's image (upscaled PNG) under images/."""
    from .. import __version__

    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    records = []
    written: dict[tuple[str, int, int, Any], str] = {}

    def save(key: tuple[str, int, int, Any], label: str, kind: str, image: Any) -> str:
        # One file per distinct image: tests that audit the same class share them.
        if key not in written:
            name = f"{len(written):05d}-{slug(label)}-{kind}.png"
            atomic_write(images_dir / name, encode_png(upscale(image)))
            written[key] = f"images/{name}"
        return written[key]

    for number, audit in enumerate(audits):
        record = audit.to_record()
        base = (audit.model_name, audit.index, audit.steps)
        record["images"] = [
            save((*base, seed), audit.label, f"seed{seed}", image)
            for seed, image in zip(audit.seeds, audit.images, strict=True)
        ]
        seeds_key = tuple(audit.seeds)
        mean = mean_image(audit.images)
        record["mean_image"] = save((*base, ("mean", seeds_key)), audit.label, "mean", mean)
        weights = (
            audit.attribution.mean(axis=0)
            if audit.attribution is not None
            else energy(audit.images).mean(axis=0)
        )
        record["heatmap_source"] = (
            "gradient × input" if audit.attribution is not None else "energy vs grey"
        )
        if audit.baseline_images is not None:
            diffs = np.abs(audit.images.astype(np.int16) - audit.baseline_images).astype(np.uint8)
            record["baseline"] = [
                {
                    "image": save((*base, ("base", s)), audit.label, f"base{s}", b),
                    "diff": save(
                        (*base, ("diff", s, number)), audit.label, f"diff{s}", _stretch(d)
                    ),
                }
                for s, b, d in zip(audit.seeds, audit.baseline_images, diffs, strict=True)
            ]
        record["heatmap"] = save(
            (*base, ("heat", seeds_key)), audit.label, "heat", heatmap_overlay(mean, weights)
        )
        record["image_shape"] = list(audit.images.shape[1:])
        record["id"] = f"audit-{number}"
        outcome = outcomes.get(audit.nodeid, "unknown")
        record["test_outcome"] = outcome
        record["status"] = (
            "passed" if audit.passed and outcome in ("passed", "unknown") else "failed"
        )
        records.append(record)
    return {
        "schema": SCHEMA,
        "generator": f"pytest-actaudit {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": dict(run),
        "audits": records,
    }


def write_report(
    folder: Path,
    *,
    run: Mapping[str, Any],
    audits: Sequence[Any],
    outcomes: Mapping[str, str],
    self_contained: bool = False,
) -> Path:
    """Write the whole report; returns the path of ``index.html``."""
    folder.mkdir(parents=True, exist_ok=True)
    results = build_results(run, audits, outcomes, folder)
    atomic_write(folder / "results.json", json.dumps(results, indent=1).encode("utf-8"))
    index = folder / "index.html"
    atomic_write(index, render_html(results, folder, self_contained=self_contained).encode("utf-8"))
    return index
