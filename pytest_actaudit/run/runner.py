"""One model's audits: resolves targets, batches every (target, seed) not yet computed
into one engine run, and turns engine results into ``ClassAudit``s made with what their
checks need (``AuditLinks``). Built by :mod:`.build`. No pytest import; TensorFlow is
imported when a runner is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..checks.audit import ClassAudit
from ..errors import OptimizationError
from ..model import inputs
from ..model import labels as labels_mod
from ..model import load as model_mod
from .meta import model_meta
from .reference_calls import EngineReferences, GivenReferences, ReferenceMemo
from .triggers import trigger_context

if TYPE_CHECKING:
    from ..checks.baseline import BaselineStore
    from ..engine.loop import Engine, EngineSettings, ImageResult
    from ..model.inputs import InputSpec
    from .cache import ResultCache

if TYPE_CHECKING:
    from ..engine.inference import Inference


@dataclass
class RunStats:
    """What the report header tells about the engine's work."""

    images: int = 0
    seconds: float = 0.0  # engine runs, tracing included
    trace_seconds: float = 0.0  # of which: building the compiled loops
    chunks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditLinks:
    """What a runner gives each audit it makes besides its images: the test's node id,
    the trusted references (read on first use), the baseline folder."""

    nodeid: str = ""
    references: Callable[[], GivenReferences] | None = None
    baseline: BaselineStore | None = None


