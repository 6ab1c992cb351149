"""Sharding: which CI job audits which (model, class). No pytest, no TensorFlow.

Job K of N (``--actaudit-shard K/N``) audits the classes whose index, turned by a fixed
offset per model, falls on K: round robin over a model's classes, so shards get equal
shares (±1 class), the split is the same on every machine and in every run, and a class
is audited by exactly one shard. An audit test whose classes are not known at collection
goes whole to the shard its node id falls on. ``actaudit merge`` joins the reports.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path


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


def parse_shard(value: str, name: str = "--actaudit-shard") -> str:
    """``"K/N"`` with 1 ≤ K ≤ N, normalized; anything else names the fix."""
    text = str(value).strip()
    parts = text.split("/")
    try:
        index, count = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        index, count = 0, 0
    if count < 1 or not 1 <= index <= count:
        sep = " = " if name.startswith("actaudit_") else " "  # the ini's form or the flag's
        raise ValueError(
            f"{name} must be K/N with 1 <= K <= N (job K of N, counted from 1), got "
            f"{value!r}; for example {name}{sep}1/4 … 4/4 in four CI jobs"
        )
    return f"{index}/{count}"


def shard_from(text: str | None) -> Shard | None:
    """The parsed setting (``"K/N"`` or None)."""
    if not text:
        return None
    index, count = (int(p) for p in parse_shard(text).split("/"))
    return Shard(index, count)
