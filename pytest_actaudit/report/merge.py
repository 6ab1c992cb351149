"""``actaudit merge OUT DIR...``: one report from the report folders of several shards
(``--actaudit-shard K/N`` jobs) — the same audits, checks, images and outcomes one run
over every shard gives, each shard's run in the header.

Folders whose runs cannot be joined are refused with the difference named: another model
file under the same name (its hash), other engine settings, seeds or steps, the same shard
or the same audit twice. The merged folder is built beside ``OUT`` and moved into place at
the end, so a failed merge leaves ``OUT`` as it was. No pytest, no TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ActauditError

# Per model: what must be equal for two shards' images to be comparable.
MODEL_KEYS = ("hash", "engine", "input_shape", "input_range", "output_kind")
RUN_KEYS = ("seeds", "steps")
PLACEMENT = ("device", "max_batch", "lanes")  # engine settings that only place the work
SUMMED = (
    "optimized_images",
    "optimize_seconds",
    "trace_seconds",
    "cache_hits",
    "tensorflow_import_seconds",
    "model_load_seconds",
    "check_seconds",
    "probe_seconds",
    "report_seconds",
)


def _model_name(meta: dict[str, Any]) -> str:
    return Path(str(meta.get("name", ""))).name


def _check_compatible(runs: list[tuple[Path, dict[str, Any]]]) -> None:
    """Raise naming the first difference that makes the shards' results not one run."""
    first_folder, first = runs[0]
    models: dict[str, tuple[Path, dict[str, Any]]] = {}
    shards: dict[str, Path] = {}
    for folder, run in runs:
        for key in RUN_KEYS:
            if run.get(key) != first.get(key):
                raise ActauditError(
                    f"cannot merge: {key} is {first.get(key)!r} in {first_folder} but "
                    f"{run.get(key)!r} in {folder}; run every shard with the same settings"
                )
        inner = [s.get("shard") for s in run.get("shards") or []]  # a merged report
        for shard in [run.get("shard"), *inner]:
            if not shard or "/" not in str(shard):
                continue
            if shard in shards:
                raise ActauditError(
                    f"cannot merge: shard {shard} twice ({shards[shard]} and {folder})"
                )
            shards[shard] = folder
        for meta in run.get("models", []):
            name = _model_name(meta)
            if name not in models:
                models[name] = (folder, meta)
                continue
            seen_folder, seen = models[name]
            for key in MODEL_KEYS:
                a, b = seen.get(key), meta.get(key)
                if key == "engine":  # where and how many at once do not change the images
                    a, b = (
                        {k: v for k, v in (d or {}).items() if k not in PLACEMENT} for d in (a, b)
                    )
                    if a != b:
                        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                        a = {k: a.get(k) for k in diff}
                        b = {k: b.get(k) for k in diff}
                if a != b:
                    what = "model file (sha256)" if key == "hash" else f"model {key}"
                    raise ActauditError(
                        f"cannot merge: the {what} of {name} differs: {a!r} in "
                        f"{seen_folder}, {b!r} in {folder}"
                    )


def _missing_shards(runs: list[dict[str, Any]]) -> list[str]:
    given = [str(r.get("shard")) for r in runs if "/" in str(r.get("shard") or "")]
    if not given:
        return []
    count = int(str(given[0]).split("/")[1])
    return [f"{k}/{count}" for k in range(1, count + 1) if f"{k}/{count}" not in given]