class AuditRunner:
    """Audits of one model: build once, call ``maximize`` many times."""

    def __init__(
        self,
        model: Any,
        *,
        labels: str | list[str] | None = None,
        model_path: str | None = None,
        input_range: str | None = None,
        input_size: str | Sequence[int] | None = None,
        size_source: str = "input_size",
        preprocess: str | None = None,
        engine_settings: EngineSettings | None = None,
        progress: Callable[[str], None] | None = None,
        cache_dir: str | None = None,
        output: str | None = None,
        weights: str | None = None,
    ) -> None:
        from ..engine.loop import EngineSettings
        from ..engine.registry import engine_for

        model = model_mod.select_output(model, output)  # one classifier output
        self.model = model
        self.model_path = model_path
        self.output = output
        self.spec: InputSpec = inputs.input_spec(
            model, input_range, input_size, size_source, preprocess=preprocess
        )
        self.labels = labels_mod.resolve_labels(model, labels, model_path)
        self.settings = engine_settings or EngineSettings()
        # the model's hash (``weights``: already known, from another runner of it)
        self.weights = weights or (
            model_mod.content_hash(model_path) if model_path else model_mod.weights_hash(model)
        )
        self.engine: Engine = engine_for(model, self.spec, self.settings, weights=self.weights)
        self.progress = progress
        self.stats = RunStats()
        self.reference_memo = ReferenceMemo()  # the shortcut probe's calls on the references
        # (layer or None for class logits, target, seed, steps) -> ImageResult
        self._results: dict[tuple[str | None, int, int, int], ImageResult] = {}
        self._layer_engines: dict[str, Engine] = {}
        self.meta = model_meta(
            str(model_path or getattr(model, "name", "model"))
            + (f" → {output}" if output and model_path else ""),
            self.weights,
            self.spec,
            len(self.labels),
            self.settings,
            self.engine,
        )
        self.cache: ResultCache | None = None
        if cache_dir:
            self.cache = _result_cache(self, cache_dir, preprocess)

    def classify(self, images: NDArray[np.uint8]) -> NDArray[np.int64]:
        """The class the model reads in each uint8 image (through the same input range
        and preprocessing as every check): the labels of references without classes."""
        read: NDArray[np.int64] = np.argmax(
            self.engine.inference.predict(np.asarray(images, np.uint8))[1], axis=1
        )
        return read

    def audited_classes(self) -> list[int]:
        """The classes optimized so far (a session's planned batch: all its classes)."""
        return sorted({index for layer, index, _, _ in self._results if layer is None})

    def resolve(self, target: str | int) -> int:
        return labels_mod.resolve_target(target, self.labels)

    def class_audits(
        self,
        targets: Iterable[str | int],
        *,
        seeds: int,
        steps: int,
        planned: Iterable[str | int] = (),
        links: AuditLinks | None = None,
    ) -> list[ClassAudit]:
        """One ``ClassAudit`` per target, made with ``links``. Every (target, seed) not
        yet computed nor cached is optimized in one batch, together with the ``planned``
        targets that later tests will ask for (names that are not classes are ignored
        there)."""
        indices = [self.resolve(t) for t in targets]
        extra = [self.resolve_lenient(t) for t in planned]
        seed_list = list(range(seeds))
        wanted = [*indices, *(i for i in extra if i is not None)]
        self._ensure(self.engine, None, wanted, seed_list, steps)
        neutral = self.engine.inference.neutral_features()
        return [
            self._make_audit(
                [self._results[(None, i, s, steps)] for s in seed_list],
                self.labels[i],
                i,
                seed_list,
                steps,
                neutral,
                links,
            )
            for i in indices
        ]

    def _ensure(
        self,
        engine: Engine,
        layer: str | None,
        targets: Iterable[int],
        seeds: list[int],
        steps: int,
    ) -> None:
        """Have a result for every (target, seed): from memory, the cache (class
        targets only), or one engine run over all that are still missing."""
        cache = self.cache if layer is None else None
        plan = []
        for i in dict.fromkeys(targets):
            for s in seeds:
                if (layer, i, s, steps) in self._results:
                    continue
                entry = cache.get(i, s, steps) if cache else None
                if entry is None:
                    plan.append((i, s))
                else:
                    self._results[(layer, i, s, steps)] = _from_cache(i, s, entry)
        if not plan:
            return
        began, traced = time.perf_counter(), engine.trace_seconds
        for result in engine.run(plan, steps, progress=self.progress):
            self._results[(layer, result.target, result.seed, steps)] = result
            if cache:
                cache.put(result.target, result.seed, steps, vars(result))
        self.stats.images += len(plan)
        self.stats.seconds += time.perf_counter() - began
        self.stats.trace_seconds += engine.trace_seconds - traced

    def class_audit(
        self,
        target: str | int,
        *,
        seeds: int,
        steps: int,
        planned: Iterable[str | int] = (),
        links: AuditLinks | None = None,
    ) -> ClassAudit:
        return self.class_audits([target], seeds=seeds, steps=steps, planned=planned, links=links)[
            0
        ]

    def unit_audits(
        self,
        layer: str,
        units: Iterable[int],
        *,
        seeds: int,
        steps: int,
        links: AuditLinks | None = None,
    ) -> list[ClassAudit]:
        """Images that maximize units of a Dense layer or filters of a conv layer
        (averaged over space): one ``ClassAudit`` per unit, labelled ``layer[unit]``."""
        from ..engine.registry import engine_for
        from ..errors import ActauditError

        if layer not in self._layer_engines:
            self._layer_engines[layer] = engine_for(
                self.model, self.spec, self.settings, weights=self.weights, layer=layer
            )
        engine = self._layer_engines[layer]
        count = int(engine.scores.logits.outputs[0].shape[-1])
        indices = [int(u) for u in units]
        for u in indices:
            if not 0 <= u < count:
                raise ActauditError(
                    f"unit {u} is out of range: layer {layer!r} has {count} units/filters "
                    f"(0..{count - 1})"
                )
        seed_list = list(range(seeds))
        self._ensure(engine, layer, indices, seed_list, steps)
        return [
            self._make_audit(
                [self._results[(layer, u, s, steps)] for s in seed_list],
                f"{layer}[{u}]",
                u,
                seed_list,
                steps,
                None,
                links,
            )
            for u in indices
        ]

    def resolve_lenient(self, target: str | int) -> int | None:
        """The class index of ``target``, or None where it names no class."""
        try:
            return self.resolve(target)
        except Exception:
            return None

    def _make_audit(
        self,
        results: list[ImageResult],
        label: str,
        index: int,
        seeds: Sequence[int],
        steps: int,
        neutral: NDArray[np.float64] | None,
        links: AuditLinks | None,
    ) -> ClassAudit:
        for r in results:
            if r.failed_step >= 0:
                raise OptimizationError(
                    f"class {label!r} (index {index}), seed {r.seed}: the score or its gradient "
                    f"became NaN/Inf at step {r.failed_step} of {steps}; no image is reported. "
                    "Check the model for unstable layers (log/sqrt/division) or lower the "
                    "learning rate"
                )
        return ClassAudit(
            label=label,
            index=index,
            images=np.stack([r.image for r in results]),
            logits=np.array([r.logit for r in results]),
            probabilities=np.array([r.probability for r in results]),
            seeds=list(seeds),
            steps=steps,
            curves=np.stack([r.curve for r in results]),
            stopped_steps=[r.stopped_step for r in results],
            attribution=np.stack([r.attribution for r in results]),
            features=(np.stack([r.features for r in results]) - neutral)
            if neutral is not None
            else None,
            model_name=self.meta["name"],
            settings={
                "seeds": len(seeds),
                "steps": steps,
                "engine": self.settings.image_settings(),
            },
            nodeid=links.nodeid if links else "",
            on_references=self.references_source(links.references)
            if links and links.references
            else None,
            baseline_store=links.baseline if links else None,
        )

    def references_source(self, references: Callable[[], GivenReferences]) -> EngineReferences:
        """The checks' calls on the trusted references ``references()`` gives, made with
        this runner's engine (those on the references themselves once per model)."""
        inference = self.engine.inference
        return EngineReferences(
            inference,
            ranked_settings(inference),
            references,
            classify=self.classify,
            memo=self.reference_memo,
            cache=self.cache,
            triggers=lambda images, labels: trigger_context(self, images, labels),
        )


