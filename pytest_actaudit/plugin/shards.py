"""``--actaudit-shard K/N`` in a session: the audit items of other shards are deselected
at collection — with their class where it is known then (zero-code items; parametrized
tests of the configured model), else whole by node id — so the session's batch holds only
this shard's audits."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..model import source_path
from ..settings import parse_shard

if TYPE_CHECKING:
    from .session import ActauditSession


# Which job audits which (model, class), the same on every machine and in every run:
# job K of N audits the classes whose index, turned by a fixed offset per model, falls on
# K (round robin: equal shares, ±1 class); a test whose classes are not known at
# collection goes whole to the shard its node id falls on.


@dataclass(frozen=True)
class Shard:
    """This job's share: ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owner(self, model: str, class_index: int) -> int:
        """The shard (1-based) that audits this class of this model."""
        return (class_index + model_offset(model)) % self.count + 1

    def keeps(self, model: str, class_index: int) -> bool:
        return self.owner(model, class_index) == self.index

    def owns_test(self, nodeid: str) -> bool:
        """An audit test whose classes are not known before it runs goes whole to one
        shard, by its node id (the same in every job's checkout)."""
        return zlib.crc32(nodeid.encode("utf-8")) % self.count + 1 == self.index


def model_offset(model: str) -> int:
    """A fixed turn per model, so that class 0 of every model does not land on shard 1:
    from the model file's name (the same in every job's checkout), not its full path."""
    name = Path(model).name if model else ""
    return zlib.crc32(name.encode("utf-8"))


def shard_from(text: str | None) -> Shard | None:
    """The parsed setting (``"K/N"`` or None)."""
    if not text:
        return None
    index, count = (int(p) for p in parse_shard(text).split("/"))
    return Shard(index, count)


def model_key(model: Any) -> str:
    """What names a model for the split: its file, else its Keras name."""
    return str(source_path(model) or getattr(model, "name", "model"))


def _class_of(runner: Any, value: Any) -> int | None:
    """The class index a parameter names, or None. Only names count: an integer
    parameter is as likely a seed or a size as a class index."""
    if not isinstance(value, str) or value.strip().isdigit():
        return None
    index: int | None = runner.resolve_lenient(value)
    return index


def _plugin_model(item: pytest.Item) -> bool:
    """The item gets its model from the plugin's ``actaudit_model`` fixture (the
    configured file), not from a conftest override that may load another model."""
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {}).get("actaudit_model") if info else None
    func = getattr(defs[-1], "func", None) if defs else None
    return getattr(func, "__module__", "") == "pytest_actaudit.plugin.fixtures"


def deselect(
    session: ActauditSession, config: pytest.Config, items: list[pytest.Item], shard: Shard
) -> tuple[str, int]:
    """Drop the audit items other shards own; returns the line that says so and how many.

    An item whose class is known at collection goes with its class (zero-code items, and
    parametrized tests of the configured model whose parameters name its classes): the
    split of (model, class). Any other audit test — its class asked for in its body, from
    a model a fixture builds, or a layer's units — goes whole to the shard its node id
    falls on, so each of its audits is made in exactly one shard. Other tests run in
    every shard."""
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
        elif runner is not None and is_audit(item) and _plugin_model(item):
            params = getattr(item, "callspec", None)
            found = (_class_of(runner, v) for v in (params.params.values() if params else ()))
            indices = [i for i in found if i is not None]
        if indices:
            owned = any(shard.keeps(key, i) for i in indices)
            if not owned and runner is not None:
                classes.update(runner.labels[i] for i in indices)
        else:
            owned = not is_audit(item) or shard.owns_test(item.nodeid)
        (kept if owned else dropped).append(item)
    if dropped:
        # zero-code items join after pytest counted the collection: reporting them as
        # deselected would print a negative "selected"; the note counts them
        counted = [i for i in dropped if not isinstance(i, ZeroCodeItem)]
        if counted:
            config.hook.pytest_deselected(items=counted)
        items[:] = kept
    names = ", ".join(sorted(classes)[:8]) + (" …" if len(classes) > 8 else "")
    note = (
        f"shard {shard}: {len(dropped)} audit item(s) of other shards deselected"
        + (f" (classes {names})" if names else "")
        + "; `actaudit merge OUT DIR...` joins the shards' reports"
    )
    return note, len(dropped)
