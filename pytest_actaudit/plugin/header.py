"""The lines the session adds before the tests run: the settings in the report header, and
at the end of collection how much will be optimized and why zero-code items are absent
when they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..settings import Settings
from .items import classes_named, zero_code_checks


def settings_line(s: Settings, report_dir: Path) -> str:
    """The header's line: model, seeds, steps, device, report folder, shard, references."""
    from ..checks.references import layout

    return (
        f"actaudit: model={s.model or '(actaudit_model fixture)'} seeds={s.seeds} "
        f"steps={s.steps} device={s.device} report={report_dir}"
        + (f" shard={s.shard}" if s.shard else "")
        + (f" references={s.references} ({layout(s.references)})" if s.references else "")
    )


def collection_lines(
    s: Settings,
    config: pytest.Config,
    zero_code: list[str],
    planned: list[str | int],
    worker: bool,
) -> list[str]:
    """The zero-code audits collected (or why none), and the classes planned for one batch."""
    lines = []
    if zero_code:
        checks = ", ".join(zero_code_checks(s)) or "none: images only, items skipped"
        lines.append(
            f"actaudit: {len(zero_code)} zero-code audit(s) of {s.model} (checks: {checks})"
        )
    elif s.model and not worker and not (zero_code_checks(s) or classes_named(config)):
        lines.append(
            f"actaudit: no zero-code audits of {s.model}: no threshold key is set (e.g. "
            "actaudit_min_probability) and actaudit_classes names no class; its classes "
            "are audited only by the tests that ask for them"
        )
    if planned:
        shown = ", ".join(map(str, planned[:8])) + (" …" if len(planned) > 8 else "")
        n = len(planned)
        # the tests' string parameters are candidates: one that names no class of
        # its model (a model's name, say) is left out when the model is known
        lines.append(
            f"actaudit: up to {n} class{'es' if n != 1 else ''} planned for one batch "
            f"({shown}): up to {n * s.seeds} image{'s' if n * s.seeds != 1 else ''} of "
            f"{s.steps} steps to optimize, less the cache's hits and the names that are no "
            "class of their model"
        )
    return lines
