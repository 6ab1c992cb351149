"""What the session adds to the report besides the audits' own records: the entry for an
audit that started and never finished, the run's header (models, totals, command), and the
report folder (or a temporary one when it cannot be written)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ..settings import Settings


def unfinished_record(nodeid: str, outcome: str | None) -> dict[str, Any]:
    """The report's entry for an audit that started and never finished."""
    why = "its xdist worker died" if outcome in ("failed", "error") else "the run was interrupted"
    return {
        "label": nodeid.rsplit("::", 1)[-1],
        "index": -1,
        "model": "",
        "nodeid": nodeid,
        "seeds": [],
        "steps": 0,
        "images": [],
        "logits": [],
        "probabilities": [],
        "consistency": 0.0,
        "consistency_per_seed": [],
        "curves": [],
        "checks": [],
        "passed": False,
        "error": f"started but never finished: {why}; no images were kept",
        "test_outcome": outcome or "error",
    }


def writable_folder(folder: Path) -> tuple[Path, str | None]:
    """The report folder, or a fresh temporary one (and why) if it cannot be written:
    decided before any optimization so no result waits on it."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        return folder, None
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="actaudit-report-"))
        return fallback, (
            f"could not write the report to {str(folder)!r} ({exc}); "
            f"wrote it to {fallback} instead — choose a writable --actaudit-report DIR"
        )


def input_assumption(meta: dict[str, Any]) -> str:
    """How a model's input is read when no setting said so: the plain default (no leading
    Rescaling layer) or the references' choice; "" when a setting or the model says."""
    source = str(meta.get("input_range_source", ""))
    if source.startswith("default"):
        low, high = meta["input_range"]
        return (
            f"input of {meta['name']} assumed in [{low:g}, {high:g}]: the model has no leading "
            "Rescaling layer and no actaudit_input_range or actaudit_preprocess is set; set "
            "one if it takes another (e.g. actaudit_input_range = -1-1)"
        )
    if "chosen from the trusted references" in source:
        return f"input of {meta['name']}: {source}"
    return ""


def models_meta(runners: dict[Any, Any]) -> list[dict[str, Any]]:
    """Each model's header in the report (its runners' ``meta``)."""
    return [runner.meta for runner, _ in runners.values()]


def run_stats(runners: dict[Any, Any]) -> dict[str, float]:
    """This process's totals: images optimized, seconds spent, cache hits."""
    active = [r for r, _ in runners.values()]
    return {
        "optimized_images": sum(r.stats.images for r in active),
        "optimize_seconds": sum(r.stats.seconds for r in active),
        "trace_seconds": sum(r.stats.trace_seconds for r in active),
        "cache_hits": sum(r.cache.hits for r in active if r.cache),
    }


def run_meta(
    started: float,
    settings: Settings,
    config: pytest.Config,
    models: list[dict[str, Any]],
    stats: dict[str, float],
) -> dict[str, Any]:
    """The report's ``run`` section."""
    wall = time.time() - started
    return {
        "time_split": time_split(wall, stats),
        "started": started,
        "wall_seconds": wall,
        "seeds": settings.seeds,
        "steps": settings.steps,
        "shard": settings.shard,
        "device_setting": settings.device,
        "models": models,
        **stats,
        "command": "pytest " + " ".join(config.invocation_params.args),
    }


def time_split(wall: float, stats: dict[str, float]) -> str:
    """Where the session's wall time went, for the report header and ``-v``: TensorFlow
    import, model load, tracing, optimization, checks (the shortcut probe's share), the
    report's images and pages. Under xdist the parts are summed over workers."""
    tf_import = stats.get("tensorflow_import_seconds", 0.0)
    parts = [f"{wall:.1f} s wall"]
    parts.append(
        f"TensorFlow import {tf_import:.1f} s"
        if tf_import > 0
        else "TensorFlow imported before the plugin needed it"
    )
    trace = stats.get("trace_seconds", 0.0)
    parts += [
        f"model load {stats.get('model_load_seconds', 0.0):.1f} s",
        f"tracing {trace:.1f} s",
        f"optimization {stats.get('optimize_seconds', 0.0) - trace:.1f} s "
        f"({int(stats.get('optimized_images', 0))} images, "
        f"{int(stats.get('cache_hits', 0))} from the cache)",
        f"checks {stats.get('check_seconds', 0.0):.1f} s "
        f"(shortcut probe {stats.get('probe_seconds', 0.0):.1f} s)",
        f"report {stats.get('report_seconds', 0.0):.1f} s",
    ]
    return " · ".join(parts)
