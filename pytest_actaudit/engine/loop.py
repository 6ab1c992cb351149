"""The compiled, batched class-maximization loop.

Every (target, seed) pair of one model is one image of one batch; the whole
optimization (transform → forward → backward → Adam update → clip → blur) runs as
one ``tf.function`` with the step loop inside the graph, so nothing leaves the
device between steps. Only the final images, the per-step score curve and the
per-image NaN marker come back to the host, once per chunk.

Images are optimized in [0, 1] ("unit") space and mapped to the model's input
range on the way in, so the step size means the same for 0–255 and −1–1 models.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf

from ..errors import ActauditError
from ..model import InputSpec
from . import transforms
from .params import FourierParam, make_param
from .targets import detector_model, layer_scores, score_models


@dataclass(frozen=True)
class EngineSettings:
    """How images are optimized. Part of the cache key and of the report header."""

    learning_rate: float = 0.05
    tv_weight: float = 2.0
    norm_weight: float = 0.5
    norm_p: int = 6
    jitter: float = 0.04  # largest shift, as a fraction of the image side
    degrees: float = 5.0
    scale: float = 0.05
    blur_every: int = 4
    # Fourier: rotation and zoom of the view every N steps (jitter is every step, as a
    # phase shift); pixel: the whole affine view every step. See README, Engine speed.
    rotate_every: int = 4
    blur_sigma: float = 0.5
    init_noise: float = 0.1
    parametrization: str = "fourier"  # or "pixel"; chosen by measurement, see README
    contrast: float = 0.5  # weight of the other classes' logsumexp in the objective
    direction: int = 1  # +1 raises the target score; -1 lowers it (regression outputs)
    max_batch: int = 0  # images per compiled batch; 0: from memory (see auto_batch)
    lanes: int = 0  # independent loops per batch, run concurrently; 0: see auto_lanes
    # seeds per lane: every lane holds one class's seeds, seed s in row s % lane_width,
    # so an image's numbers never depend on what else is audited; 0: see auto_lane_width
    lane_width: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageResult:
    """One optimized image of one (target, seed)."""

    target: int
    seed: int
    image: np.ndarray  # uint8 H×W×C
    logit: float
    probability: float
    curve: np.ndarray  # target score at each step (before the step's update)
    failed_step: int  # −1, or the first step whose score/gradient was NaN/Inf
    attribution: np.ndarray  # H×W, |gradient × (image − grey)| of the target logit
    features: np.ndarray  # penultimate activations (empty when the model has no head)


def device_name(requested: str) -> str:
    """TensorFlow device string for ``auto|cpu|gpu|gpu:N``; a GPU that is not there
    is an error naming what is."""
    gpus = tf.config.list_logical_devices("GPU")
    if requested == "auto":
        return gpus[0].name if gpus else "/device:CPU:0"
    if requested == "cpu":
        return "/device:CPU:0"
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if index >= len(gpus):
        seen = ", ".join(g.name for g in gpus) or "none"
        raise ActauditError(
            f"--actaudit-device {requested} asks for GPU {index} but TensorFlow sees {seen}; "
            "use --actaudit-device auto or cpu, or check CUDA_VISIBLE_DEVICES and the "
            "tensorflow[and-cuda] install (pip install 'pytest-actaudit[gpu]')"
        )
    return str(gpus[index].name)


def device_description(name: str) -> str:
    """A human name for the report header: the GPU model, or CPU."""
    if "GPU" not in name.upper():
        return "CPU"
    try:
        physical = tf.config.list_physical_devices("GPU")
        index = int(name.rsplit(":", 1)[1])
        details = tf.config.experimental.get_device_details(physical[index])
        return f"{name} ({details.get('device_name', 'GPU')})"
    except Exception:  # details are cosmetic
        return name


# Bumped whenever a change alters the images for the same settings (cache key).
ENGINE_REVISION = 3
AUTO_BATCH_LIMIT = 256  # beyond this a CPU gains nothing and a report waits longer
OPAQUE_BATCH = 64  # when the layers cannot be measured (a SavedModel through TFSMLayer)
GPU_BUDGET = 2 * 2**30  # TensorFlow does not tell a GPU's total memory portably
FLOAT16_LOSS_SCALE = 256.0


def tv_value(x: tf.Tensor, weight: float) -> tf.Tensor:
    """tf-keras-vis ``TotalVariation2D(weight)(x)`` per image (the parity test compares
    them), written here so that a first call does not import tf-keras-vis (0.2 s)."""
    return weight * tf.image.total_variation(x) / float(np.prod(x.shape[1:]))


def norm_value(x: tf.Tensor, weight: float, p: int) -> tf.Tensor:
    """tf-keras-vis ``Norm(weight, p)(x)`` per image (see ``tv_value``)."""
    size = int(np.prod(x.shape[1:]))
    flat = tf.reshape(x, [-1, size])  # any batch size: the engine traces its lanes once
    return weight * tf.norm(flat, ord=p, axis=1) / float(size) ** (1.0 / p)


@tf.custom_gradient  # type: ignore[untyped-decorator]
def _logsumexp_others(logits: tf.Tensor, hot: tf.Tensor) -> Any:
    """logsumexp_{j≠c} z_j per image, with ``hot`` the one-hot rows of the targets c:
    TensorFlow's ``reduce_logsumexp`` of the masked logits and its gradient, op for op
    (the same numbers, bit for bit), with the gradient written out: autodiff's is some
    forty nodes of shape bookkeeping that a first call has to optimize."""
    others = tf.where(hot > 0, -1e9, logits)
    raw_max = tf.reduce_max(others, axis=-1, keepdims=True)
    top = tf.stop_gradient(tf.where(tf.math.is_finite(raw_max), raw_max, tf.zeros_like(raw_max)))
    exp = tf.exp(others - top)
    total = tf.reduce_sum(exp, axis=-1)

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, None]:
        d_others = tf.reshape(upstream * tf.math.reciprocal(total), [-1, 1]) * exp
        return tf.where(hot > 0, tf.zeros_like(exp), d_others), None

    return tf.math.log(total) + tf.reshape(top, [-1]), grad


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer of ``model``, nested models' layers included (after the model)."""
    for layer in getattr(model, "layers", None) or []:
        yield layer
        yield from all_layers(layer)


