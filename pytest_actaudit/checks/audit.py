"""``ClassAudit`` and ``AuditFailure``: the result of one maximization and the
checks users assert on it. numpy only; no pytest, no TensorFlow.

Every ``assert_*`` records its outcome (passed or failed) before raising, so the
report shows each check a test made.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import NDArray

from ..errors import ActauditError, CheckNotRun
from . import metrics
from .artifacts import DEFAULT_MAX_PULL, DEFAULT_MAX_RISE
from .trigger import DEFAULT_MAX_ANOMALY

F = TypeVar("F", bound=Callable[..., Any])


def _timed(attribute: str) -> Callable[[F], F]:
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


# Calibrated on the shortcut zoo (docs/shortcuts.md): 3 false alarms in 161 clean classes.
DEFAULT_MAX_FLIP_RATE = 0.5


def _fmt_list(values: Any) -> str:
    return "[" + ", ".join(f"{float(v):.2f}" for v in values) + "]"


class AuditFailure(AssertionError):
    """A check on a class-maximization result did not hold."""


class ReferenceContext(NamedTuple):
    """What the checks that need trusted references get from ``probe_context()``: the
    references (uint8 N × H × W × C) and their class indices, and the model's calls on
    images — probabilities, attribution maps, the last spatial layer's detectors — with
    the known inputs' ranking (for the error when the references are not read) and the
    object-free edits' screening (both once per model)."""

    references: Any
    labels: Any
    predict: Callable[[Any], Any]
    attribute: Callable[[Any, int], Any] | None = None
    detectors: Callable[[Any], Any] | None = None
    rank_inputs: Callable[[Any, Any], Any] | None = None
    screen: Callable[[Any], Any] | None = None
    # the labels are the model's own readings (a flat folder of photos, no class folders)
    read_by_model: bool = False
    # (class index, images, attribution, run) -> the probe's result: run() or a cached one
    remember_probe: Callable[[int, Any, Any, Callable[[], Any]], Any] | None = None
    # class index -> its trigger.TriggerEvidence (the search, once per model and class)
    triggers: Callable[[int], Any] | None = None


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


