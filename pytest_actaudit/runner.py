"""One model's audits: resolves targets, batches every (target, seed) not yet
computed into one engine run, and turns engine results into ``ClassAudit``s.

Shared by the pytest fixture and ``pytest_actaudit.maximize`` so both give the
same images for the same settings. No pytest import; TensorFlow is imported when a
runner is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import model as model_mod
from .checks import edits
from .checks.audit import ClassAudit, ReferenceContext
from .errors import OptimizationError

if TYPE_CHECKING:
    from .engine.inference import Inference


@dataclass
class RunStats:
    """What the report header tells about the engine's work."""

    images: int = 0
    seconds: float = 0.0  # engine runs, tracing included
    trace_seconds: float = 0.0  # of which: building the compiled loops
    chunks: list[str] = field(default_factory=list)


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
        engine_settings: Any = None,
        progress: Callable[[str], None] | None = None,
        cache_dir: str | None = None,
        output: str | None = None,
        weights: str | None = None,
    ) -> None:
        import tensorflow as tf

        from .engine.device import device_description
        from .engine.loop import ENGINE_REVISION, EngineSettings
        from .engine.registry import engine_for

        model = model_mod.select_output(model, output)  # one classifier output
        self.model = model
        self.model_path = model_path
        self.output = output
        self.spec = model_mod.input_spec(
            model, input_range, input_size, size_source, preprocess=preprocess
        )
        self.labels = model_mod.resolve_labels(model, labels, model_path)
        self.settings = engine_settings or EngineSettings()
        # the model's hash (``weights``: already known, from another runner of it)
        self.weights = weights or (
            model_mod.content_hash(model_path) if model_path else model_mod.weights_hash(model)
        )
        self.engine = engine_for(model, self.spec, self.settings, weights=self.weights)
        self.progress = progress
        self.stats = RunStats()
        self.on_references = OnReferences()  # the shortcut probe's calls on the references
        # (layer or None for class logits, target, seed, steps) -> ImageResult
        self._results: dict[tuple[Any, ...], Any] = {}
        self._layer_engines: dict[str, Any] = {}
        self.meta: dict[str, Any] = {
            "name": str(model_path or getattr(model, "name", "model"))
            + (f" → {output}" if output and model_path else ""),
            "hash": self.weights,
            "input_shape": list(self.spec.shape),
            "input_size_source": self.spec.size_source,
            "input_range": [self.spec.low, self.spec.high],
            "input_range_source": self.spec.range_source,
            "output_kind": self.engine.scores.output_kind,
            "classes": len(self.labels),
            "device": device_description(self.engine.device),
            "tensorflow": tf.__version__,
            "keras": _keras_version(),
            "engine": self.settings.to_dict(),
            "max_batch": self.engine.max_batch,
            "max_batch_source": self.engine.batch_source,
            "lanes": self.engine.lanes,
            "lanes_source": self.engine.lanes_source,
            "lane_width": self.engine.lane_width,
            "lane_width_source": self.engine.lane_width_source,
        }
        self.cache = None
        if cache_dir:
            from .cache import ResultCache

            context = {
                "model": self.meta["hash"],
                "engine": self.meta["engine"],
                "device": self.engine.device,
                "spec": list(self.spec.shape) + [self.spec.low, self.spec.high],
                "preprocess": preprocess,
                "kind": self.meta["output_kind"],
                "revision": ENGINE_REVISION,
                "output": output,
            }
            self.cache = ResultCache(cache_dir, context, image_shape=tuple(self.spec.shape))

    def classify(self, images: Any) -> Any:
        """The class the model reads in each uint8 image (through the same input range
        and preprocessing as every check): the labels of references without classes."""
        return np.argmax(self.engine.inference.predict(np.asarray(images, np.uint8))[1], axis=1)

    def resolve(self, target: str | int) -> int:
        return model_mod.resolve_target(target, self.labels)

    def maximize_many(
        self,
        targets: Iterable[str | int],
        *,
        seeds: int,
        steps: int,
        planned: Iterable[str | int] = (),
    ) -> list[ClassAudit]:
        """One ``ClassAudit`` per target. Every (target, seed) not yet computed nor
        cached is optimized in one batch, together with the ``planned`` targets that
        later tests will ask for (names that are not classes are ignored there)."""
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
            )
            for i in indices
        ]

    def _ensure(
        self, engine: Any, layer: str | None, targets: Iterable[int], seeds: list[int], steps: int
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

    def maximize(
        self, target: str | int, *, seeds: int, steps: int, planned: Iterable[str | int] = ()
    ) -> ClassAudit:
        return self.maximize_many([target], seeds=seeds, steps=steps, planned=planned)[0]

    def maximize_units(
        self, layer: str, units: Iterable[int], *, seeds: int, steps: int
    ) -> list[ClassAudit]:
        """Images that maximize units of a Dense layer or filters of a conv layer
        (averaged over space): one ``ClassAudit`` per unit, labelled ``layer[unit]``."""
        from .engine.registry import engine_for
        from .errors import ActauditError

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
        results: list[Any],
        label: str,
        index: int,
        seeds: Sequence[int],
        steps: int,
        neutral: Any,
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
            attribution=np.stack([r.attribution for r in results]),
            features=(np.stack([r.features for r in results]) - neutral)
            if neutral is not None
            else None,
            model_name=self.meta["name"],
            settings={"seeds": len(seeds), "steps": steps},
        )


