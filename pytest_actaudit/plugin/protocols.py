"""What the plugin's modules ask of the session object (``session.ActauditSession``), as
protocols: they import this module, never the session's, so imports go one way — the
session imports them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ..settings import Settings

if TYPE_CHECKING:
    from ..checks.audit import ClassAudit
    from ..checks.references import References
    from ..run.reference_calls import GivenReferences
    from ..run.runner import AuditRunner
    from .xdist import Pieces


class AuditSession(Protocol):
    """What the fixtures, the zero-code items and the shard split use."""

    settings: Settings

    def quiet(self) -> AbstractContextManager[None]: ...
    def configured_model(self) -> Any: ...
    def runner(self, model: Any) -> AuditRunner: ...
    def references(self, model: Any) -> References: ...
    def class_audit(
        self,
        model: Any,
        target: str | int,
        settings: Settings,
        nodeid: str,
        references: Callable[[], GivenReferences] | None = None,
        layer: str | None = None,
    ) -> ClassAudit: ...


class FinishingSession(Protocol):
    """What the end of a session (``finish``) reads of the session and writes back."""

    @property
    def config(self) -> pytest.Config: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def started(self) -> float: ...
    @property
    def report_dir(self) -> Path: ...
    @property
    def records(self) -> list[dict[str, Any]]: ...
    @property
    def outcomes(self) -> dict[str, str]: ...
    @property
    def started_nodes(self) -> list[str]: ...
    @property
    def finished_nodes(self) -> set[str]: ...
    @property
    def pieces(self) -> Pieces: ...
    @property
    def shard(self) -> object: ...  # a shards.Shard, or None
    @property
    def shard_note(self) -> str: ...
    @property
    def input_noted(self) -> set[str]: ...

    # written by finish
    models: list[dict[str, Any]]
    report_path: Path | None
    report_error: str | None
    summary: tuple[int, int]
    summary_paths: list[Path]
    time_split: str

    def stats(self) -> dict[str, float]: ...
    def models_meta(self) -> list[dict[str, Any]]: ...