@dataclass
class ClassAudit:
    """Class-maximization images of one target, from several seeds, and their checks.

    ``images`` is uint8 seeds × H × W × C as the model sees it (after clipping to its
    input range and quantization); ``logits`` and ``probabilities`` are measured on
    exactly those images, one per seed, for the target class.
    """

    label: str
    index: int
    images: NDArray[np.uint8]
    logits: NDArray[np.float64]
    probabilities: NDArray[np.float64]
    seeds: list[int]
    steps: int
    curves: NDArray[np.float64]  # seeds × steps: target logit during optimization
    attribution: NDArray[np.float32] | None = None  # seeds × H × W, gradient × input
    # seeds × D penultimate features minus those of a mid-grey image
    features: NDArray[np.float64] | None = None
    model_name: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    nodeid: str = ""
    checks: list[CheckRecord] = field(default_factory=list)
    baseline_store: Any = None  # a BaselineStore, attached by the fixture
    baseline_images: NDArray[np.uint8] | None = None  # set by assert_matches_baseline
    # () -> (reference images, their class indices, predict): attached by the fixture
    probe_context: Any = None
    probe_result: Any = None  # a probe.ProbeResult, once the shortcut probe ran
    # artifacts.ArtifactReading of each assert_ignores, in order
    artifact_readings: list[Any] = field(default_factory=list)
    trigger_evidence: Any = None  # a trigger.TriggerEvidence, once assert_no_trigger ran
    _consistency: NDArray[np.float64] | None = field(default=None, repr=False)
    check_seconds: float = field(default=0.0, repr=False)  # in assert_*, the probe included
    probe_seconds: float = field(default=0.0, repr=False)  # in the shortcut probe

    @property
    def consistency_per_seed(self) -> NDArray[np.float64]:
        """Each seed's mean SSIM with the other seeds' images."""
        if self._consistency is None:
            self._consistency = metrics.pairwise_ssim(self.images)
        return self._consistency

    @property
    def consistency(self) -> float:
        """Mean pairwise SSIM between the seeds' images (1 = identical; nan with one
        seed: there is nothing to compare)."""
        return float(np.mean(self.consistency_per_seed))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    # ---------------------------------------------------------------- checks
    @_timed("check_seconds")
    def assert_activation(
        self, min_probability: float | None = None, min_logit: float | None = None
    ) -> ClassAudit:
        """Every seed's image must reach the probability and/or logit threshold."""
        __tracebackhide__ = True
        if min_probability is None and min_logit is None:
            raise TypeError("assert_activation needs min_probability=... and/or min_logit=...")
        if min_probability is not None:
            self._check("activation", "probability", self.probabilities, min_probability, ">=")
        if min_logit is not None:
            self._check("activation", "logit", self.logits, min_logit, ">=")
        return self

    @property
    def feature_similarity_per_seed(self) -> NDArray[np.float64]:
        """Each seed's mean cosine with the other seeds, in the model's penultimate
        feature space centred on a mid-grey image."""
        if self.features is None or self.features.shape[1] == 0:
            raise ValueError(
                f"class {self.label!r}: the model has no dense head to take features from; "
                "use metric='ssim'"
            )
        return metrics.pairwise_cosine(self.features)

    @_timed("check_seconds")
    def assert_consistent(self, min_similarity: float, metric: str = "ssim") -> ClassAudit:
        """Seeds must agree: each seed's mean similarity with the others ≥
        ``min_similarity``. ``metric="ssim"`` compares pixels (structural similarity);
        ``metric="features"`` compares what the model sees (centred cosine of the
        penultimate activations)."""
        __tracebackhide__ = True
        if len(self.images) < 2:
            raise ActauditError(
                f"class {self.label!r}: consistency compares the seeds' images with each "
                f"other, so with {len(self.images)} seed it is undefined (not a pass); use 2 "
                "or more seeds (seeds=, --actaudit-seeds, actaudit_seeds) or drop the check"
            )
        if metric == "ssim":
            values = self.consistency_per_seed
        elif metric == "features":
            values = self.feature_similarity_per_seed
        else:
            raise ValueError(
                f"unknown consistency metric {metric!r}; available: 'ssim', 'features'"
            )
        self._check("consistency", metric, values, min_similarity, ">=")
        return self

    def focus_shares(
        self, *, include: Any = None, exclude: Any = None
    ) -> tuple[NDArray[np.float64], float, str]:
        """Per seed: the share of the attribution that lies outside ``include`` or inside
        ``exclude``; also the share of the image's area that region covers, and a name."""
        from .regions import region_mask

        if (include is None) == (exclude is None):
            raise TypeError("assert_focus needs exactly one of include=... or exclude=...")
        if self.attribution is None:
            raise ValueError(f"class {self.label!r}: no attribution maps were computed")
        _, height, width = self.attribution.shape
        inside = region_mask(include if include is not None else exclude, height, width)
        counted = ~inside if include is not None else inside
        totals = self.attribution.reshape(len(self.attribution), -1).sum(axis=1)
        shares = (self.attribution * counted).reshape(len(self.attribution), -1).sum(axis=1)
        shares = np.divide(shares, totals, out=np.zeros_like(shares), where=totals > 0)
        what = f"outside {include}" if include is not None else f"inside {exclude}"
        if not isinstance(include if include is not None else exclude, str):
            what = "outside the mask" if include is not None else "inside the mask"
        return shares.astype(np.float64), float(counted.mean()), what

    @_timed("check_seconds")
    def assert_focus(
        self, *, include: Any = None, exclude: Any = None, max_share: float
    ) -> ClassAudit:
        """At most ``max_share`` of each seed's attribution (|gradient × input| of the
        target logit, relative to mid-grey) may lie inside ``exclude`` — or outside
        ``include``. Regions: ``border:N``, ``corners:N``, ``box:x0,y0,x1,y1`` or a mask."""
        __tracebackhide__ = True
        shares, area, what = self.focus_shares(include=include, exclude=exclude)
        self._check(
            "focus",
            f"attribution share {what} ({area:.0%} of the image area)",
            shares,
            max_share,
            "<=",
        )
        return self

    def _reference_context(self, check: str) -> ReferenceContext:
        """The trusted references and the model's calls on them (see probe_context)."""
        if self.probe_context is None:
            raise ValueError(
                f"class {self.label!r}: {check} needs reference images; use "
                "the actaudit fixture with --actaudit-references DIR (or override the "
                "actaudit_references fixture)"
            )
        return ReferenceContext(*self.probe_context())

    @_timed("probe_seconds")
    def shortcut_probe(self) -> Any:
        """Run (once) the shortcut probe: see :mod:`pytest_actaudit.checks.probe`."""
        if self.probe_result is None:
            from .probe import probe

            context = self._reference_context("the shortcut probe")
            if self.attribution is None or context.attribute is None:
                raise ValueError(f"class {self.label!r}: no attribution maps were computed")
            screen, attribute, attribution = context.screen, context.attribute, self.attribution

            def run() -> Any:
                return probe(
                    self.index,
                    self.images,
                    attribution,
                    context.references,
                    context.labels,
                    context.predict,
                    attribute,
                    context.detectors,
                    rank_inputs=context.rank_inputs,
                    screen=None if screen is None else lambda: screen(context.references),
                    read_by_model=context.read_by_model,
                )

            remember = context.remember_probe
            try:
                self.probe_result = (
                    run()
                    if remember is None
                    else remember(self.index, self.images, attribution, run)
                )
            except CheckNotRun as exc:  # say which class, by name
                raise CheckNotRun(
                    f"class {self.label!r}: {str(exc).replace(f' for class {self.index}', '')}"
                ) from None
        return self.probe_result

    @_timed("check_seconds")
    def assert_no_shortcut(self, max_flip_rate: float = DEFAULT_MAX_FLIP_RATE) -> ClassAudit:
        """Parts of each seed's image — its most salient half-side window, the places
        where a detector fires that no trusted reference fires, its colour, its low
        frequencies (background, lighting) — carried into real images of other classes
        may make the model read at most ``max_flip_rate`` more of them as this class
        than the same part of the class's own trusted references does (for the window:
        or than the model's accuracy on them, plus 0.25), in the median over seeds (an
        artifact shows in most seeds; one odd seed is no shortcut) — except a seed whose
        unseen detector fires at least 30× beyond any trusted image, which counts alone.
        No object-free edit
        (a band, a frame, a dot, a mark, a colour cast, a background) may make more than
        ``max_flip_rate`` of them read as this class with 2.5× the model's typical
        margin on real images. And no such edit may be what the class's own references
        need to be read right: it may raise their share read right by at most
        ``max_flip_rate`` over the model's accuracy on them (counted only when it also
        makes at least half of the other classes' references read as this class). The
        strongest evidence (the highest median, or a decisive seed's excess) is named."""
        __tracebackhide__ = True
        from .probe import DECISIVE_NOVELTY

        result = self.shortcut_probe()
        top = result.strongest
        others = "; ".join(
            f"{e.kind} {np.median(e.excess):+.2f}" for e in result.evidence if e is not top
        )
        flipped = top.flipped or f"{result.references_of_others} other-class references"
        note = (
            f"strongest evidence: {top.kind}, {top.describe()}: flips "
            f"{_fmt_list(top.flip_rates)} of {flipped}, control {top.control_rate:.2f} "
            f"({top.control_what}); other "
            f"evidence (median excess): {others}; the model "
            f"reads {result.class_accuracy:.0%} of this class's {result.references_of_class} "
            "references correctly"
            + (
                " (by construction: the references' classes are the model's own readings, "
                "so their accuracy is not checked)"
                if result.read_by_model
                else ""
            )
        )
        decisive = top.deciding_seed
        verdict_by = None
        metric = f"excess flip rate ({top.kind}), median over seeds"
        if decisive is not None:
            metric += " or a decisive seed"
            verdict_by = (
                f"seed {self.seeds[decisive]}: a detector "
                f"{float(top.novelty[decisive]):.0f}× beyond any trusted image, "
                f"≥ {DECISIVE_NOVELTY:g}×, counts alone",
                top.score,
            )
        self._check(
            "shortcut",
            metric,
            result.excess,
            max_flip_rate,
            "<=",
            note=note,
            by_median=True,
            verdict_by=verdict_by,
        )
        return self

    @_timed("check_seconds")
    def assert_ignores(
        self,
        artifact: Any,
        max_pull: float = DEFAULT_MAX_PULL,
        max_rise: float = DEFAULT_MAX_RISE,
    ) -> ClassAudit:
        """A named suspect (:mod:`pytest_actaudit.checks.artifacts`: a square, a text mark, a
        pasted logo, a band, a frame, a cast, or any function of uint8 images N × H × W
        × C) pasted into the trusted references of other classes may turn at most
        ``max_pull`` of them into this class (the share read as this class with it,
        minus without it). On a model with many classes, where a real shortcut rarely
        wins top-1, it also may not be specific to the class: raise the class's
        log-probability more than ``max_rise`` nats over the same edit without its
        content (the artifact's control) while the class ranks in the top 1% of all
        classes by that rise. The message adds how clearly they are read and what the
        artifact does to this class's own references, when any read as it."""
        __tracebackhide__ = True
        from .artifacts import as_artifact, measure
        from .probe import check_references_are_read

        named = as_artifact(artifact)
        context = self._reference_context("assert_ignores")
        references, labels, predict = context.references, context.labels, context.predict
        if not context.read_by_model:
            check_references_are_read(references, labels, predict(references), context.rank_inputs)
        reading = measure(self.index, named, references, labels, predict)
        self.artifact_readings.append(reading)
        self._check(
            "ignores",
            f"pull of {reading.description} (other-class references turned into this class)",
            [reading.pull],
            max_pull,
            "<=",
            note=reading.describe(named=False),
            per_seed=False,
        )
        if reading.top >= 1:
            specific = reading.specific(max_rise)
            self._check(
                "ignores",
                f"rise of this class's log-probability with {reading.description} over "
                f"{reading.control} (nats; counts in the top {reading.top} of "
                f"{reading.classes} classes by it)",
                [reading.specific_rise],
                max_rise,
                "<=",
                note=reading.describe_rise(repr(self.label)),
                per_seed=False,
                decided=(f"rank {reading.rank} of {reading.classes}", not specific),
            )
        return self

    @_timed("check_seconds")
    def assert_no_trigger(self, max_anomaly: float = DEFAULT_MAX_ANOMALY) -> ClassAudit:
        """The smallest trigger that turns trusted references of other classes into this
        class — a mask and pattern, or a colour change per channel (Neural Cleanse) —
        may be smaller than the model's other classes' by an anomaly index of at most
        ``max_anomaly``: ``(median − size) / (1.4826 · MAD)`` over the model's classes
        (all of them, or the audited ones and a sample of 20 in a large model).
        Discovery, not a gate: see docs/trigger-search.md for what it catches."""
        __tracebackhide__ = True
        from .trigger import check

        check(self, max_anomaly)
        return self

    @_timed("check_seconds")
    def assert_matches_baseline(self, min_similarity: float) -> ClassAudit:
        """Each seed's image must have SSIM ≥ ``min_similarity`` with the stored
        baseline image of the same seed. With ``--actaudit-generate-baseline`` the
        baseline is written instead (and the check passes)."""
        __tracebackhide__ = True
        store = self.baseline_store
        if store is None:
            raise AuditFailure(
                f"class {self.label!r}: no baseline folder configured; pass "
                "--actaudit-baseline DIR (ini actaudit_baseline), and make one with "
                "--actaudit-generate-baseline DIR"
            )
        if store.generate:
            where = store.write(self)
            self._check("baseline", f"written to {where}", [1.0] * len(self.seeds), 0.0, ">=")
            return self
        try:
            _, stored = store.read(self)
        except FileNotFoundError as exc:
            self._check(
                "baseline",
                "ssim (baseline missing)",
                [0.0] * len(self.seeds),
                min_similarity,
                ">=",
                note=str(exc),
            )
            return self  # not reached: _check raised
        values = []
        for seed, image in zip(self.seeds, self.images, strict=True):
            base = stored.get(seed)
            values.append(
                metrics.ssim(image, base) if base is not None and base.shape == image.shape else 0.0
            )
        self.baseline_images = np.stack(
            [stored.get(s, np.zeros_like(self.images[0])) for s in self.seeds]
        )
        missing = [s for s in self.seeds if s not in stored]
        note = f"no baseline image for seeds {missing}" if missing else ""
        self._check("baseline", "ssim", values, min_similarity, ">=", note=note)
        return self

    # -------------------------------------------------------------- helpers
    def _check(
        self,
        name: str,
        metric: str,
        values: Sequence[float] | NDArray[np.float64],
        threshold: float,
        comparison: str,
        note: str = "",
        by_median: bool = False,
        verdict_by: tuple[str, float] | None = None,
        per_seed: bool = True,
        decided: tuple[str, bool] | None = None,
    ) -> None:
        """Record a check; it fails when a seed misses the threshold, or with
        ``by_median`` when the median over seeds does (evidence most seeds show), or
        the value ``verdict_by`` names instead of the median (what decides, value).
        Without ``per_seed``, ``values`` is one value that no seed's image decides.
        ``decided`` is a verdict the caller reached with more than the threshold (what
        else decided, passed)."""
        __tracebackhide__ = True
        vals = [float(v) for v in values]
        compare: Callable[[float], bool] = (
            (lambda v: v >= threshold) if comparison == ">=" else (lambda v: v <= threshold)
        )
        bad = [i for i, v in enumerate(vals) if not compare(v)]
        shown = (
            ", ".join(
                f"seed {s}: {v:.4g}{' ✗' if i in bad else ''}"
                for i, (s, v) in enumerate(zip(self.seeds, vals, strict=True))
            )
            if per_seed
            else f"value {vals[0]:.4g} (one value: the seeds' images do not enter it)"
        )
        if decided is not None:
            what, passed = decided
            verdict = f"{'passed' if passed else 'failed'} ({what})"
        elif verdict_by is not None:
            what, value = verdict_by
            passed = compare(value)
            verdict = f"{'passed' if passed else 'failed'} ({what}: {value:.4g})"
        elif not per_seed:
            passed = not bad
            verdict = "passed" if passed else "failed"
        elif by_median:
            median = float(np.median(vals))
            passed = compare(median)
            verdict = f"{'passed' if passed else 'failed'} (median {median:.4g})"
        else:
            passed = not bad
            verdict = "passed" if passed else f"failed for {len(bad)} of {len(vals)} seeds"
        message = (
            f"class {self.label!r} (index {self.index}): {name} {metric} {verdict}; "
            f"required {comparison} {threshold:g}; {shown}"
        )
        if note:
            message += f" ({note})"
        self.checks.append(
            CheckRecord(name, metric, vals, float(threshold), comparison, passed, message)
        )
        if not passed:
            raise AuditFailure(message)

    def to_record(self) -> dict[str, Any]:
        """Plain data for the report (images travel separately)."""
        return {
            "label": self.label,
            "index": int(self.index),
            "model": self.model_name,
            "nodeid": self.nodeid,
            "seeds": list(self.seeds),
            "steps": int(self.steps),
            "logits": [float(v) for v in self.logits],
            "probabilities": [None if np.isnan(v) else float(v) for v in self.probabilities],
            # with one seed undefined: None and [] (the report shows "—"), never 1
            "consistency": None if len(self.images) < 2 else self.consistency,
            "consistency_per_seed": (
                [float(v) for v in self.consistency_per_seed] if len(self.images) > 1 else []
            ),
            "feature_similarity_per_seed": (
                [float(v) for v in self.feature_similarity_per_seed]
                if self.features is not None and self.features.shape[1] and len(self.images) > 1
                else None
            ),
            # 4 significant digits draw the same curve: results.json half the size
            "curves": [[float(f"{v:.4g}") for v in curve] for curve in self.curves],
            "checks": [c.to_dict() for c in self.checks],
            "passed": self.passed,
            "settings": dict(self.settings),
        }