def computes_in_float16(model: Any) -> bool:
    """True for mixed-precision models (any layer computing in float16/bfloat16)."""
    return any(
        str(getattr(layer, "compute_dtype", "float32")) in ("float16", "bfloat16")
        for layer in all_layers(model)
    )


def bytes_per_image(model: Any, shape: Sequence[int]) -> int:
    """Memory one image needs in a step: every layer's output (kept for the backward
    pass, plus as much again for its gradient), and the optimizer's own tensors
    (parameters, Adam moments, image, view, gradients: about 12 images' worth)."""

    def activations(layer: Any) -> int:
        if getattr(layer, "layers", None):  # nested model: its layers count, not its output
            return 0
        try:
            out = layer.output
        except (AttributeError, ValueError, RuntimeError):  # shared/unbuilt layers
            return 0
        total = 0
        for tensor in out if isinstance(out, (list, tuple)) else [out]:
            dims = [d for d in tuple(getattr(tensor, "shape", ()))[1:] if d is not None]
            total += int(np.prod(dims)) if dims else 0
        return total

    floats = 2 * sum(activations(layer) for layer in all_layers(model))
    return 4 * (floats + 12 * int(np.prod(shape)))


def memory_budget(device: str) -> tuple[int, str]:
    """(bytes the engine may use, where that figure comes from): a quarter of the host
    memory available now on CPU; a fixed 2 GiB on a GPU."""
    if "GPU" in device.upper():
        return GPU_BUDGET, "GPU, assumed 2 GiB; set --actaudit-max-batch on a larger GPU"
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        available = int(info["MemAvailable"].split()[0]) * 1024
        return available // 4, f"¼ of {available / 2**30:.1f} GiB available"
    except (OSError, KeyError, ValueError):
        return 4 * 2**30, "4 GiB assumed (host memory unknown)"