def merge_reports(
    out: Path, folders: Sequence[Path], *, self_contained: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Write the merged report into ``out``; returns (its index.html, its results)."""
    from .writer import read_results, write_results

    if not folders:
        raise ActauditError("nothing to merge: give one or more report folders after OUT")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ActauditError(f"{out} is a file; OUT must be a new or a report folder")
    for folder in folders:
        inside = Path(folder).resolve()
        if inside != out.resolve() and out.resolve() in inside.parents:
            raise ActauditError(
                f"{folder} is inside OUT ({out}), which the merged report replaces; "
                "choose an OUT outside the shards' folders"
            )
    loaded = [(Path(f), read_results(Path(f))) for f in folders]
    _check_compatible([(folder, results["run"]) for folder, results in loaded])
    records: list[dict[str, Any]] = []
    owner: dict[str, Path] = {}
    for folder, results in loaded:
        for audit in results["audits"]:
            key = _audit_key(audit)
            if key in owner and owner[key] != folder:
                raise ActauditError(
                    f"cannot merge: the audit {audit.get('label')!r} of test "
                    f"{audit.get('nodeid')!r} is in {owner[key]} and in {folder}: were two "
                    "shards run with the same --actaudit-shard, or without it?"
                )
            owner[key] = folder
            records.append({k: v for k, v in audit.items() if k not in ("id", "status")})
    records.sort(key=lambda r: (str(r.get("model")), r.get("index", 0), str(r.get("nodeid"))))
    outcomes = {str(r.get("nodeid")): str(r.get("test_outcome", "unknown")) for r in records}
    run = _merged_run([(folder, results["run"]) for folder, results in loaded])

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-merge-", dir=out.parent))
    try:
        for folder, _ in loaded:
            images = folder / "images"
            if images.is_dir():
                shutil.copytree(images, staging / "images", dirs_exist_ok=True)
        for record in records:  # every image a record names must have come along
            for path in _image_paths(record):
                if not (staging / path).is_file():
                    raise ActauditError(
                        f"cannot merge: {path} (audit {record.get('label')!r}) is missing "
                        f"from {owner[_audit_key(record)]}"
                    )
        index, merged = write_results(staging, run, records, outcomes, self_contained)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out / index.name, merged


def _audit_key(audit: dict[str, Any]) -> str:
    return "::".join(str(audit.get(k)) for k in ("nodeid", "model", "label", "seeds", "steps"))


def _image_paths(value: Any) -> list[str]:
    """Every image file a record names (its seeds, mean, heatmap, baseline, probe)."""
    if isinstance(value, str):
        return [value] if value.startswith("images/") else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _image_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _image_paths(v)]
    return []


def _merged_run(runs: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    first = runs[0][1]
    models: dict[str, dict[str, Any]] = {}
    for _, run in runs:
        for meta in run.get("models", []):
            models.setdefault(_model_name(meta), meta)
    merged: dict[str, Any] = {
        key: value for key, value in first.items() if key not in ("models", "time_split", "shard")
    }
    merged["models"] = list(models.values())
    for key in SUMMED:
        merged[key] = sum(float(run.get(key, 0) or 0) for _, run in runs)
    merged["optimized_images"] = int(merged["optimized_images"])
    merged["cache_hits"] = int(merged["cache_hits"])
    merged["wall_seconds"] = max(float(run.get("wall_seconds", 0)) for _, run in runs)
    merged["started"] = min(float(run.get("started", 0)) for _, run in runs)
    merged["command"] = "actaudit merge of " + ", ".join(str(f) for f, _ in runs)
    merged["shards"] = []
    for folder, run in runs:
        if run.get("shards"):  # a merged report merged again: its shards, flattened
            merged["shards"].extend(run["shards"])
            continue
        devices = set((run.get("workers") or {}).values()) or {
            str(m.get("device", "")) for m in run.get("models", [])
        }
        merged["shards"].append(
            {
                "folder": str(folder),
                "shard": run.get("shard") or "(no shard)",
                "command": run.get("command", ""),
                "time_split": run.get("time_split", ""),
                "devices": sorted(devices),
            }
        )
    missing = _missing_shards(merged["shards"])
    merged["missing_shards"] = missing
    longest = merged["wall_seconds"]
    merged["time_split"] = (
        f"{len(runs)} shards, the longest {longest:.1f} s wall; summed over shards: "
        f"tracing {merged['trace_seconds']:.1f} s · optimization "
        f"{merged['optimize_seconds'] - merged['trace_seconds']:.1f} s "
        f"({merged['optimized_images']} images) · checks {merged['check_seconds']:.1f} s"
        + (f" · MISSING shards {', '.join(missing)}" if missing else "")
    )
    return merged


def _replace(staging: Path, out: Path) -> None:
    """Put the finished folder at ``out``; an earlier folder there goes only after."""
    if out.exists():
        if out.is_dir() and any(out.iterdir()) and not (out / "results.json").is_file():
            raise ActauditError(
                f"{out} exists and is not a report folder; choose a new or empty OUT"
            )
        old = out.with_name(f".{out.name}-old-{os.getpid()}")
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
