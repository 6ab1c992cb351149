"""The compiled, batched class-maximization loop.

Every (target, seed) pair of one model is one image of one batch; the whole
optimization (transform → forward → backward → Adam update → clip → blur) runs as
one ``tf.function`` with the step loop inside the graph, so nothing leaves the
device between steps. Only the final images, the per-step score curve and the
per-image NaN marker come back to the host, once per chunk.

Images are optimized in [0, 1] ("unit") space and mapped to the model's input
range on the way in, so the step size means the same for 0–255 and −1–1 models.
Its collaborators: ``device`` (where it runs, how many images at once),
``objective`` (the model's scores, what a step raises, the regularizers),
``inference`` (the finished and real images), ``registry`` (engines kept for reuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from ..model.inputs import InputSpec
from . import lane, transforms
from .adam import adam
from .device import (
    FLOAT16_LOSS_SCALE,
    Aside,
    auto_batch,
    auto_lane_width,
    auto_lanes,
    computes_in_float16,
    device_name,
    lane_layout,
)
from .inference import Inference
from .maco import MacoParam
from .objective import Scorer, class_objective, model_autograph_on_demand, penalty
from .params import make_param
from .targets import layer_scores, score_models


@dataclass(frozen=True)
class EngineSettings:
    """How images are optimized. Part of the cache key and of the report header."""

    learning_rate: float = 0.1  # with the stop rule below: chosen together (see there)
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
    parametrization: str = "fourier"  # or "pixel", "maco"; chosen by measurement, see README
    contrast: float = 0.5  # weight of the other classes' logsumexp in the objective
    direction: int = 1  # +1 raises the target score; -1 lowers it (regression outputs)
    max_batch: int = 0  # images per compiled batch; 0: from memory (see auto_batch)
    lanes: int = 0  # independent loops per batch, run concurrently; 0: see auto_lanes
    # seeds per lane: every lane holds one class's seeds, seed s in row s % lane_width,
    # so an image's numbers never depend on what else is audited; 0: see auto_lane_width
    lane_width: int = 0
    device: str = "auto"
    # Steps to quality (engine/lane.py, docs/steps-to-quality.md): every ``stop_every`` steps
    # an image is done once its probability reached ``stop_probability`` and its last
    # interval changed it less than ``stop_change`` of its change so far; the step count
    # is then a cap; stop_change=0 runs every step. Chosen with the learning rate by the
    # quality tables and the shortcut zoo (docs/steps-to-quality.md): the change over a
    # shorter interval is smaller, so ``stop_change`` means something only with its
    # ``stop_every``.
    stop_probability: float = 0.9
    stop_change: float = 0.2
    stop_every: int = 8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def image_settings(self) -> dict[str, Any]:
        """The fields an image depends on: all but where it runs and how it is batched
        (docs/how-it-works.md, determinism). A baseline records them."""
        layout = {"device", "max_batch", "lanes", "lane_width"}
        return {k: v for k, v in asdict(self).items() if k not in layout}


@dataclass(frozen=True)
class ImageResult:
    """One optimized image of one (target, seed)."""

    target: int
    seed: int
    image: NDArray[np.uint8]  # H×W×C
    logit: float
    probability: float
    curve: NDArray[np.float64]  # target score at each step (before the step's update)
    failed_step: int  # −1, or the first step whose score/gradient was NaN/Inf
    attribution: NDArray[np.float32]  # H×W, |gradient × (image − grey)| of the target logit
    features: NDArray[np.float64]  # penultimate activations (empty when the model has no head)
    stopped_step: int  # the step it was done at (engine/lane.py); ``steps`` if it ran them all


# Bumped whenever a change alters the images for the same settings (cache key).
ENGINE_REVISION = 3


class Engine:
    """Optimizes images for one model. Build once per model; ``run`` many times. Its
    ``inference`` reads finished and real images with the same model."""

    def __init__(
        self, model: Any, spec: InputSpec, settings: EngineSettings, layer: str | None = None
    ) -> None:
        self.model = model
        self.spec = spec
        self.settings = settings
        self.device = device_name(settings.device)
        # Class logits by default; with ``layer``, that layer's units/filters are the targets.
        self.scores = layer_scores(model, layer) if layer else score_models(model)
        self.scorer = Scorer(model, spec, self.scores)
        self.param = make_param(settings.parametrization, spec.shape, settings)
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
        self.inference = Inference(self.scorer, self.device, self.max_batch, self.loss_scale)
        self._build_functions()
        self.scorer.on_autograph(self._build_functions)

    def _build_functions(self) -> None:
        # Traced without AutoGraph (plain TF control flow throughout): its source
        # conversion took most of a first call's time. The outer function is traced per
        # batch size (a chunk and its remainder: it splits the batch into lanes); the
        # loop itself, most of the tracing, once for any batch size: every lane of every
        # chunk calls that one trace (TensorFlow inlines each call), odd halves and
        # remainders included.
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
        self._traced: dict[int, tf.types.experimental.ConcreteFunction] = {}  # by batch size
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

    def chunk_lanes(self) -> int:
        """Lanes (of ``lane_width`` images each) per compiled batch: ``lanes`` of them,
        fewer where ``max_batch`` holds fewer, and at least one."""
        return max(1, min(self.lanes, self.max_batch // self.lane_width))

    @model_autograph_on_demand
    def _run_chunk(self, chunk: Sequence[tuple[int, int]], steps: int) -> list[ImageResult]:
        """Optimize and evaluate whole lanes (``chunk`` is their rows, lane after lane)."""
        width = self.lane_width
        init, params = self._starts(chunk, steps)
        targets = np.array([t for t, _ in chunk], np.int32)
        with tf.device(self.device):
            loop = self._compiled(init.shape)
            aside = self.inference.trace_aside()
            try:
                quantized, curves, failed, stopped = loop(
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
            evaluate = self.inference.evaluate
            evaluated = [
                evaluate(quantized[at : at + width], tf.constant(targets[at : at + width]))
                for at in range(0, len(chunk), width)
            ]
        logits, probs, attribution, features = (
            np.concatenate([part[k].numpy() for part in evaluated]) for k in range(4)
        )
        images, curves_np, failed_np = quantized.numpy(), curves.numpy().T, failed.numpy()
        stopped_np = stopped.numpy()
        return [
            ImageResult(
                int(t),
                int(seed),
                images[i],
                float(logits[i]),
                float(probs[i]),
                curves_np[i].astype(np.float64),
                int(failed_np[i]),
                attribution[i].astype(np.float32),
                features[i].astype(np.float64),
                int(stopped_np[i]),
            )
            for i, (t, seed) in enumerate(chunk)
        ]

    def _starts(
        self, chunk: Sequence[tuple[int, int]], steps: int
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """The starting parameters and every step's transform (B×steps×4) of the chunk's
        images, each from its own seed only."""
        s = self.settings
        side = min(self.spec.height, self.spec.width)
        init = np.stack([self._initial(seed) for _, seed in chunk])
        params = np.stack(
            [
                self.param.draw(seed, steps)  # its crops, shrinking over the run
                if isinstance(self.param, MacoParam)
                else transforms.draw_params(
                    seed, steps, jitter=s.jitter * side, degrees=s.degrees, scale=s.scale
                )
                for _, seed in chunk
            ]
        )
        return init, params

    def _initial(self, seed: int) -> NDArray[np.float32]:
        """The starting parameters of one image, from this seed only."""
        return self.param.initial(seed)

    def _compiled(self, shape: tuple[int, ...]) -> tf.types.experimental.ConcreteFunction:
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

    def _join(self, aside: Aside) -> None:
        """Wait for the helper; the wait counts as tracing. Its error (a model that
        needs AutoGraph, say) is raised here, on the caller's thread."""
        began = time.perf_counter()
        aside.join()
        self.trace_seconds += time.perf_counter() - began
        if aside.error is not None:
            self.inference.evaluate_traced = False
            raise aside.error

    # ----------------------------------------------------------------- device side
    def _optimize_and_quantize(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """The optimization and the quantization of its images (uint8): the image
        reported is the quantized one, and the evaluation (``Inference.evaluate``)
        measures its scores, attribution and features. The images stay on the device
        between the two calls; nothing goes to the host and back."""
        unit, curves, failed, stopped = self._optimize_graph(init, targets, params, steps)
        finite = tf.where(tf.math.is_finite(unit), unit, tf.zeros_like(unit))
        return tf.cast(tf.round(finite * 255.0), tf.uint8), curves, failed, stopped

    def _optimize_graph(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """The batch as independent loops of ``lane_width`` images each, in one graph.
        TensorFlow runs them at the same time, so on a CPU one lane's element-wise work
        and small ops fill the cores that the other lane's model ops leave idle
        (docs/engine-speed.md, lanes). Images never interact, and every lane has the
        same shape, so an image's numbers do not depend on its lane, its place in it or
        the batch's size."""
        batch = int(init.shape[0])
        sizes = [self.lane_width] * (batch // self.lane_width)
        if len(sizes) == 1:
            final, curve, failed, stopped = self._lane_fn(init, targets, params, steps)
            return final, curve, failed, stopped
        parts = zip(
            tf.split(init, sizes), tf.split(targets, sizes), tf.split(params, sizes), strict=True
        )
        lanes = [self._lane_fn(*part, steps) for part in parts]
        return (
            tf.concat([out[0] for out in lanes], 0),
            tf.concat([out[1] for out in lanes], 1),
            tf.concat([out[2] for out in lanes], 0),
            tf.concat([out[3] for out in lanes], 0),
        )

    def _lane(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """One lane's loop: (final unit images, score per step × image, failed step,
        stop step)."""

        def update(
            t: tf.Tensor, x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, failed: tf.Tensor
        ) -> tuple[tf.Tensor, ...]:
            return self._update(t, x, m, v, failed, targets, params)

        kind = self.scores.output_kind
        if lane.stops(self.settings, kind):
            x, curves, failed, stopped = lane.stopping_loop(
                update, self.param.to_unit, init, targets, steps, self.settings, kind
            )
        else:
            x, curves, failed, stopped = lane.plain_loop(update, init, steps)
        final = self.param.to_unit(x)
        finite = tf.reduce_all(tf.math.is_finite(final), axis=[1, 2, 3])
        failed = tf.where((failed < 0) & ~finite, steps, failed)
        return final, curves, failed, stopped

    def _update(
        self,
        t: tf.Tensor,
        x: tf.Tensor,
        m: tf.Tensor,
        v: tf.Tensor,
        failed: tf.Tensor,
        targets: tf.Tensor,
        params: tf.Tensor,
    ) -> tuple[tf.Tensor, ...]:
        """Step ``t`` of a lane: (x, m, v, failed step, target score, the score model's
        outputs) after the forward and backward pass and Adam's update."""
        s = self.settings
        with tf.GradientTape() as tape:
            tape.watch(x)
            unit, moved = self.param.view(x, params[:, t, :], t, s)
            outputs = self.scorer.logits(self.scorer.to_input(moved))
            score, raised = class_objective(outputs, targets, self.scores.output_kind, s)
            loss = tf.reduce_sum(penalty(unit, s, value=False)) - tf.reduce_sum(raised)
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
        finite = tf.math.is_finite(score) & tf.math.is_finite(tf.reduce_sum(unit, axis=[1, 2, 3]))
        failed = tf.where((failed < 0) & ~finite, t, failed)
        # Images are independent: a failed one goes on as NaN without touching the
        # others, and is reported by its first failed step.
        x, m, v = adam(x, grad, m, v, t, s.learning_rate)
        return self.param.after_step(x, t), m, v, failed, score, outputs