def auto_batch(model: Any, shape: Sequence[int], device: str) -> tuple[int, str]:
    """The chunk size for ``max_batch=0`` and a line saying how it was chosen."""
    if any(type(layer).__name__ == "TFSMLayer" for layer in getattr(model, "layers", [])):
        # a SavedModel's layers are opaque: no estimate, the former fixed bound
        return OPAQUE_BATCH, f"auto: {OPAQUE_BATCH} (SavedModel layers are opaque)"
    per_image = bytes_per_image(model, shape)
    budget, source = memory_budget(device)
    batch = int(max(1, min(AUTO_BATCH_LIMIT, budget // max(per_image, 1))))
    return batch, f"auto: {per_image / 2**20:.1f} MB per image, {source}"


# Seeds per lane by default: the default seed count, so the usual plan fills every lane.
LANE_WIDTH = 3
# Lanes a compiled batch runs at the same time at most (``lanes=0``): beyond it the
# gain was not measured.
AUTO_LANES = 16


def auto_lane_width() -> tuple[int, str]:
    """Images per lane for ``lane_width=0``: a constant, never a function of the plan,
    the memory free now, the cores or the device. CPU and GPU kernels choose their
    blocking (and so their float summation order) by the batch size, and may treat a
    row by its place in the batch; 128 steps of ascent amplify a last-bit difference
    into visible ones. So an image is reproducible only if its lane always has the same
    shape and the image the same row in it (``lane_layout``)."""
    return LANE_WIDTH, f"auto: {LANE_WIDTH} (one class's seeds per lane)"


def usable_cores() -> int:
    """CPU cores this process may run on: its CPU affinity (a cpuset), not the host's
    count; a CFS quota (docker --cpus) is not seen, set --actaudit-lanes there."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_lanes(device: str) -> tuple[int, str]:
    """Lanes a compiled batch runs at the same time, for ``lanes=0``: ``AUTO_LANES``
    (fewer where ``max_batch`` holds fewer), whose loops TensorFlow runs side by side;
    on a CPU this fills the cores that one small lane's ops leave idle. 1 on a CPU core
    of its own: under pytest-xdist the workers share the cores
    (``PYTEST_XDIST_WORKER_COUNT``, set in each worker), and 2 workers on 2 cores run
    one lane at a time each. On a GPU, where one stream runs the lanes' kernels in turn,
    the lanes of a batch still save a return to the host between them."""
    if "GPU" in device.upper():
        return AUTO_LANES, "auto: GPU"
    cores = usable_cores()
    source = f"auto: {cores} CPU core{'s' if cores != 1 else ''}"
    try:
        workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        workers = 1
    if workers > 1:
        source += f" shared by {workers} xdist workers"
    return (AUTO_LANES if cores // workers >= 2 else 1), source


def lane_layout(plan: Sequence[tuple[int, int]], width: int) -> list[list[tuple[int, int]]]:
    """The lanes that optimize ``plan``'s (target, seed) pairs: one lane per target and
    block of ``width`` seeds, the seed ``s`` always in row ``s % width`` of its lane.
    An image's place and its lane's shape are thus a function of the image alone, never
    of what else is planned: kernels may treat rows by their place in the batch (a
    matrix product's last block of rows, say) as well as by its size. Rows the plan
    does not ask for hold the same target's other seeds, optimized and dropped. Lanes
    come in the order of their first pair in ``plan``."""
    lanes: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for target, seed in plan:
        base = int(seed) - int(seed) % width
        key = (int(target), base)
        if key not in lanes:
            lanes[key] = [(int(target), base + row) for row in range(width)]
    return list(lanes.values())


def lane_sizes(batch: int, lanes: int) -> list[int]:
    """Sizes of ``lanes`` near-equal parts of a batch (larger ones first)."""
    return [batch // lanes + (1 if i < batch % lanes else 0) for i in range(lanes)]


T = TypeVar("T")


class _Aside(threading.Thread):
    """A daemon thread that runs ``work`` under ``device`` and keeps its error."""

    def __init__(self, work: Callable[[], None], device: str) -> None:
        super().__init__(name="actaudit-trace", daemon=True)
        self.work, self.device = work, device
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with tf.device(self.device):
                self.work()
        except BaseException as exc:  # handed to the caller's thread by Engine._join
            self.error = exc


def _model_autograph_on_demand(method: Callable[..., T]) -> Callable[..., T]:
    """Run an Engine method; if tracing the model failed for want of AutoGraph (a
    custom layer's Python ``if``/``for`` on a tensor), turn it on for the model's calls
    (``Engine._call``), retrace and run again. Earlier chunks' results are kept."""

    @functools.wraps(method)
    def wrapper(self: Engine, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except tf.errors.OperatorNotAllowedInGraphError:
            if self.model_autograph:
                raise
            self.model_autograph = True
            self._build_functions()
            return method(self, *args, **kwargs)

    return wrapper


KEEP_ENGINES = 4  # traced engines a process keeps for reuse (each holds its model)
_engines: OrderedDict[tuple[Any, ...], Engine] = OrderedDict()


def engine_for(
    model: Any, spec: InputSpec, settings: EngineSettings, *, weights: str, layer: str | None = None
) -> Engine:
    """The engine of this model object, input, settings and layer, traced once per
    process: a second ``maximize`` on the same model in a notebook, or a second test
    module's runner, finds its compiled loop already traced. ``weights`` (the weights'
    hash) is part of the key: the engine holds copies of the last layer's weights, so a
    model trained further in place gets a new engine. The last ``KEEP_ENGINES`` are kept
    (they keep their models alive); ``clear_engines()`` lets them go."""
    key = (id(model), weights, spec, settings, layer)
    engine = _engines.get(key)
    if engine is None or engine.model is not model:
        engine = _engines[key] = Engine(model, spec, settings, layer)
        while len(_engines) > KEEP_ENGINES:
            _engines.popitem(last=False)
    _engines.move_to_end(key)
    return engine


def clear_engines() -> None:
    """Drop every engine kept for reuse (and the models they hold)."""
    _engines.clear()


class Engine:
    """Optimizes images for one model. Build once per model; ``run`` many times."""

    def __init__(
        self, model: Any, spec: InputSpec, settings: EngineSettings, layer: str | None = None
    ) -> None:
        self.model = model
        self.spec = spec
        self.settings = settings
        self.device = device_name(settings.device)
        # Class logits by default; with ``layer``, that layer's units/filters are the targets.
        self.scores = layer_scores(model, layer) if layer else score_models(model)
        self.param = make_param(settings.parametrization, spec.shape, settings)
        self._neutral: np.ndarray | None = None
        self._detector_model: Any = None  # built on first use; False: the model has none
        self._preprocess = (
            spec.preprocess.tf_function(spec.channels) if spec.preprocess is not None else None
        )
        # True once the model turned out to need AutoGraph (see _call).
        self.model_autograph = False
        self._build_functions()
        self.loss_scale = FLOAT16_LOSS_SCALE if computes_in_float16(model) else 1.0
        self.lanes, self.lanes_source = (
            (settings.lanes, "set") if settings.lanes > 0 else auto_lanes(self.device)
        )
        if settings.max_batch > 0:
            self.max_batch, self.batch_source = settings.max_batch, "set"
        else:
            self.max_batch, self.batch_source = auto_batch(model, spec.shape, self.device)
        if settings.lane_width > 0:
            self.lane_width, self.lane_width_source = settings.lane_width, "set"
        else:
            self.lane_width, self.lane_width_source = auto_lane_width()

    def _build_functions(self) -> None:
        # Traced without AutoGraph (plain TF control flow throughout): its source
        # conversion took most of a first call's time. The outer function is traced per
        # batch size (a chunk and its remainder: it splits the batch into lanes and
        # evaluates the images); the loop itself, most of the tracing, once for any
        # batch size: every lane of every chunk calls that one trace (TensorFlow inlines
        # each call), odd halves and remainders included.
        self._optimize = tf.function(self._optimize_and_quantize, autograph=False)
        self._lane_fn = tf.function(
            self._lane,
            autograph=False,
            # Called, not inlined, by each lane: optimized and instantiated once however
            # many lanes a batch has (inlined, a first call's graph grows with them).
            experimental_attributes={"_noinline": True},
            input_signature=[
                tf.TensorSpec([None, *self.param.initial(0).shape], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, None, 4], tf.float32),
                tf.TensorSpec([], tf.int32),
            ],
        )
        # One trace for any batch: the chunk's images, their remainder, the probe's
        # references. A first chunk traces it on a helper thread while its loop runs.
        self._evaluate = tf.function(
            self._evaluate_graph,
            autograph=False,
            input_signature=[
                tf.TensorSpec([None, *self.spec.shape], tf.uint8),
                tf.TensorSpec([None], tf.int32),
            ],
        )
        self._evaluate_traced = False
        self._predict = tf.function(self._predict_graph, reduce_retracing=True, autograph=False)
        self._calls: dict[int, Any] = {}
        self._traced: dict[int, Any] = {}
        self.trace_seconds = 0.0  # building the compiled loops (Python → graph), in all

    # ------------------------------------------------------------------ host side
    def run(
        self,
        plan: Sequence[tuple[int, int]],
        steps: int,
        progress: Callable[[str], None] | None = None,
    ) -> list[ImageResult]:
        """Optimize one image per (target index, seed), ``steps`` steps, in chunks of
        ``chunk_lanes()`` lanes (see ``lane_layout``)."""
        lanes = lane_layout(plan, self.lane_width)
        wanted = {(int(t), int(seed)) for t, seed in plan}
        per_chunk = self.chunk_lanes()
        found: dict[tuple[int, int], ImageResult] = {}
        for start in range(0, len(lanes), per_chunk):
            rows = [pair for lane in lanes[start : start + per_chunk] for pair in lane]
            began = time.perf_counter()
            for result in self._run_chunk(rows, steps):
                if (result.target, result.seed) in wanted:
                    found[(result.target, result.seed)] = result
            if progress:
                count = len(wanted.intersection(rows))
                progress(
                    f"actaudit: optimized {count} images ({len(found)}/{len(wanted)}), "
                    f"{steps} steps, {time.perf_counter() - began:.1f}s on {self.device}"
                )
        return [found[(int(t), int(seed))] for t, seed in plan]

    @_model_autograph_on_demand
    def _run_chunk(self, chunk: Sequence[tuple[int, int]], steps: int) -> list[ImageResult]:
        """Optimize and evaluate whole lanes (``chunk`` is their rows, lane after lane)."""
        s = self.settings
        side = min(self.spec.height, self.spec.width)
        width = self.lane_width
        init = np.stack([self._initial(seed) for _, seed in chunk])
        params = np.stack(
            [
                transforms.draw_params(
                    seed, steps, jitter=s.jitter * side, degrees=s.degrees, scale=s.scale
                )
                for _, seed in chunk
            ]
        )
        targets = np.array([t for t, _ in chunk], np.int32)
        with tf.device(self.device):
            loop = self._compiled(init.shape)
            aside = self._trace_evaluation_aside()
            try:
                quantized, curves, failed = loop(
                    tf.constant(init), tf.constant(targets), tf.constant(params), tf.constant(steps)
                )
            except BaseException:
                if aside is not None:
                    aside.join()  # its own error, if any, would hide this one
                raise
            if aside is not None:
                self._join(aside)
            # Evaluated a lane at a time: an image's scores, attribution and features
            # do not depend on the chunk's size or its place in it either.
            evaluated = [
                self._evaluate(quantized[at : at + width], tf.constant(targets[at : at + width]))
                for at in range(0, len(chunk), width)
            ]
        images = quantized.numpy()
        curves_np, failed_np = curves.numpy().T, failed.numpy()
        logits_np, probs_np, attr_np, features_np = (
            np.concatenate([part[k].numpy() for part in evaluated]) for k in range(4)
        )
        return [
            ImageResult(
                int(t),
                int(seed),
                images[i],
                float(logits_np[i]),
                float(probs_np[i]),
                curves_np[i].astype(np.float64),
                int(failed_np[i]),
                attr_np[i].astype(np.float32),
                features_np[i].astype(np.float64),
            )
            for i, (t, seed) in enumerate(chunk)
        ]

    def _compiled(self, shape: tuple[int, ...]) -> Any:
        """The optimization loop traced for this batch size and any step count: one
        trace per batch size (a chunk and its remainder), not one per step count."""
        batch = shape[0]
        if batch not in self._traced:
            began = time.perf_counter()
            self._traced[batch] = self._optimize.get_concrete_function(
                tf.TensorSpec(shape, tf.float32),
                tf.TensorSpec([batch], tf.int32),
                tf.TensorSpec([batch, None, 4], tf.float32),
                tf.TensorSpec([], tf.int32),
            )
            self.trace_seconds += time.perf_counter() - began
        return self._traced[batch]

    def _trace_evaluation_aside(self) -> _Aside | None:
        """Start tracing the evaluation on a helper thread, once per engine: the loop's
        first run executes in TensorFlow's runtime without Python's lock, so the
        evaluation's tracing (Python) and first instantiation overlap with it instead of
        following it (MobileNetV2: about 1 s of a first call). The evaluation is a
        function of its own, not part of the loop's graph, so a first call does not
        optimize and instantiate both in one piece either."""
        if self._evaluate_traced:
            return None
        self._evaluate_traced = True
        aside = _Aside(self._warm_evaluation, self.device)
        aside.start()
        return aside

    def _warm_evaluation(self) -> None:
        blank = tf.zeros([1, *self.spec.shape], tf.uint8)
        self._evaluate(blank, tf.zeros([1], tf.int32))

    def _join(self, aside: _Aside) -> None:
        """Wait for the helper; the wait counts as tracing. Its error (a model that
        needs AutoGraph, say) is raised here, on the caller's thread."""
        began = time.perf_counter()
        aside.join()
        self.trace_seconds += time.perf_counter() - began
        if aside.error is not None:
            self._evaluate_traced = False
            raise aside.error

    def chunk_lanes(self) -> int:
        """Lanes (of ``lane_width`` images each) per compiled batch: ``lanes`` of them,
        fewer where ``max_batch`` holds fewer, and at least one."""
        return max(1, min(self.lanes, self.max_batch // self.lane_width))

    def _initial(self, seed: int) -> np.ndarray:
        """The starting parameters of one image, from this seed only."""
        return self.param.initial(seed)

    # ----------------------------------------------------------------- device side
    def _to_input(self, unit: tf.Tensor) -> tf.Tensor:
        if self._preprocess is not None:  # the user's preprocessing, inside the step
            return self._preprocess(255.0 * unit)
        return self.spec.low + (self.spec.high - self.spec.low) * unit

    def _optimize_and_quantize(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The optimization and the quantization of its images (uint8): the image
        reported is the quantized one, and the evaluation (``_evaluate``) measures its
        scores, attribution and features. The images stay on the device between the two
        calls; nothing goes to the host and back."""
        unit, curves, failed = self._optimize_graph(init, targets, params, steps)
        finite = tf.where(tf.math.is_finite(unit), unit, tf.zeros_like(unit))
        return tf.cast(tf.round(finite * 255.0), tf.uint8), curves, failed

    def _optimize_graph(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The batch as independent loops of ``lane_width`` images each, in one graph.
        TensorFlow runs them at the same time, so on a CPU one lane's element-wise work
        and small ops fill the cores that the other lane's model ops leave idle
        (benchmarks: 1.3–1.9× the throughput of one loop over the whole batch on 2
        cores). Images never interact, and every lane has the same shape, so an image's
        numbers do not depend on its lane, its place in it or the batch's size."""
        batch = int(init.shape[0])
        sizes = [self.lane_width] * (batch // self.lane_width)
        if len(sizes) == 1:
            final, curve, failed = self._lane_fn(init, targets, params, steps)
            return final, curve, failed
        parts = zip(
            tf.split(init, sizes), tf.split(targets, sizes), tf.split(params, sizes), strict=True
        )
        lanes = [self._lane_fn(*part, steps) for part in parts]
        return (
            tf.concat([lane[0] for lane in lanes], 0),
            tf.concat([lane[1] for lane in lanes], 1),
            tf.concat([lane[2] for lane in lanes], 0),
        )

    def _lane(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One lane's loop: (final unit images, score per step × image, failed step)."""
        s = self.settings
        beta1, beta2, eps = 0.9, 0.999, 1e-8

        def step(
            t: tf.Tensor, x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, failed: tf.Tensor, curve: Any
        ) -> tuple[Any, ...]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                unit, moved = self._view(x, params[:, t, :], t)
                score, objective = self._objective(self._to_input(moved), targets)
                loss = tf.reduce_sum(self._penalty(unit, value=False)) - tf.reduce_sum(objective)
                # float16 models: a static loss scale keeps small gradients from
                # flushing to zero inside the model; Adam's update does not depend on
                # the gradient's scale, so nothing is divided back.
                loss *= self.loss_scale
            # Seeding the backward pass explicitly keeps the loss's value (tf-keras-vis's
            # regularizer values: float powers over every pixel) out of the step; only
            # their written-out gradient is needed.
            grad = tape.gradient(loss, x, output_gradients=tf.ones([]))
            # Per image: a NaN/Inf score, or a NaN/Inf anywhere in the image (its sum);
            # a NaN/Inf gradient shows in the next step's image. This is the whole-
            # gradient check at a step's delay, for one reduction instead of two passes.
            finite = tf.math.is_finite(score) & tf.math.is_finite(
                tf.reduce_sum(unit, axis=[1, 2, 3])
            )
            failed = tf.where((failed < 0) & ~finite, t, failed)
            # Images are independent: a failed one goes on as NaN without touching the
            # others, and is reported by its first failed step.
            count = tf.cast(t + 1, tf.float32)
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * tf.square(grad)
            # Adam, bias corrections folded into scalars (the same update as
            # (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε), in fewer passes over the image)
            root = tf.sqrt(1.0 - beta2**count)
            rate = s.learning_rate * root / (1.0 - beta1**count)
            x = self.param.after_step(x - rate * m / (tf.sqrt(v) + eps * root), t)
            curve = curve.write(t, tf.where(failed < 0, score, np.nan))
            return t + 1, x, m, v, failed, curve

        # An explicit while loop, traced without AutoGraph: AutoGraph's conversion of
        # this code and everything it calls was most of the first call's time.
        failed = tf.fill([tf.shape(init)[0]], tf.constant(-1, tf.int32))
        start = (
            tf.constant(0),
            init,
            tf.zeros_like(init),
            tf.zeros_like(init),
            failed,
            tf.TensorArray(tf.float32, size=steps),
        )
        _, x, _, _, failed, curve = tf.while_loop(lambda t, *_: t < steps, step, start)
        final = self.param.to_unit(x)
        finite = tf.reduce_all(tf.math.is_finite(final), axis=[1, 2, 3])
        failed = tf.where((failed < 0) & ~finite, steps, failed)
        return final, curve.stack(), failed

    def _objective(self, inputs: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(target score, what the step raises) per image of model-input images."""
        s = self.settings
        logits = self._logits(inputs)
        if self.scores.output_kind == "log":
            logits = tf.math.log(logits + 1e-12)
        # The target's score as a product with its one-hot row, not a gather: the same
        # value and gradient (bit for bit), and a backward pass of two ops instead of a
        # batched gather's fifty (a first call optimizes every node of the step).
        hot = tf.one_hot(targets, tf.shape(logits)[-1])
        score = tf.reduce_sum(logits * hot, axis=1)
        if (
            s.contrast > 0
            and s.direction > 0
            and logits.shape[-1] > 1
            and (self.scores.output_kind != "unit")
        ):
            # Raise the target against the strongest other classes, not alone:
            # z_c − λ·logsumexp_{j≠c} z_j (λ = 0 is the plain logit).
            return score, score - s.contrast * _logsumexp_others(logits, hot)
        return score, s.direction * score

    def _view(self, x: tf.Tensor, params: tf.Tensor, t: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(image, what the model sees this step) from the parameters ``x`` and this
        step's transform (B×4: dx, dy, angle, zoom).

        Fourier: the jitter is a phase shift of the spectrum (exact, sub-pixel, almost
        free); rotation and zoom, a resampling op forward and backward that costs about
        a quarter of a small model's step, come every ``rotate_every`` steps. Pixel: the
        whole affine view every step (there is no cheap exact shift of a pixel image).
        """
        s = self.settings
        if isinstance(self.param, FourierParam):
            unit = self.param.to_unit(x, shift=params[:, :2])
            if s.rotate_every <= 0 or (s.degrees == 0 and s.scale == 0):
                return unit, unit
            turn = tf.concat([tf.zeros_like(params[:, :2]), params[:, 2:]], axis=1)
            moved = tf.cond(
                t % s.rotate_every == 0, lambda: transforms.affine(unit, turn), lambda: unit
            )
            return unit, moved
        unit = self.param.to_unit(x)
        return unit, transforms.affine(unit, params)

    def _call(self, model: Any, inputs: tf.Tensor) -> Any:
        """``model(inputs)``; with AutoGraph on for the model's own code once a trace
        showed the model needs it. The engine's functions are traced without AutoGraph,
        but a custom layer may rely on it (tf-keras converts a layer's ``call`` when
        AutoGraph is on around it: a Python ``if`` on a tensor). Then a nested
        tf.function per model turns it on for the model alone (Keras's own code is never
        converted). Not by default: on MobileNetV2 the nested call doubles the first
        call's time (5.6 → 10.3 s); the steps run as fast either way."""
        if not self.model_autograph:
            return model(inputs, training=False)
        call = self._calls.get(id(model))
        if call is None:
            call = self._calls[id(model)] = tf.function(
                lambda x: model(x, training=False), autograph=True
            )
        return call(inputs)

    def _logits(self, inputs: tf.Tensor) -> tf.Tensor:
        """The score model's output in float32, whatever the model computes in."""
        return tf.cast(self._call(self.scores.logits, inputs), tf.float32)

    def _penalty(self, unit: tf.Tensor, *, value: bool = True) -> tf.Tensor:
        """tf-keras-vis ``TotalVariation2D(unit) + Norm(2·unit − 1)`` per image, with its
        gradient written out: autodiff through TV's strided slices and Norm's float
        power cost ~60% of the engine's time over a bare loop (benchmarks, --ablate),
        the written-out gradient ~10% of that, equal to 3e-7 relative. ``value=False``:
        zeros in its place, the same gradient (the step seeds its backward pass and
        never reads the loss: the value's thirty nodes would only be optimized away)."""
        s = self.settings
        p = float(s.norm_p)

        @tf.custom_gradient  # type: ignore[untyped-decorator]
        def penalty(x: tf.Tensor) -> Any:
            if value:
                y = 2.0 * x - 1.0
                total = tv_value(x, s.tv_weight) + norm_value(y, s.norm_weight, s.norm_p)
            else:
                total = tf.zeros(tf.shape(x)[:1])

            def grad(upstream: tf.Tensor) -> tf.Tensor:
                _, height, width, _ = x.shape
                n = float(np.prod(x.shape[1:]))
                # TV: d/dx Σ|x[i+1] − x[i]| = s[i−1] − s[i], s the sign of the forward
                # difference. On rows of H·W·C (a row step is W·C) and on rows of W·C (a
                # column step is C), every slice and pad moves contiguous runs.
                channels = x.shape[3]
                tv = 0.0
                for shape, step in (
                    ([-1, height * width * channels], width * channels),
                    ([-1, width * channels], channels),
                ):
                    flat = tf.reshape(x, shape)
                    ahead = tf.sign(flat[:, step:] - flat[:, :-step])
                    part = tf.pad(ahead, [[0, 0], [step, 0]]) - tf.pad(ahead, [[0, 0], [0, step]])
                    tv += tf.reshape(part, tf.shape(x))
                y = 2.0 * x - 1.0
                if s.norm_p == 6:  # |y|^6 = (y²)³ and |y|^5·sign(y) = y⁵: no float pow
                    y2 = tf.square(y)
                    y4 = tf.square(y2)
                    powp, powp1 = y4 * y2, y4 * y
                else:
                    powp = tf.pow(tf.abs(y), p)
                    powp1 = tf.sign(y) * tf.pow(tf.abs(y), p - 1.0)
                # per image: d‖y‖_p/dy = y^(p−1)/‖y‖_p^(p−1); weights folded in per image
                norm = tf.pow(tf.reduce_sum(powp, axis=[1, 2, 3]) + 1e-30, 1 / p)
                coef = upstream * s.norm_weight * 2.0 / (tf.pow(norm, p - 1.0) * n ** (1.0 / p))
                tv_coef = upstream * (s.tv_weight / n)
                return (
                    tf.reshape(tv_coef, [-1, 1, 1, 1]) * tv
                    + tf.reshape(coef, [-1, 1, 1, 1]) * powp1
                )

            return total, grad

        return penalty(unit)

    def _scores(
        self, unit: tf.Tensor, with_features: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """(logits, probabilities, penultimate features or None) of unit-space images,
        all classes. Features come from the same forward pass where the model allows
        (``ScoreModels.joint``)."""
        inputs = self._to_input(unit)
        kind = self.scores.output_kind
        features = None
        if kind == "unit":  # a layer's units: no probabilities
            units = self._logits(inputs)
            return units, tf.fill(tf.shape(units), np.nan), None
        if kind == "log":
            outputs = tf.cast(self._call(self.model, inputs), tf.float32)
            return tf.math.log(outputs + 1e-12), outputs, None
        # One forward pass: the probabilities are the squashed logits (the linear copy
        # of the last layer has the user's weights), not a second run of the model.
        if with_features and self.scores.joint is not None:
            logits, features = self._call(self.scores.joint, inputs)
            logits = tf.cast(logits, tf.float32)
        else:
            logits = self._logits(inputs)
        if kind == "sigmoid" or (kind == "linear" and logits.shape[-1] == 1):
            return logits, tf.nn.sigmoid(logits), features
        return logits, tf.nn.softmax(logits, axis=-1), features

    def _evaluate_graph(
        self, images: tf.Tensor, targets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Target logit, probability, attribution map and penultimate features of
        uint8 images.

        Attribution is gradient × input relative to mid-grey, |·| summed over channels:
        how much each pixel's departure from a neutral image raises the target logit.
        """
        unit = tf.cast(images, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            tape.watch(unit)
            logits, probs, features = self._scores(unit, with_features=True)
            target_logits = tf.gather(logits, targets, axis=1, batch_dims=1)
            scaled = target_logits * self.loss_scale  # float16 models: see _optimize_graph
        grad = tape.gradient(scaled, unit) / self.loss_scale
        attribution = tf.reduce_sum(tf.abs(grad * (unit - 0.5)), axis=-1)
        probs = tf.gather(probs, targets, axis=1, batch_dims=1)
        if features is None:
            return target_logits, probs, attribution, self._features(unit)
        return target_logits, probs, attribution, self._flat(features)

    def _features(self, unit: tf.Tensor) -> tf.Tensor:
        if self.scores.features is None:
            return tf.zeros([tf.shape(unit)[0], 0])
        return self._flat(self._call(self.scores.features, self._to_input(unit)))

    @staticmethod
    def _flat(features: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.cast(features, tf.float32), [tf.shape(features)[0], -1])

    @_model_autograph_on_demand
    def neutral_features(self) -> np.ndarray:
        """Penultimate features of a mid-grey image: the origin that the feature
        consistency metric centres on (uncentred ReLU features all look alike)."""
        if self._neutral is None:
            grey = tf.fill([1, *self.spec.shape], 0.5)
            with tf.device(self.device):
                self._neutral = self._features(grey).numpy()[0].astype(np.float64)
        return self._neutral

    @_model_autograph_on_demand
    def attribution(self, images: np.ndarray, target: int) -> np.ndarray:
        """Attribution maps (N×H×W) of uint8 images for one class, in chunks."""
        maps = []
        with tf.device(self.device):
            for start in range(0, len(images), self.max_batch):
                chunk = images[start : start + self.max_batch]
                targets = tf.fill([len(chunk)], tf.constant(target, tf.int32))
                maps.append(self._evaluate(tf.constant(chunk), targets)[2].numpy())
        return np.concatenate(maps)

    @_model_autograph_on_demand
    def detectors(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The last spatial layer's channels at their strongest place, for uint8 images
        N×H×W×C: (maxima N×K, places N×K×2 as (y, x) centres in input pixels). Empty
        (K = 0) for a model without a spatial layer."""
        if self._detector_model is None:
            self._detector_model = detector_model(self.model) or False
        if self._detector_model is False:
            return np.zeros((len(images), 0)), np.zeros((len(images), 0, 2))
        maxima, places = [], []
        height, width = self.spec.shape[:2]
        with tf.device(self.device):
            for start in range(0, len(images), self.max_batch):
                chunk = tf.constant(images[start : start + self.max_batch])
                unit = tf.cast(chunk, tf.float32) / 255.0
                maps = self._call(self._detector_model, self._to_input(unit)).numpy()
                n, h, w, k = maps.shape
                flat = maps.reshape(n, h * w, k).astype(np.float64)
                where = flat.argmax(axis=1)
                maxima.append(flat.max(axis=1))
                ys = (where // w + 0.5) * height / h
                xs = (where % w + 0.5) * width / w
                places.append(np.stack([ys, xs], axis=-1))
        return np.concatenate(maxima), np.concatenate(places)

    @_model_autograph_on_demand
    def rank_inputs(self, images: np.ndarray, labels: np.ndarray) -> list[tuple[str, str, float]]:
        """How many of labelled uint8 ``images`` the model reads right when they are fed in
        each known input range or preprocessing: ``[(option, value, accuracy)]``, best
        first (``("actaudit_preprocess", "caffe", 1.0)``)."""
        from ..model import RANGES
        from ..preprocess import Preprocess, parse_preprocess

        # A range LOW-HIGH is the preprocessing (x - mean) / std of 0-255 pixels with
        # std = 255 / (HIGH - LOW) and mean = -LOW * std: one code path for every candidate.
        candidates = [
            (
                "actaudit_input_range",
                name,
                Preprocess(name, (-low * 255 / (high - low),), (255 / (high - low),)),
            )
            for name, (low, high) in RANGES.items()
        ]
        if self.spec.channels == 3:
            candidates += [
                ("actaudit_preprocess", m, parse_preprocess(m)) for m in ("caffe", "torch")
            ]
        scores = []
        with tf.device(self.device):
            for option, value, candidate in candidates:
                feed = candidate.tf_function(self.spec.channels)
                right = 0
                for start in range(0, len(images), self.max_batch):
                    chunk = tf.cast(tf.constant(images[start : start + self.max_batch]), tf.float32)
                    logits = self._call(self.scores.logits, feed(chunk))
                    predicted = np.argmax(np.asarray(logits), axis=1)
                    right += int(np.sum(predicted == labels[start : start + self.max_batch]))
                scores.append((option, value, right / max(1, len(images))))
        return sorted(scores, key=lambda item: -item[2])

    @_model_autograph_on_demand
    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities) of uint8 images N×H×W×C, all classes, in chunks."""
        logits, probs = [], []
        with tf.device(self.device):
            for start in range(0, len(images), self.max_batch):
                chunk = tf.constant(images[start : start + self.max_batch])
                lo, pr = self._predict(chunk)
                logits.append(lo.numpy())
                probs.append(pr.numpy())
        return np.concatenate(logits), np.concatenate(probs)

    def _predict_graph(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, probs, _ = self._scores(tf.cast(images, tf.float32) / 255.0)
        return logits, probs