def _result_cache(runner: AuditRunner, cache_dir: str, preprocess: str | None) -> ResultCache:
    """The result cache of the runner's images: keyed by all that makes them."""
    from ..engine.loop import ENGINE_REVISION
    from .cache import ResultCache

    spec = runner.spec
    context = {
        "model": runner.meta["hash"],
        "engine": runner.meta["engine"],
        "device": runner.engine.device,
        "spec": list(spec.shape) + [spec.low, spec.high],
        "preprocess": preprocess,
        "kind": runner.meta["output_kind"],
        "revision": ENGINE_REVISION,
        "output": runner.output,
    }
    return ResultCache(cache_dir, context, image_shape=tuple(spec.shape))


def _from_cache(target: int, seed: int, entry: dict[str, Any]) -> ImageResult:
    from ..engine.loop import ImageResult

    return ImageResult(
        target=target,
        seed=seed,
        image=entry["image"],
        logit=float(entry["logit"]),
        probability=float(entry["probability"]),
        curve=entry["curve"],
        failed_step=int(entry["failed_step"]),
        stopped_step=int(entry["stopped_step"]),
        attribution=entry["attribution"],
        features=entry["features"],
    )


AUTO_INPUT_MARGIN = 0.10  # another setting must read this much more of the references
# The settings that feed images each way the engine ranks (``InputReading.kind``).
INPUT_KEYS = {"range": "actaudit_input_range", "preprocess": "actaudit_preprocess"}


def ranked_settings(inference: Inference) -> Callable[[Any, Any], list[tuple[str, str, float]]]:
    """The engine's ranking of the known input ranges and preprocessings on labelled
    images, in the settings' words: ``[(ini key, value, accuracy)]``, best first."""

    def rank(images: Any, labels: Any) -> list[tuple[str, str, float]]:
        readings = inference.rank_inputs(images, labels)
        return [(INPUT_KEYS[r.kind], r.name, r.accuracy) for r in readings]

    return rank


def choose_input(
    runner: AuditRunner,
    references: tuple[Any, Any],
    make: Callable[[str | None, str | None, str | None], AuditRunner],
) -> AuditRunner:
    """With no input range or preprocessing set, the one that reads the trusted
    references best: ``runner`` (the model's own default) unless a known range or
    preprocessing reads at least ``AUTO_INPUT_MARGIN`` more of them; then a runner built
    with it by ``make(input_range, preprocess, weights)``. The report header says which and why.
    References whose classes the model read itself cannot judge: ``runner`` is kept."""
    if getattr(references, "read_by_model", False):
        runner.meta["input_range_source"] = (
            f"{runner.spec.range_source}; not chosen from the references: their classes are "
            "the model's own readings (no class folders), so every setting reads them all "
            "right — set actaudit_input_range or actaudit_preprocess if the model wants "
            "another"
        )
        return runner
    images, labels = references
    predicted = np.argmax(runner.engine.inference.predict(images)[1], axis=1)
    current = float(np.mean(predicted == labels))
    (option, value, accuracy), *_ = ranked_settings(runner.engine.inference)(images, labels)
    if accuracy < current + AUTO_INPUT_MARGIN:
        return runner
    chosen = make(
        value if option == "actaudit_input_range" else None,
        value if option == "actaudit_preprocess" else None,
        runner.weights,  # the same model: not hashed again
    )
    chosen.meta["input_range_source"] = (
        f"{option} = {value}, chosen from the trusted references: it reads {accuracy:.0%} of "
        f"them right, the model's default ({runner.spec.range_source}) {current:.0%}"
    )
    return chosen