def _from_cache(target: int, seed: int, entry: dict[str, Any]) -> Any:
    from .engine.loop import ImageResult

    return ImageResult(
        target=target,
        seed=seed,
        image=entry["image"],
        logit=float(entry["logit"]),
        probability=float(entry["probability"]),
        curve=entry["curve"],
        failed_step=int(entry["failed_step"]),
        attribution=entry["attribution"],
        features=entry["features"],
    )


def _keras_version() -> str:
    keras = model_mod.keras_module()
    version = getattr(keras, "__version__", "") or getattr(keras, "version", lambda: "")()
    model_module = getattr(getattr(keras, "Model", None), "__module__", "")
    if not version and model_module.startswith("tf_keras"):
        import tf_keras

        version = f"tf-keras {tf_keras.__version__}"
    return str(version)


def maximize(
    model: Any,
    targets: str | int | Sequence[str | int],
    *,
    seeds: int = 3,
    steps: int | None = None,
    labels: str | list[str] | None = None,
    **settings: Any,
) -> list[ClassAudit]:
    """Class-maximization images of each target, without pytest.

    ``model`` is a Keras model or a path to one; ``targets`` class names or indices
    (or ``"all"``); with ``layer="name"``, unit/filter indices of that layer instead.
    ``references=(images, class indices)``: trusted real images (uint8 N × H × W × C)
    for ``assert_no_shortcut`` and ``assert_ignores``; or the images alone (one array,
    photos of anything), whose classes the model then reads itself
    (``references.References`` with ``read_by_model``).
    Other keyword arguments are ``EngineSettings`` fields (``learning_rate``,
    ``device``, ``max_batch``, ``lanes``, ``lane_width``, ``parametrization``,
    ``direction=-1`` to lower a regression output, …), ``input_range``, ``preprocess``
    (``"caffe"``, ``"tf"``, ``"torch"``, ``"mean=...,std=...[,bgr]"``,
    ``"module:function"``), ``input_size=(H, W)`` (the size to optimize at when the
    model's is not fixed) and ``output`` (the name of the classifier output of a
    multi-output model).
    Returns one ``ClassAudit`` per target, the same images the ``actaudit`` fixture
    gives for the same settings.
    """
    from .engine.loop import EngineSettings
    from .settings import DEFAULT_STEPS, positive_int

    model_path = None
    if isinstance(model, str | bytes) or hasattr(model, "__fspath__"):
        model_path = str(model)
        model = model_mod.load_model(model_path, safe_mode=not settings.pop("unsafe_load", False))
    input_range = settings.pop("input_range", None)
    input_size = settings.pop("input_size", None)
    preprocess = settings.pop("preprocess", None)
    references = settings.pop("references", None)
    layer = settings.pop("layer", None)
    output = settings.pop("output", None)
    # a lane holds the call's seeds of one class, as the plugin's does with its seeds
    settings.setdefault("lane_width", positive_int(seeds, "seeds"))

    def make(
        input_range: str | None, preprocess: str | None, weights: str | None = None
    ) -> AuditRunner:
        return AuditRunner(
            model,
            labels=labels,
            model_path=model_path,
            input_range=input_range,
            input_size=input_size,
            preprocess=preprocess,
            engine_settings=EngineSettings(**settings),
            output=output,
            weights=weights,
        )

    runner = make(input_range, preprocess)
    if references is not None:
        references = as_references(references, runner)
        if not (input_range or preprocess):  # read them the way that reads them best
            runner = choose_input(runner, references, make)
    if layer is not None:
        units = [targets] if isinstance(targets, int) else list(targets)
        return runner.maximize_units(
            layer,
            [int(u) for u in units],
            seeds=positive_int(seeds, "seeds"),
            steps=positive_int(steps or DEFAULT_STEPS, "steps"),
        )
    if isinstance(targets, str | int):
        targets = list(range(len(runner.labels))) if targets == "all" else [targets]
    audits = runner.maximize_many(
        targets,
        seeds=positive_int(seeds, "seeds"),
        steps=positive_int(steps or DEFAULT_STEPS, "steps"),
    )
    if references is not None:  # the shortcut probe's trusted images
        given = references
        for audit in audits:
            audit.probe_context = probe_context(runner, lambda: given)
    return audits


