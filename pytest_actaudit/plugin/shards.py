"""``--actaudit-shard K/N`` in a session: the audit items of other shards are deselected
at collection where their class is known then (zero-code items; parametrized tests of the
configured model), an audit asked for in a test body is skipped at run time with the shard
that owns it, and the session's batch holds only this shard's classes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..model import source_path
from ..shard import Shard

if TYPE_CHECKING:
    from .session import ActauditSession


def model_key(model: Any) -> str:
    """What names a model for the split: its file, else its Keras name."""
    return str(source_path(model) or getattr(model, "name", "model"))


def _class_of(runner: Any, value: Any) -> int | None:
    """The class index a parameter names, or None. Only names count: an integer
    parameter is as likely a seed or a size as a class index."""
    if not isinstance(value, str) or value.strip().isdigit():
        return None
    try:
        return int(runner.resolve(value))
    except Exception:  # not a class of this model: not an audit target
        return None


def deselect(
    session: ActauditSession, config: pytest.Config, items: list[pytest.Item], shard: Shard
) -> tuple[str, int]:
    """Drop the items whose classes other shards audit; returns the line that says so
    and how many.

    Known at collection: zero-code items (their class), and parametrized audit tests of
    the configured model whose parameters name classes. Everything else is decided when
    the test asks for its class (``skip_unless_owned``)."""
    from .items import ZeroCodeItem, is_audit

    runner = None
    key = ""
    if session.settings.model:
        model = session.configured_model()
        runner, key = session.runner(model), model_key(model)
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    classes: set[str] = set()
    for item in items:
        indices: list[int] = []
        if isinstance(item, ZeroCodeItem):
            indices = [item.index]
        elif runner is not None and is_audit(item) and getattr(item, "callspec", None):
            params = getattr(item, "callspec").params.values()  # noqa: B009
            found = (_class_of(runner, v) for v in params)
            indices = [i for i in found if i is not None]
        if indices and not any(shard.keeps(key, i) for i in indices):
            dropped.append(item)
            if runner is not None:
                classes.update(runner.labels[i] for i in indices)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    names = ", ".join(sorted(classes)[:8]) + (" …" if len(classes) > 8 else "")
    note = (
        f"shard {shard}: {len(dropped)} audit item(s) of other shards deselected"
        + (f" (classes {names})" if names else "")
        + "; `actaudit merge OUT DIR...` joins the shards' reports"
    )
    return note, len(dropped)


def skip_unless_owned(shard: Shard | None, runner: Any, model: Any, target: Any) -> None:
    """Skip the test (with the owning shard) when another shard audits this class."""
    if shard is None:
        return
    index = int(runner.resolve(target))
    key = model_key(model)
    if not shard.keeps(key, index):
        pytest.skip(
            f"actaudit: class {runner.labels[index]!r} (index {index}) of {key} is audited "
            f"by shard {shard.owner(key, index)}/{shard.count}; this is shard {shard}"
        )


def planned_here(shard: Shard | None, runner: Any, model: Any, planned: list[Any]) -> list[Any]:
    """The session's planned targets that this shard audits (all without shards)."""
    if shard is None:
        return planned
    key = model_key(model)
    return [t for t in planned if (i := _class_of(runner, t)) is None or shard.keeps(key, i)]
