"""pytest-xdist: each worker writes its audits' records as JSON pieces in the report folder
as tests finish; the controller merges every worker's pieces at session end."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .records import writable_folder


def run_folder(config: pytest.Config, report: str) -> tuple[str | None, str, Path, str | None]:
    """``(worker id or None, run id, report folder, why the folder moved or None)``: a worker
    takes the run id and folder its controller chose (see ``configure_node``)."""
    workerinput = getattr(config, "workerinput", None)
    worker: str | None = workerinput["workerid"] if workerinput else None
    if workerinput and "actaudit_run" in workerinput:
        return worker, workerinput["actaudit_run"], Path(workerinput["actaudit_report_dir"]), None
    report_dir, report_error = writable_folder(Path(report))
    return worker, uuid.uuid4().hex[:12], report_dir, report_error


def configure_node(node: Any, run_id: str, report_dir: Path) -> None:
    """Hand a new worker the controller's run id and report folder."""
    node.workerinput["actaudit_run"] = run_id
    node.workerinput["actaudit_report_dir"] = str(report_dir)


def worker_device(setting: str, worker: str | None, gpus: int | None = None) -> str:
    """The device a worker optimizes on: with ``auto`` and N visible GPUs, worker ``gwI``
    takes GPU I mod N (each worker one GPU, not all on the first); otherwise the setting.
    ``gpus``: the visible GPU count (asked of TensorFlow when None)."""
    if setting != "auto" or not worker or not worker.startswith("gw"):
        return setting
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_logical_devices("GPU"))
    if gpus < 1:
        return setting
    try:
        number = int(worker[2:])
    except ValueError:
        return setting
    return f"gpu:{number % gpus}"


class Pieces:
    """One process's pieces: ``REPORT/.pieces/RUN/WORKER-NNNNN.json``, each written atomically."""

    def __init__(self, report_dir: Path, run_id: str, worker: str | None) -> None:
        self.report_dir = report_dir
        self.run_id = run_id
        self.worker = worker
        self.count = 0

    @property
    def folder(self) -> Path:
        return self.report_dir / ".pieces" / str(self.run_id)

    def write(
        self,
        records: list[dict[str, Any]],
        started: Sequence[str],
        finished: list[str],
        models: list[dict[str, Any]],
        stats: dict[str, float],
    ) -> None:
        import json

        from ..report.writer import atomic_write

        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        piece = {
            "records": records,
            "started": list(started),
            "finished": finished,
            "models": models,
            "stats": stats,
        }
        name = f"{self.worker}-{self.count:05d}.json"
        atomic_write(folder / name, json.dumps(piece).encode())

    def merge_into(
        self,
        records: list[dict[str, Any]],
        started: list[str],
        finished: set[str],
        models: list[dict[str, Any]],
        stats: dict[str, float],
        workers: dict[str, str] | None = None,
    ) -> None:
        """Add every worker's pieces to the controller's own records, started and finished
        node ids, models and stats (in place); ``workers``: which worker used which
        device."""
        import json

        folder = self.folder
        pieces = sorted(folder.glob("*.json")) if folder.is_dir() else []
        latest: dict[str, dict[str, Any]] = {}
        for path in pieces:
            try:
                piece = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker died mid-write: atomic writes make this rare
            records.extend(piece["records"])
            started.extend(piece["started"])
            finished.update(piece["finished"])
            latest[path.name.split("-")[0]] = piece  # a worker's last piece has its totals
            for meta in piece["models"]:
                if workers is not None and meta.get("worker"):
                    workers[meta["worker"]] = meta.get("device", "")
                if meta["hash"] not in {m["hash"] for m in models}:
                    models.append(meta)
        for piece in latest.values():
            for key in stats:
                stats[key] += piece["stats"].get(key, 0)

    def remove(self) -> None:
        """Delete every run's pieces (after the controller wrote the report)."""
        import shutil

        shutil.rmtree(self.report_dir / ".pieces", ignore_errors=True)
