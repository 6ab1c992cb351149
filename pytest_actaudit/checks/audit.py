"""``ClassAudit``: the result of one maximization and the checks users assert on it.
numpy only; no pytest, no TensorFlow: what the checks ask of the model comes in a
``ReferenceSource`` given when the audit is made (:mod:`.model_calls`).

Every ``assert_*`` records its outcome (passed or failed) before raising, so the
report shows each check a test made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ActauditError
from . import metrics
from .artifacts import DEFAULT_MAX_PULL, DEFAULT_MAX_RISE
from .model_calls import ReferenceContext, ReferenceSource
from .on_references import context_of, read_suspect, run_probe, shortcut_terms
from .trigger import DEFAULT_MAX_LIFT
from .verdict import AuditFailure, CheckRecord, Verdict, judge, timed

if TYPE_CHECKING:
    from .artifacts import Artifact, ArtifactReading
    from .baseline import BaselineStore
    from .probe import ProbeResult
    from .trigger import TriggerEvidence

__all__ = ["AuditFailure", "CheckRecord", "ClassAudit", "ReferenceContext", "ReferenceSource"]

# a region of the image: "border:N", "corners:N", "box:x0,y0,x1,y1" or a bool mask H × W
Region = str | NDArray[np.bool_]

# Chosen on the shortcut zoo (docs/shortcut-measurements.md).
DEFAULT_MAX_FLIP_RATE = 0.5


@dataclass
class ClassAudit:
    """Class-maximization images of one target, from several seeds, and their checks.
    ``images``: uint8 seeds × H × W × C as the model sees them (clipped to its input range,
    quantized); ``logits`` and ``probabilities`` of the target, per seed, measured on them."""

    label: str
    index: int
    images: NDArray[np.uint8]
    logits: NDArray[np.float64]
    probabilities: NDArray[np.float64]
    seeds: list[int]
    steps: int
    curves: NDArray[np.float64]  # seeds × steps: target logit during optimization
    stopped_steps: list[int] = field(default_factory=list)  # per seed: the stop rule's step
    attribution: NDArray[np.float32] | None = None  # seeds × H × W, gradient × input
    features: NDArray[np.float64] | None = None  # seeds × D, penultimate minus mid-grey's
    model_name: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    # given when the audit is made (the runner, or a test): the test's node id, the
    # trusted references with the model's calls on them, the baseline folder
    nodeid: str = ""
    on_references: ReferenceSource | None = None
    baseline_store: BaselineStore | None = None
    checks: list[CheckRecord] = field(default_factory=list)
    baseline_images: NDArray[np.uint8] | None = None  # set by assert_matches_baseline
    probe_result: ProbeResult | None = None  # once the shortcut probe ran
    artifact_readings: list[ArtifactReading] = field(default_factory=list)  # assert_ignores
    trigger_evidence: TriggerEvidence | None = None  # once assert_no_trigger ran
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
    @timed("check_seconds")
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

    @timed("check_seconds")
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
        self, *, include: Region | None = None, exclude: Region | None = None
    ) -> tuple[NDArray[np.float64], float, str]:
        """Per seed: the share of the attribution that lies outside ``include`` or inside
        ``exclude``; also the share of the image's area that region covers, and a name."""
        from .regions import attribution_shares

        if (include is None) == (exclude is None):
            raise TypeError("assert_focus needs exactly one of include=... or exclude=...")
        if self.attribution is None:
            raise ValueError(f"class {self.label!r}: no attribution maps were computed")
        return attribution_shares(self.attribution, include=include, exclude=exclude)

    @timed("check_seconds")
    def assert_focus(
        self,
        *,
        include: Region | None = None,
        exclude: Region | None = None,
        max_share: float,
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

    @timed("probe_seconds")
    def shortcut_probe(self) -> ProbeResult:
        """Run (once) the shortcut probe: see :mod:`pytest_actaudit.checks.probe`."""
        if self.probe_result is None:
            context = context_of(self.on_references, self.label, "the shortcut probe")
            if self.attribution is None:
                raise ValueError(f"class {self.label!r}: no attribution maps were computed")
            self.probe_result = run_probe(
                self.label, self.index, self.images, self.attribution, context
            )
        return self.probe_result

    @timed("check_seconds")
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
        result = self.shortcut_probe()
        metric, note, verdict_by = shortcut_terms(result, self.seeds)
        self._check(
            "shortcut",
            metric,
            result.excess,
            max_flip_rate,
            "<=",
            note=note,
            how=Verdict(by_median=True, verdict_by=verdict_by),
        )
        return self

    @timed("check_seconds")
    def assert_ignores(
        self,
        artifact: Artifact | Callable[[NDArray[np.uint8]], NDArray[np.uint8]],
        max_pull: float = DEFAULT_MAX_PULL,
        max_rise: float = DEFAULT_MAX_RISE,
    ) -> ClassAudit:
        """A named suspect (``artifacts.square``, ``text``, ``patch``, …, or any function of
        uint8 images N × H × W × C) pasted into other classes' trusted references may turn
        at most ``max_pull`` of them into this class. With 100+ classes it also may not
        raise this class's log-probability ``max_rise`` nats over the same edit without its
        content while the class ranks in the top 1% by that rise (docs/shortcuts.md)."""
        __tracebackhide__ = True
        from .artifacts import as_artifact

        named = as_artifact(artifact)
        reading = read_suspect(
            self.index, named, context_of(self.on_references, self.label, "assert_ignores")
        )
        self.artifact_readings.append(reading)
        self._check(
            "ignores",
            f"pull of {reading.description} (other-class references turned into this class)",
            [reading.pull],
            max_pull,
            "<=",
            note=reading.describe(named=False),
            how=Verdict(per_seed=False),
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
                how=Verdict(
                    per_seed=False,
                    decided=(f"rank {reading.rank} of {reading.classes}", not specific),
                ),
            )
        return self

    @timed("check_seconds")
    def assert_no_trigger(self, max_lift: float = DEFAULT_MAX_LIFT) -> ClassAudit:
        """This class's smallest trigger turns held-out images of other classes into it at
        most ``max_lift`` more often than the model's other classes' triggers turn theirs
        (median). Discovery: docs/trigger-search.md."""
        __tracebackhide__ = True
        from .trigger import check

        check(self, max_lift, context_of(self.on_references, self.label, "assert_no_trigger"))
        return self

    @timed("check_seconds")
    def assert_matches_baseline(self, min_similarity: float) -> ClassAudit:
        """Each seed's image must have SSIM ≥ ``min_similarity`` with the stored
        baseline image of the same seed. With ``--actaudit-generate-baseline`` the
        baseline is written instead (and the check passes)."""
        __tracebackhide__ = True
        from .baseline import compared

        metric, values, threshold, images, note = compared(
            self.baseline_store, self, min_similarity
        )
        if images is not None:
            self.baseline_images = images
        self._check("baseline", metric, values, threshold, ">=", note=note)
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
        how: Verdict | None = None,
    ) -> None:
        """Record a check (:func:`.verdict.judge`); raise ``AuditFailure`` when it failed."""
        __tracebackhide__ = True
        subject = f"class {self.label!r} (index {self.index})"
        record = judge(subject, self.seeds, name, metric, values, threshold, comparison, note, how)
        self.checks.append(record)
        if not record.passed:
            raise AuditFailure(record.message)

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
            "stopped_steps": [int(v) for v in self.stopped_steps or [self.steps] * len(self.seeds)],
            "checks": [c.to_dict() for c in self.checks],
            "passed": self.passed,
            "settings": dict(self.settings),
        }
