"""A check's outcome: ``CheckRecord`` (what the report shows), ``AuditFailure`` (what the
test sees) and ``judge``, which turns per-seed values and a threshold into both. numpy only.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])


class AuditFailure(AssertionError):
    """A check on a class-maximization result did not hold."""


@dataclass
class CheckRecord:
    """One check as the report shows it: metric, per-seed values, threshold, outcome."""

    name: str
    metric: str
    values: list[float]
    threshold: float
    comparison: str  # ">=" or "<="
    passed: bool
    message: str

    def summary(self) -> str:
        """One line for JUnit XML: outcome, per-seed values and the threshold."""
        values = ", ".join(f"{v:.4g}" for v in self.values)
        verdict = "passed" if self.passed else "FAILED"
        return f"{verdict}: [{values}] {self.comparison} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "values": [float(v) for v in self.values],
            "threshold": float(self.threshold),
            "comparison": self.comparison,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class Verdict:
    """How a check's values decide, besides every seed meeting the threshold.

    ``by_median``: the median over seeds decides (evidence most seeds show).
    ``verdict_by``: (what decides, its value) instead of the median.
    ``per_seed`` False: the values are one value that no seed's image decides.
    ``decided``: a verdict the caller reached with more than the threshold (what else
    decided, passed)."""

    by_median: bool = False
    verdict_by: tuple[str, float] | None = None
    per_seed: bool = True
    decided: tuple[str, bool] | None = None


def judge(
    subject: str,
    seeds: Sequence[int],
    name: str,
    metric: str,
    values: Sequence[float] | NDArray[np.float64],
    threshold: float,
    comparison: str,
    note: str = "",
    how: Verdict | None = None,
) -> CheckRecord:
    """The record of one check on ``subject`` (e.g. "class 'cat' (index 3)"): it fails when
    a seed misses the threshold, or as ``how`` says."""
    how = how or Verdict()
    vals = [float(v) for v in values]
    compare: Callable[[float], bool] = (
        (lambda v: v >= threshold) if comparison == ">=" else (lambda v: v <= threshold)
    )
    bad = [i for i, v in enumerate(vals) if not compare(v)]
    shown = (
        ", ".join(
            f"seed {s}: {v:.4g}{' ✗' if i in bad else ''}"
            for i, (s, v) in enumerate(zip(seeds, vals, strict=True))
        )
        if how.per_seed
        else f"value {vals[0]:.4g} (one value: the seeds' images do not enter it)"
    )
    if how.decided is not None:
        what, passed = how.decided
        verdict = f"{'passed' if passed else 'failed'} ({what})"
    elif how.verdict_by is not None:
        what, value = how.verdict_by
        passed = compare(value)
        verdict = f"{'passed' if passed else 'failed'} ({what}: {value:.4g})"
    elif not how.per_seed:
        passed = not bad
        verdict = "passed" if passed else "failed"
    elif how.by_median:
        median = float(np.median(vals))
        passed = compare(median)
        verdict = f"{'passed' if passed else 'failed'} (median {median:.4g})"
    else:
        passed = not bad
        verdict = "passed" if passed else f"failed for {len(bad)} of {len(vals)} seeds"
    message = f"{subject}: {name} {metric} {verdict}; required {comparison} {threshold:g}; {shown}"
    if note:
        message += f" ({note})"
    return CheckRecord(name, metric, vals, float(threshold), comparison, passed, message)


def timed(attribute: str) -> Callable[[F], F]:
    """Add the method's wall time to ``self.<attribute>`` (the report's time split)."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            began = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                setattr(self, attribute, getattr(self, attribute) + time.perf_counter() - began)

        return wrapper  # type: ignore[return-value]

    return decorate
