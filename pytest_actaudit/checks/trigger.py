"""Judging a trigger search: does a class's smallest trigger work on images it was never
fitted to, much more than the same model's other classes' triggers do? (The search is
the engine's, ``pytest_actaudit.engine.trigger``: this module gets plain numbers and
never imports it.)

On small models every class has a small trigger (a universal adversarial patch), so a
trigger's size alone (Neural Cleanse's anomaly index) does not tell a learned shortcut
from one. What does is robustness: a patch fitted to a handful of images turns few
others, while a learned artifact turns most images it is pasted into. The score, the
**lift**, is the share of held-out references of other classes the class's kept trigger
turns into it, minus the median share over the model's other compared classes (all of
them, or a random sample of ``NULL_CLASSES`` for a model with many): the null is the
model in hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .model_calls import ReferenceContext
from .verdict import Verdict

DEFAULT_MAX_LIFT = 0.35
NULL_CLASSES = 20  # classes compared with, beyond the audited ones, in a large model
UNREACHED = 1.0  # the engine's size for a trigger that never turned enough images


class Edit(NamedTuple):
    """A class's kept trigger: its size (the mask's mean; ``UNREACHED`` when it never
    turned enough of the images it was fitted to) and the share of held-out images it
    turns."""

    size: float
    held_out: float


def null_classes(
    n_classes: int, audited: Sequence[int], sample: int = NULL_CLASSES, seed: int = 0
) -> list[int]:
    """The classes whose triggers are searched: the audited ones, and every other class
    of a model with at most ``sample`` others, else a random sample of ``sample`` of
    them (fixed by ``seed``: the same null for every run of the same model)."""
    audited = [int(k) for k in dict.fromkeys(audited)]
    for k in audited:
        if not 0 <= k < n_classes:
            raise ValueError(f"class index {k} is outside the model's {n_classes} classes")
    others = [k for k in range(n_classes) if k not in audited]
    if len(others) > sample:
        rng = np.random.default_rng(seed)
        others = sorted(int(k) for k in rng.choice(others, size=sample, replace=False))
    return audited + others


def lift(held_out: Mapping[int, float], index: int) -> float:
    """Class ``index``'s held-out success minus the median of the other classes' in
    ``held_out`` (the compared classes, ``index`` among them)."""
    if index not in held_out:
        raise ValueError(f"class {index} has no trigger among {sorted(held_out)}")
    others = [float(v) for k, v in held_out.items() if k != index]
    return float(held_out[index]) - float(np.median(others))


@dataclass(frozen=True)
class TriggerReading:
    """What the trigger search says of one class."""

    index: int
    lift: float
    edit: Edit
    null_held_out: float  # the other compared classes' median held-out share
    rank: int  # 1 = the trigger that turns the most held-out images
    compared: int  # classes compared (the class included)
    edits: dict[int, Edit] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lift": self.lift,
            "size": self.edit.size,
            "held_out": self.edit.held_out,
            "null_held_out": self.null_held_out,
            "rank": self.rank,
            "compared": self.compared,
        }

    def describe(self) -> str:
        """One sentence for a failure message or the report."""
        if self.edit.size >= UNREACHED:
            what = "no trigger turned enough of the images it was fitted to; the last "
        else:
            what = f"its smallest trigger, a mask covering {self.edit.size:.1%} of the image, "
        return (
            f"{what}turns {self.edit.held_out:.0%} of held-out references of other classes "
            f"into it, the model's other classes' a median {self.null_held_out:.0%}: lift "
            f"{self.lift:+.2f}, {self.rank} of {self.compared} classes"
        )


def read(edits: Mapping[int, Edit], index: int) -> TriggerReading:
    """The reading of class ``index`` against every class in ``edits`` (the searched
    ones)."""
    if len(edits) < 3:
        raise ValueError(
            f"the trigger's score needs at least 3 classes to compare, got {len(edits)}; "
            "search more classes of the model"
        )
    score = lift({k: e.held_out for k, e in edits.items()}, index)
    mine = edits[index].held_out
    others = [e.held_out for k, e in edits.items() if k != index]
    return TriggerReading(
        index=index,
        lift=score,
        edit=Edit(*map(float, edits[index])),
        null_held_out=float(np.median(others)),
        rank=1 + sum(v > mine for v in others),
        compared=len(edits),
        edits=dict(edits),
    )


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The probability that a positive scores above a negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    p = np.asarray(positives, np.float64)[:, None]
    n = np.asarray(negatives, np.float64)[None, :]
    return float(np.mean((p > n) + 0.5 * (p == n)))


@dataclass(frozen=True)
class TriggerEvidence:
    """A class's trigger as the report shows it, with its reading: the mask times the
    pattern (on grey), the mask alone, and real images of other classes with it."""

    reading: TriggerReading
    picture: np.ndarray  # uint8 H × W × C: the pattern where the mask is, grey elsewhere
    mask: np.ndarray  # uint8 H × W: the mask, 0-255
    examples: np.ndarray  # uint8 n × H × W × C: other classes' references, edited
    originals: np.ndarray  # the same references, unedited
    success: float  # share of the images the kept trigger was fitted to that it turns
    seconds: float  # the search's time for this class


def trigger_picture(mask: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """The pattern where the mask is, mid-grey elsewhere (uint8)."""
    m = np.asarray(mask, np.float32)[..., None]
    out = 128.0 * (1.0 - m) + m * np.asarray(pattern, np.float32)
    return np.asarray(np.clip(np.round(out), 0, 255), np.uint8)


def check(audit: Any, max_lift: float, context: ReferenceContext) -> None:
    """``ClassAudit.assert_no_trigger``'s work: the class's trigger evidence (searched once
    per model, through the references' context) recorded as a check of ``audit``."""
    __tracebackhide__ = True
    if context.triggers is None:
        raise ValueError(f"class {audit.label!r}: no trigger search for this model")
    if audit.trigger_evidence is None:
        audit.trigger_evidence = context.triggers(audit.index)
    reading = audit.trigger_evidence.reading
    audit._check(
        "trigger",
        f"lift of its smallest trigger on held-out references over {reading.compared - 1} "
        "other classes'",
        [reading.lift],
        max_lift,
        "<=",
        note=f"{reading.describe()}; it turns {audit.trigger_evidence.success:.0%} of the "
        "images it was fitted to",
        how=Verdict(per_seed=False),
    )
