"""Writes the report folder: images as each audit finishes, then ``results.json``
(atomically) and ``index.html`` at the end.

Audits become plain records (``audit_record``) as soon as their test ends, with their
images already on disk; ``write_report`` only assembles records. So a session that
is interrupted, or an xdist worker that dies, loses nothing that had finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ActauditWarning
from .images import encode_jpeg, encode_png, energy, heatmap_overlay, mean_image, slug
from .render import render_pages

SCHEMA = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see
    a half-written file, and concurrent writers of the same content do no harm."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600: give it the mode open() would, so a web server
        # running as another user can serve the report
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _stretch(diff: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Absolute difference, brightened so small drifts are visible (×4, capped)."""
    return np.minimum(diff.astype(np.uint16) * 4, 255).astype(np.uint8)


class ImageSink:
    """Writes report images under ``folder/images``, one file per distinct key; the
    file name comes from the key's hash, so processes writing the same image agree.
    Images are stored at their own size (the page enlarges them, pixelated), lossless
    PNG, except ``lossy`` ones (views such as heat maps: JPEG); an image identical to
    one already written (the mean of a single seed is that seed) is not written again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: dict[str, str] = {}
        self.contents: dict[str, str] = {}  # content digest -> path written

    def save(
        self,
        key: tuple[object, ...],
        label: str,
        kind: str,
        image: ArrayLike,
        *,
        lossy: bool = False,
    ) -> str:
        digest = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
        if digest not in self.written:
            pixels = np.ascontiguousarray(image)
            content = hashlib.sha1(
                f"{lossy}{pixels.dtype.str}{pixels.shape}".encode() + pixels.tobytes()
            ).hexdigest()
            if content not in self.contents:
                (self.folder / "images").mkdir(parents=True, exist_ok=True)
                suffix, data = (
                    (".jpg", encode_jpeg(pixels)) if lossy else (".png", encode_png(pixels))
                )
                name = f"{slug(label)}-{kind}-{digest}{suffix}"
                atomic_write(self.folder / "images" / name, data)
                self.contents[content] = f"images/{name}"
            self.written[digest] = self.contents[content]
        return self.written[digest]


def audit_record(audit: Any, sink: ImageSink) -> dict[str, Any]:
    """One audit as a plain record, its images written through ``sink``."""
    record: dict[str, Any] = audit.to_record()
    base = (audit.model_name, audit.index, audit.steps)
    label = audit.label
    record["images"] = [
        sink.save((*base, seed), label, f"seed{seed}", image)
        for seed, image in zip(audit.seeds, audit.images, strict=True)
    ]
    seeds_key = tuple(audit.seeds)
    mean = mean_image(audit.images)
    record["mean_image"] = sink.save((*base, "mean", seeds_key), label, "mean", mean)
    if audit.attribution is not None:
        weights, record["heatmap_source"] = audit.attribution.mean(axis=0), "gradient × input"
    else:
        weights, record["heatmap_source"] = energy(audit.images).mean(axis=0), "energy vs grey"
    record["heatmap"] = sink.save(
        (*base, "heat", seeds_key), label, "heat", heatmap_overlay(mean, weights), lossy=True
    )
    if audit.baseline_images is not None:
        diffs = np.abs(audit.images.astype(np.int16) - audit.baseline_images).astype(np.uint8)
        record["baseline"] = [
            {
                "image": sink.save((*base, "base", s, b.tobytes()), label, f"base{s}", b),
                "diff": sink.save((*base, "diff", s, d.tobytes()), label, f"diff{s}", _stretch(d)),
            }
            for s, b, d in zip(audit.seeds, audit.baseline_images, diffs, strict=True)
        ]

    def picture(name: str, image: NDArray[np.uint8]) -> str:
        return str(sink.save((*base, "probe", name, image.tobytes()), label, name, image))

    if audit.probe_result is not None:
        record["probe"] = _probe_record(audit.probe_result, picture)
    if audit.artifact_readings:
        record["suspects"] = _suspects_record(audit.artifact_readings, picture)
    trigger = getattr(audit, "trigger_evidence", None)
    if trigger is not None:
        record["trigger"] = _trigger_record(trigger, picture)
    record["image_shape"] = list(audit.images.shape[1:])
    return record


# (a picture's name, its pixels) -> its path in the report
Picture = Callable[[str, NDArray[np.uint8]], str]


def _probe_record(probe: Any, picture: Picture) -> dict[str, object]:
    """The shortcut probe's part of a record: its strongest evidence, pictured, and every
    evidence's numbers (``probe``: a checks.probe.ProbeResult)."""
    top = probe.strongest
    return {
        "strongest": top.kind,
        "where": top.describe(),
        "flip_rates": [float(v) for v in top.flip_rates],
        "control_rate": float(top.control_rate),
        "class_accuracy": probe.class_accuracy,
        "references_of_class": probe.references_of_class,
        "references_of_others": probe.references_of_others,
        "component": picture("probe-part", top.component) if top.component is not None else None,
        "examples": [picture(f"probe{k}", ex) for k, ex in enumerate(top.examples)],
        # one per example where the evidence names them; the card's default otherwise
        "example_captions": list(top.example_captions),
        "flipped": top.flipped,
        "control_what": top.control_what,
        "evidence": [
            {
                "kind": e.kind,
                "where": e.describe(),
                "flip_rates": [float(v) for v in e.flip_rates],
                "control_rate": float(e.control_rate),
                "excess": float(e.score),
            }
            for e in probe.evidence
        ],
    }


