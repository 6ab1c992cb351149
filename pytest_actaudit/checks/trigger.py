"""Judging a trigger search: is a class's smallest trigger an outlier among the same
model's classes? (Neural Cleanse's anomaly index; the search itself is the engine's,
``pytest_actaudit.engine.trigger``: this module gets plain sizes and never imports it.)

A class whose trigger — the smallest edit turning trusted images of other classes into
it — is much smaller than the model's other classes' carries a shortcut: something
small stands in for the class. The null is the model in hand: the sizes of its own
classes' triggers (all of them, or a random sample of ``NULL_CLASSES`` for a model with
many), not a threshold carried over from other models. Two kinds of edit are judged
apart (a mask and pattern; a colour change per channel) and the larger outlier counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .model_calls import ReferenceContext
from .verdict import Verdict

DEFAULT_MAX_ANOMALY = 2.0  # Neural Cleanse's threshold on the anomaly index
NULL_CLASSES = 20  # classes compared with, beyond the audited ones, in a large model
UNREACHED = 1.0  # the engine's size for an edit that never turned enough images
CONSISTENCY = 1.4826  # MAD × this estimates the standard deviation of a normal sample


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


def anomaly_index(sizes: Mapping[int, float], index: int) -> float:
    """Neural Cleanse's anomaly index of class ``index`` on the small side:
    ``(median − size) / (1.4826 · MAD)`` over every class in ``sizes`` (itself included),
    0 when its trigger is not smaller than the median. A MAD of zero (every size equal)
    is floored at a thousandth of the median: no class stands out then."""
    if index not in sizes:
        raise ValueError(f"class {index} has no trigger size among {sorted(sizes)}")
    values = np.array(list(sizes.values()), np.float64)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    spread = CONSISTENCY * max(mad, 1e-3 * abs(median), 1e-12)
    return max(0.0, (median - float(sizes[index])) / spread)


@dataclass(frozen=True)
class TriggerReading:
    """What the trigger search says of one class."""

    index: int
    anomaly: float  # the larger of the two kinds' anomaly indices
    kind: str  # the kind that gave it: "mask" or "colour"
    mask_size: float
    colour_size: float
    mask_anomaly: float
    colour_anomaly: float
    rank: int  # 1 = the smallest trigger of the compared classes, in the stronger kind
    compared: int  # classes compared (the class included)
    sizes: dict[str, dict[int, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "anomaly": self.anomaly,
            "kind": self.kind,
            "mask_size": self.mask_size,
            "colour_size": self.colour_size,
            "mask_anomaly": self.mask_anomaly,
            "colour_anomaly": self.colour_anomaly,
            "rank": self.rank,
            "compared": self.compared,
        }

    def describe(self) -> str:
        """One sentence for a failure message or the report."""
        size = self.mask_size if self.kind == "mask" else self.colour_size
        if size >= UNREACHED:
            return (
                f"no {self.kind} edit turned enough of the other classes' references into "
                f"it, anomaly index {self.anomaly:.2f}"
            )
        what = (
            f"a mask covering {size:.1%} of the image"
            if self.kind == "mask"
            else f"a colour change of {size:.3f} per pixel (0-1 units)"
        )
        return (
            f"its smallest trigger ({what}) is {self.rank} of {self.compared} classes by "
            f"size, anomaly index {self.anomaly:.2f}"
        )


def read(
    mask_sizes: Mapping[int, float], colour_sizes: Mapping[int, float], index: int
) -> TriggerReading:
    """The reading of class ``index`` against every class in the two size maps (the
    same classes in both: the searched ones). Each kind is judged among the classes it
    reached (a size below ``UNREACHED``): a class the edit never turned has no size to
    compare, and a kind that reached fewer than 3 classes gives no verdict (anomaly 0)
    — a colour change that turns the images into the one class a washed-out image
    falls back to is no outlier when no other class can be reached to compare with."""
    if set(mask_sizes) != set(colour_sizes):
        raise ValueError("the mask and colour sizes must cover the same classes")
    if len(mask_sizes) < 3:
        raise ValueError(
            f"the trigger's outlier score needs at least 3 classes to compare, got "
            f"{len(mask_sizes)}; search more classes of the model"
        )
    mask = _judged(mask_sizes, index)
    colour = _judged(colour_sizes, index)
    kind, sizes = ("colour", colour_sizes) if colour > mask else ("mask", mask_sizes)
    rank = 1 + sum(float(v) < float(sizes[index]) for k, v in sizes.items() if k != index)
    return TriggerReading(
        index=index,
        anomaly=max(mask, colour),
        kind=kind,
        mask_size=float(mask_sizes[index]),
        colour_size=float(colour_sizes[index]),
        mask_anomaly=mask,
        colour_anomaly=colour,
        rank=rank,
        compared=len(sizes),
        sizes={"mask": dict(mask_sizes), "colour": dict(colour_sizes)},
    )


def _judged(sizes: Mapping[int, float], index: int) -> float:
    """The anomaly index among the reached classes; 0 when ``index`` was not reached or
    fewer than 3 were."""
    reached = {k: float(v) for k, v in sizes.items() if float(v) < UNREACHED}
    if index not in reached or len(reached) < 3:
        return 0.0
    return anomaly_index(reached, index)


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
    pattern (on grey), the mask alone, and real images of other classes with the
    stronger kind of edit applied."""

    reading: TriggerReading
    picture: np.ndarray  # uint8 H × W × C: the pattern where the mask is, grey elsewhere
    mask: np.ndarray  # uint8 H × W: the mask, 0-255
    examples: np.ndarray  # uint8 n × H × W × C: other classes' references, edited
    originals: np.ndarray  # the same references, unedited
    success: float  # share of the class's search images the kept edit turns
    seconds: float  # the search's time for this class


def trigger_picture(mask: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """The pattern where the mask is, mid-grey elsewhere (uint8)."""
    m = np.asarray(mask, np.float32)[..., None]
    out = 128.0 * (1.0 - m) + m * np.asarray(pattern, np.float32)
    return np.asarray(np.clip(np.round(out), 0, 255), np.uint8)


def check(audit: Any, max_anomaly: float, context: ReferenceContext) -> None:
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
        f"anomaly index of its smallest trigger ({reading.kind}) among {reading.compared} classes",
        [reading.anomaly],
        max_anomaly,
        "<=",
        note=f"{reading.describe()}; it turns "
        f"{audit.trigger_evidence.success:.0%} of the other classes' references",
        how=Verdict(per_seed=False),
    )