def as_references(references: Any, runner: AuditRunner) -> Any:
    """``references`` as ``References``: ``(images, class indices)`` as given, or one
    array of images, whose classes ``runner``'s model reads."""
    from .checks.references import References, read_by_model

    if isinstance(references, References):
        return references
    if isinstance(references, np.ndarray) and references.ndim == 4:
        return read_by_model(references, runner.classify)
    try:
        images, labels = references
    except (TypeError, ValueError):
        raise ValueError(
            "references must be (images, class indices) — uint8 N × H × W × C and int N — "
            "or one uint8 N × H × W × C array of photos whose classes the model reads; got "
            f"{type(references).__name__}"
        ) from None
    return References(np.asarray(images), np.asarray(labels))


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


def probe_context(
    runner: AuditRunner, references: Callable[[], tuple[Any, Any]]
) -> Callable[[], ReferenceContext]:
    """What ``ClassAudit.shortcut_probe`` and ``assert_ignores`` ask for, on first use:
    the trusted references (images, class indices) and the model's predict, attribute,
    detectors and input ranking. The model's predictions and detectors on the
    references themselves, and the screening of the object-free edits on them, are made
    once per model and reused by every class's checks."""
    from .triggers import trigger_context

    inference = runner.engine.inference
    probes = None
    if runner.cache is not None:  # probe results are cached beside the images
        from .cache import ProbeCache

        probes = ProbeCache(runner.cache)

    def context() -> ReferenceContext:
        given = as_references(references(), runner)  # a bare photo array too
        images, labels = given
        remember = runner.on_references.wrap
        predict = remember("predict", lambda x: inference.predict(x)[1], images)
        remember_probe = None
        if probes is not None:
            from .cache import array_digest

            held = remember("digest", lambda x: array_digest(x, np.asarray(labels)), images)
            cache = probes

            def remember_probe(index: int, seeds: Any, attribution: Any, run: Any) -> Any:
                return cache.remember(held(images), index, seeds, attribution, run)

        return ReferenceContext(
            images,
            labels,
            predict,
            inference.attribution,
            remember("detectors", inference.detectors, images),
            ranked_settings(inference),
            remember("edits", lambda x: edits.screen(x, labels, predict), images),
            bool(getattr(given, "read_by_model", False)),
            remember_probe,
            trigger_context(runner, images, labels),
        )

    return context


class OnReferences:
    """Model calls on the trusted references, kept for the one references array they
    were made on (an identity check: a new array is a new call)."""

    def __init__(self) -> None:
        self._images: Any = None
        self._results: dict[str, Any] = {}

    def wrap(self, name: str, call: Callable[[Any], Any], references: Any) -> Callable[[Any], Any]:
        """``call``, remembered when it is made on ``references`` itself."""

        def remembered(images: Any) -> Any:
            if images is not references:
                return call(images)
            if self._images is not references:  # other references: forget the old ones
                self._images, self._results = references, {}
            if name not in self._results:
                self._results[name] = call(images)
            return self._results[name]

        return remembered