def _suspects_record(readings: Sequence[Any], picture: Picture) -> list[dict[str, object]]:
    """The named suspects' part of a record (``readings``: checks.artifacts'
    ArtifactReading, one per suspect), with two pictures each."""
    return [
        {
            "description": r.description,
            "pull": float(r.pull),
            "read": float(r.read),
            "before": float(r.before),
            "clearly": float(r.clearly),
            "own_without": None if r.own == 0 else float(r.own_without),
            "own_with": None if r.own == 0 else float(r.own_with),
            "own": int(r.own),
            "others": int(r.others),
            "rise": float(r.rise),
            "control_rise": float(r.control_rise),
            "control": r.control,
            "rank": int(r.rank),
            "classes": int(r.classes),
            "examples": [picture(f"suspect{k}-{j}", ex) for j, ex in enumerate(r.examples[:2])],
        }
        for k, r in enumerate(readings)
    ]


def _trigger_record(evidence: Any, picture: Picture) -> dict[str, object]:
    """The trigger search's reading and pictures (``checks.trigger.TriggerEvidence``)."""
    reading = evidence.reading
    return {
        **reading.to_dict(),
        "describe": reading.describe(),
        "success": float(evidence.success),
        "seconds": float(evidence.seconds),
        "picture": picture("trigger", evidence.picture),
        "mask": picture("trigger-mask", evidence.mask),
        "examples": [picture(f"trigger{j}", ex) for j, ex in enumerate(evidence.examples)],
    }


def finalize(
    records: Sequence[Mapping[str, Any]], outcomes: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Give each record an id, its test's outcome and a status (failed if a check
    failed or its test did not pass)."""
    final = []
    for number, record in enumerate(records):
        rec = dict(record)
        outcome = outcomes.get(rec.get("nodeid", ""), rec.get("test_outcome", "unknown"))
        if rec.get("error") and outcome in ("passed", "unknown"):
            outcome = "error"
        rec["id"] = f"audit-{number}"
        rec["test_outcome"] = outcome
        good_outcome = outcome in ("passed", "unknown", "xpassed")
        if outcome == "skipped":  # a check that could not run, or nothing to check
            rec["status"] = "skipped"
        else:
            rec["status"] = "passed" if rec["passed"] and good_outcome else "failed"
        final.append(rec)
    return final


def write_report(
    folder: Path,
    *,
    run: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, str],
    self_contained: bool = False,
) -> Path:
    """Write ``results.json`` and ``index.html`` from finished records; returns the
    path of ``index.html`` (``write_results`` also returns what was written)."""
    return write_results(folder, run, records, outcomes, self_contained)[0]


def write_results(
    folder: Path,
    run: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, str],
    self_contained: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """``write_report``, returning (the path of ``index.html``, the results written)."""
    from ..version import __version__

    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "schema": SCHEMA,
        "generator": f"pytest-actaudit {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": dict(run),
        "audits": finalize(records, outcomes),
    }
    atomic_write(folder / "results.json", json.dumps(results, indent=1).encode("utf-8"))
    return _write_pages(results, folder, self_contained), results


# A self-contained page beyond this is slow to open, or fails to, in a browser: said so.
SELF_CONTAINED_WARN_BYTES = 50_000_000


def _write_pages(results: Mapping[str, Any], folder: Path, self_contained: bool) -> Path:
    """Every page, each written atomically; pages of an earlier, longer report go."""
    pages = render_pages(results, folder, self_contained=self_contained)
    size = sum(len(html.encode("utf-8")) for html in pages.values())
    if self_contained and size > SELF_CONTAINED_WARN_BYTES:
        images = sum(f.stat().st_size for f in (folder / "images").glob("*") if f.is_file())
        warnings.warn(
            ActauditWarning(
                f"actaudit: the self-contained report {folder / 'index.html'} is "
                f"{size / 1e6:.0f} MB (every image inline, base64, the grid's twice): "
                "browsers open a page this size slowly, if at all. Use the folder form "
                f"instead (without --actaudit-self-contained / --self-contained): its pages "
                f"and {images / 1e6:.0f} MB of images in {folder / 'images'}; zip the "
                "folder to share it"
            ),
            stacklevel=2,
        )
    for name, html in pages.items():
        atomic_write(folder / name, html.encode("utf-8"))
    for stale in folder.glob("cards-*.html"):
        if stale.name not in pages:
            stale.unlink()
    return folder / "index.html"


def read_results(folder: Path) -> dict[str, Any]:
    """A report folder's ``results.json``; a missing, unreadable or other-schema file is
    an error naming the file and the fix."""
    source = folder / "results.json"
    try:
        results: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{source} not found: run `pytest --actaudit` with --actaudit-report {folder} first"
        ) from None
    except ValueError as exc:
        raise ValueError(
            f"{source} is not valid JSON ({exc}); run `pytest --actaudit` again"
        ) from None
    if results.get("schema") != SCHEMA:
        raise ValueError(f"{source} has schema {results.get('schema')!r}; this version reads 1")
    return results


def rerender(folder: Path, *, self_contained: bool = False) -> Path:
    """Re-render ``index.html`` from ``results.json`` (the ``actaudit report`` command)."""
    return _write_pages(read_results(folder), folder, self_contained)
