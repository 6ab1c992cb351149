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

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import ActauditError
from ..model import InputSpec
from . import transforms
from .params import make_param
from .targets import layer_scores, score_models


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
    blur_sigma: float = 0.5
    init_noise: float = 0.1
    parametrization: str = "fourier"  # or "pixel"; chosen by measurement, see README
    contrast: float = 0.5  # weight of the other classes' logsumexp in the objective
    direction: int = 1  # +1 raises the target score; -1 lowers it (regression outputs)
    max_batch: int = 64
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


class Engine:
    """Optimizes images for one model. Build once per model; ``run`` many times."""

    def __init__(
        self, model: Any, spec: InputSpec, settings: EngineSettings, layer: str | None = None
    ) -> None:
        with warnings.catch_warnings():  # tf-keras-vis imports its own deprecated module
            warnings.simplefilter("ignore", DeprecationWarning)
            from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D

        self.model = model
        self.spec = spec
        self.settings = settings
        self.device = device_name(settings.device)
        # Class logits by default; with ``layer``, that layer's units/filters are the targets.
        self.scores = layer_scores(model, layer) if layer else score_models(model)
        self._tv = TotalVariation2D(weight=settings.tv_weight)
        self._norm = Norm(weight=settings.norm_weight, p=settings.norm_p)
        self.param = make_param(settings.parametrization, spec.shape, settings)
        # One trace per batch size (a chunk and its remainder): tf-keras-vis's Norm needs
        # a static batch dimension, which reduce_retracing would generalize away.
        self._optimize = tf.function(self._optimize_graph)
        self._evaluate = tf.function(self._evaluate_graph, reduce_retracing=True)
        self._predict = tf.function(self._predict_graph, reduce_retracing=True)
        self._neutral: np.ndarray | None = None

    # ------------------------------------------------------------------ host side
    def run(
        self,
        plan: Sequence[tuple[int, int]],
        steps: int,
        progress: Callable[[str], None] | None = None,
    ) -> list[ImageResult]:
        """Optimize one image per (target index, seed), ``steps`` steps, in chunks of
        ``max_batch``."""
        results: list[ImageResult] = []
        size = self.settings.max_batch
        for start in range(0, len(plan), size):
            chunk = plan[start : start + size]
            began = time.perf_counter()
            results.extend(self._run_chunk(chunk, steps))
            if progress:
                progress(
                    f"actaudit: optimized {len(chunk)} images ({start + len(chunk)}/{len(plan)}), "
                    f"{steps} steps, {time.perf_counter() - began:.1f}s on {self.device}"
                )
        return results

    def _run_chunk(self, chunk: Sequence[tuple[int, int]], steps: int) -> list[ImageResult]:
        s = self.settings
        side = min(self.spec.height, self.spec.width)
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
            unit, curves, failed = self._optimize(
                tf.constant(init), tf.constant(targets), tf.constant(params), tf.constant(steps)
            )
            # The image we report is the quantized one, and the scores are measured on it.
            images = np.round(unit.numpy() * 255.0).astype(np.uint8)
            logits, probs, attribution, features = self._evaluate(
                tf.constant(images), tf.constant(targets)
            )
        curves_np, failed_np = curves.numpy().T, failed.numpy()
        logits_np, probs_np, attr_np = logits.numpy(), probs.numpy(), attribution.numpy()
        features_np = features.numpy()
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

    def _initial(self, seed: int) -> np.ndarray:
        """The starting parameters of one image, from this seed only."""
        return self.param.initial(seed)

    # ----------------------------------------------------------------- device side
    def _to_input(self, unit: tf.Tensor) -> tf.Tensor:
        return self.spec.low + (self.spec.high - self.spec.low) * unit

    def _optimize_graph(
        self, init: tf.Tensor, targets: tf.Tensor, params: tf.Tensor, steps: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        s = self.settings
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        x = init
        m = tf.zeros_like(init)
        v = tf.zeros_like(init)
        batch = tf.shape(init)[0]
        failed = tf.fill([batch], tf.constant(-1, tf.int32))
        curve = tf.TensorArray(tf.float32, size=steps)
        for t in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(x)
                unit = self.param.to_unit(x)
                moved = transforms.affine(unit, params[:, t, :])
                logits = self.scores.logits(self._to_input(moved), training=False)
                if self.scores.output_kind == "log":
                    logits = tf.math.log(logits + 1e-12)
                score = tf.gather(logits, targets, axis=1, batch_dims=1)
                objective = s.direction * score
                if (
                    s.contrast > 0
                    and s.direction > 0
                    and logits.shape[-1] > 1
                    and (self.scores.output_kind != "unit")
                ):
                    # Raise the target against the strongest other classes, not alone:
                    # z_c − λ·logsumexp_{j≠c} z_j (λ = 0 is the plain logit).
                    others = tf.where(tf.one_hot(targets, tf.shape(logits)[-1]) > 0, -1e9, logits)
                    objective = score - s.contrast * tf.reduce_logsumexp(others, axis=-1)
                penalty = self._penalty(unit)
                loss = tf.reduce_sum(penalty - objective)
            grad = tape.gradient(loss, x)
            finite = tf.math.is_finite(score) & tf.reduce_all(
                tf.math.is_finite(grad), axis=list(range(1, len(init.shape)))
            )
            failed = tf.where((failed < 0) & ~finite, t, failed)
            active = tf.reshape(failed < 0, [-1] + [1] * (len(init.shape) - 1))
            grad = tf.where(active, grad, 0.0)
            step = tf.cast(t + 1, tf.float32)
            m = beta1 * m + (1.0 - beta1) * grad
            v = beta2 * v + (1.0 - beta2) * tf.square(grad)
            update = (m / (1.0 - beta1**step)) / (tf.sqrt(v / (1.0 - beta2**step)) + eps)
            x = self.param.after_step(x - s.learning_rate * update, t)
            curve = curve.write(t, tf.where(finite, score, tf.fill([batch], np.nan)))
        return self.param.to_unit(x), curve.stack(), failed

    def _penalty(self, unit: tf.Tensor) -> tf.Tensor:
        """tf-keras-vis ``TotalVariation2D(unit) + Norm(2·unit − 1)`` per image, with its
        gradient written out: autodiff through TV's strided slices and Norm's float
        power cost ~60% of the engine's time over a bare loop (benchmarks, --ablate),
        the written-out gradient ~10% of that, equal to 3e-7 relative."""
        s = self.settings
        p = float(s.norm_p)

        @tf.custom_gradient  # type: ignore[untyped-decorator]
        def penalty(x: tf.Tensor) -> Any:
            value = self._tv(x) + self._norm(2.0 * x - 1.0)

            def grad(upstream: tf.Tensor) -> tf.Tensor:
                n = float(np.prod(x.shape[1:]))
                dy = tf.sign(x[:, 1:] - x[:, :-1])
                dx = tf.sign(x[:, :, 1:] - x[:, :, :-1])
                zy, zx = tf.zeros_like(x[:, :1]), tf.zeros_like(x[:, :, :1])
                tv = (tf.concat([zy, dy], 1) - tf.concat([dy, zy], 1)) + (
                    tf.concat([zx, dx], 2) - tf.concat([dx, zx], 2)
                )
                y = 2.0 * x - 1.0
                if s.norm_p == 6:  # |y|^6 = (y²)³ and |y|^5·sign(y) = y⁵: no float pow
                    y2 = tf.square(y)
                    powp, powp1 = y2 * y2 * y2, y2 * y2 * y
                else:
                    powp = tf.pow(tf.abs(y), p)
                    powp1 = tf.sign(y) * tf.pow(tf.abs(y), p - 1.0)
                norm = tf.pow(tf.reduce_sum(powp, axis=[1, 2, 3], keepdims=True) + 1e-30, 1 / p)
                dnorm = powp1 / tf.pow(norm, p - 1.0) / n ** (1.0 / p)
                total = s.tv_weight / n * tv + s.norm_weight * 2.0 * dnorm
                return tf.reshape(upstream, [-1, 1, 1, 1]) * total

            return value, grad

        return penalty(unit)

    def _scores(self, unit: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(logits, probabilities) of unit-space images, all classes."""
        inputs = self._to_input(unit)
        kind = self.scores.output_kind
        if kind == "unit":  # a layer's units: no probabilities
            units = self.scores.logits(inputs, training=False)
            return units, tf.fill(tf.shape(units), np.nan)
        outputs = self.model(inputs, training=False)
        if kind == "log":
            return tf.math.log(outputs + 1e-12), outputs
        if kind == "linear":
            probs = tf.nn.sigmoid(outputs) if outputs.shape[-1] == 1 else tf.nn.softmax(outputs)
            return outputs, probs
        return self.scores.logits(inputs, training=False), outputs

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
            logits, probs = self._scores(unit)
            target_logits = tf.gather(logits, targets, axis=1, batch_dims=1)
        grad = tape.gradient(target_logits, unit)
        attribution = tf.reduce_sum(tf.abs(grad * (unit - 0.5)), axis=-1)
        probs = tf.gather(probs, targets, axis=1, batch_dims=1)
        return target_logits, probs, attribution, self._features(unit)

    def _features(self, unit: tf.Tensor) -> tf.Tensor:
        if self.scores.features is None:
            return tf.zeros([tf.shape(unit)[0], 0])
        features = self.scores.features(self._to_input(unit), training=False)
        return tf.reshape(tf.cast(features, tf.float32), [tf.shape(unit)[0], -1])

    def neutral_features(self) -> np.ndarray:
        """Penultimate features of a mid-grey image: the origin that the feature
        consistency metric centres on (uncentred ReLU features all look alike)."""
        if self._neutral is None:
            grey = tf.fill([1, *self.spec.shape], 0.5)
            with tf.device(self.device):
                self._neutral = self._features(grey).numpy()[0].astype(np.float64)
        return self._neutral

    def attribution(self, images: np.ndarray, target: int) -> np.ndarray:
        """Attribution maps (N×H×W) of uint8 images for one class, in chunks."""
        maps = []
        with tf.device(self.device):
            for start in range(0, len(images), self.settings.max_batch):
                chunk = images[start : start + self.settings.max_batch]
                targets = tf.fill([len(chunk)], tf.constant(target, tf.int32))
                maps.append(self._evaluate(tf.constant(chunk), targets)[2].numpy())
        return np.concatenate(maps)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities) of uint8 images N×H×W×C, all classes, in chunks."""
        logits, probs = [], []
        with tf.device(self.device):
            for start in range(0, len(images), self.settings.max_batch):
                chunk = tf.constant(images[start : start + self.settings.max_batch])
                lo, pr = self._predict(chunk)
                logits.append(lo.numpy())
                probs.append(pr.numpy())
        return np.concatenate(logits), np.concatenate(probs)

    def _predict_graph(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self._scores(tf.cast(images, tf.float32) / 255.0)
