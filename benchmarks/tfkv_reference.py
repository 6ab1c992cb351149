"""The same job as :mod:`.maximize`, done through tf-keras-vis's eager
``ActivationMaximization``: for the parity test and the benchmark.

This is the "today's alternative" the engine is measured against: one eager Python
step per iteration, either over one batch of every (target, seed) (``mode="batched"``)
or one call per (target, seed) (``mode="per_item"``, the tutorial way). It is not used
by the plugin.

What is the same as the engine:

* the objective: the target's **logit** (tf-keras-vis ``ReplaceToLinear`` on a clone,
  so the user's model is untouched; an output that is a separate ``Softmax`` /
  ``Activation`` layer is cut off with ``ExtractIntermediateLayer`` instead, since
  ``ReplaceToLinear`` only edits a layer's ``activation`` attribute), through
  ``CategoricalScore`` (minus λ·logsumexp of the other logits when the settings carry a
  ``contrast`` λ > 0, as the engine's objective does);
* the regularizers: tf-keras-vis ``TotalVariation2D(tv_weight)`` and
  ``Norm(norm_weight, p=norm_p)``, evaluated in the engine's units. tf-keras-vis hands
  a regularizer the raw model input (e.g. 0–255); the engine applies TV to the image in
  [0, 1] and the norm to the image centred to [−1, 1]. A thin ``Regularizer`` adapter maps
  the input back to those units and calls the tf-keras-vis regularizer on it. Without
  it TV would be (high − low) times larger and the norm would not be centred (for a
  0–255 model: 255 × the TV, and a norm of the raw pixels, which penalises brightness);
* the optimizer: Adam with the engine's step size expressed in input units
  (``learning_rate × (high − low)``; Adam's update is invariant to the gradient's scale,
  so this is the same step as the engine's in [0, 1]). Keras adds its ε to the
  uncorrected √v while the engine adds it to the bias-corrected one; we pick Keras's ε
  so that both are ≤ 1e-8 in [0, 1] units, far below any gradient that moves a pixel;
* the start: ``Engine._initial(seed)`` of an ``Engine`` built with the same settings
  (built only, never run: mid-grey plus the seed's noise) mapped to the input range;
* clipping to the input range after every update, and the Gaussian blur every
  ``blur_every`` updates (an input modifier running before each step, which is where the
  engine's post-update clip/blur land; a blur due after the last update is applied to
  the result);
* the reported logit: measured on the final image quantized to uint8, as the engine
  does.

What differs, by construction of tf-keras-vis:

* the transforms. The engine looks at the image through a differentiable random
  affine view (shift/rotate/zoom, ``ImageProjectiveTransformV3``) that leaves the image
  itself in place; tf-keras-vis input modifiers (``Jitter``, ``Rotate2D``, ``Scale``,
  the last two on the host through scipy) move the image itself, persistently, before
  each step, and are not differentiated through. We use them with the engine's
  magnitudes (jitter in pixels = ``jitter × side``, ``degrees``, zoom ``1 ± scale``),
  seeded from the plan's seeds, so the work per step is the same kind, but the images
  and logits are not expected to match. With ``jitter = degrees = scale = 0`` no
  modifier is added, the engine's affine view is the identity, and both paths compute
  the same objective with the same optimizer: the parity test relies on that;
* the parametrization: tf-keras-vis optimizes pixels, so the reference needs
  ``parametrization="pixel"`` (an engine default of ``"fourier"`` has no tf-keras-vis
  counterpart: ``Reference`` refuses it rather than quietly doing another job);
* tf-keras-vis draws one jitter/angle/zoom per step for the whole batch, the engine one
  per image (so batched and per-item reference runs differ once transforms are on);
* NaN/Inf handling: tf-keras-vis has none; this path does not stop a target.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from pytest_actaudit.engine import transforms
from pytest_actaudit.engine.loop import Engine, EngineSettings
from pytest_actaudit.engine.targets import SQUASHING
from pytest_actaudit.errors import ActauditError
from pytest_actaudit.model import InputSpec, keras_module

MODES = ("batched", "per_item")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """tf-keras-vis's own DeprecationWarnings, and Keras 3's warning that tf-keras-vis
    passes a one-element list to a single-input model: known, harmless, local."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*structure of `inputs` doesn't match.*")
        warnings.filterwarnings("ignore", message=r".*[Ee]xpected.*input.*list.*")
        yield


with _quiet():
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import (
        InputModifier,
        Jitter,
        Rotate2D,
        Scale,
    )
    from tf_keras_vis.activation_maximization.regularizers import (
        Norm,
        Regularizer,
        TotalVariation2D,
    )
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer, ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore


class _InEngineUnits(Regularizer):  # type: ignore[misc]
    """A tf-keras-vis regularizer evaluated on the image in the engine's units:
    [0, 1] (``centred=False``) or [−1, 1] (``centred=True``)."""

    def __init__(self, inner: Any, spec: InputSpec, *, centred: bool) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.low = float(spec.low)
        self.span = float(spec.high - spec.low)
        self.centred = centred

    def __call__(self, input_value: tf.Tensor) -> tf.Tensor:
        unit = (input_value - self.low) / self.span
        return self.inner(2.0 * unit - 1.0 if self.centred else unit)


class _ClipAndBlur(InputModifier):  # type: ignore[misc]
    """Runs before every step: clip the previous update to the input range (the engine
    clips after each update) and, after every ``every``-th update, blur (the engine's
    blur). Counts its calls: call k sees the image after k updates."""

    def __init__(self, spec: InputSpec, every: int, kernel: tf.Tensor | None) -> None:
        self.low, self.high = float(spec.low), float(spec.high)
        self.every = every
        self.kernel = kernel
        self.calls = 0

    def __call__(self, seed_input: Any) -> tf.Tensor:
        k = self.calls
        self.calls += 1
        x = tf.clip_by_value(tf.convert_to_tensor(seed_input, tf.float32), self.low, self.high)
        if self.kernel is not None and k > 0 and k % self.every == 0:
            x = transforms.blur(x, self.kernel)
        return x


class Reference:
    """tf-keras-vis ``ActivationMaximization`` set up like the engine, for one model.

    Build once (clones the model and linearizes the clone's output), ``run`` many times.
    """

    def __init__(self, model: Any, spec: InputSpec, settings: EngineSettings) -> None:
        if spec.preprocess is not None:  # tf-keras-vis optimizes the model's own input
            raise ValueError(
                "the tf-keras-vis reference optimizes the model's input in a value range; "
                f"it cannot apply the preprocessing {spec.preprocess.text!r}"
            )
        parametrization = getattr(settings, "parametrization", "pixel")
        if parametrization != "pixel":
            raise ValueError(
                f"the tf-keras-vis reference optimizes pixels; parametrization "
                f"{parametrization!r} has no tf-keras-vis counterpart"
            )
        self.spec = spec
        self.settings = settings
        # The engine's own starting images (built, never run: no tracing happens here).
        self._engine = Engine(model, spec, settings)
        modifier = _logit_modifier(model)
        with _quiet():
            self.visualizer = ActivationMaximization(model, model_modifier=modifier, clone=True)
        blur = settings.blur_every > 0 and settings.blur_sigma > 0
        self._kernel = (
            transforms.gaussian_kernel(settings.blur_sigma, spec.channels) if blur else None
        )

    @property
    def model(self) -> Any:
        """The linearized clone tf-keras-vis optimizes against (pre-softmax scores)."""
        return self.visualizer.model

    def initial(self, seed: int) -> np.ndarray:
        """The engine's start for this seed, in the model's input range."""
        unit = self._engine._initial(seed)
        return (self.spec.low + (self.spec.high - self.spec.low) * unit).astype(np.float32)

    def run(
        self, plan: Sequence[tuple[int, int]], steps: int, mode: str = "batched"
    ) -> list[tuple[np.ndarray, float]]:
        """(uint8 image H×W×C, logit measured on it) per (target, seed) of ``plan``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        plan = [(int(t), int(s)) for t, s in plan]
        if not plan:
            return []
        if mode == "batched":
            finals = self._maximize(plan, steps)
        else:
            finals = np.concatenate([self._maximize([item], steps) for item in plan])
        span = self.spec.high - self.spec.low
        images = np.round(np.clip((finals - self.spec.low) / span, 0.0, 1.0) * 255.0)
        images = images.astype(np.uint8)
        logits = self._logits(images, [t for t, _ in plan])
        return [(images[i], float(logits[i])) for i in range(len(plan))]

    # ------------------------------------------------------------------ internals
    def _maximize(self, plan: Sequence[tuple[int, int]], steps: int) -> np.ndarray:
        s = self.settings
        spec = self.spec
        span = float(spec.high - spec.low)
        seeds = [seed for _, seed in plan]
        seed_input = tf.constant(np.stack([self.initial(seed) for seed in seeds]))
        clip_blur = _ClipAndBlur(spec, s.blur_every, self._kernel)
        modifiers: list[Any] = [clip_blur]
        side = min(spec.height, spec.width)
        rng = np.random.default_rng([*seeds, 0x7F5])
        if s.jitter > 0:
            modifiers.append(Jitter(jitter=max(1, round(s.jitter * side))))
        if s.degrees > 0:
            rotate = Rotate2D(degree=s.degrees)
            rotate.random_generator = rng
            modifiers.append(rotate)
        if s.scale > 0:
            zoom = Scale(low=1.0 - s.scale, high=1.0 + s.scale)
            zoom.random_generator = rng
            modifiers.append(zoom)
        regularizers = [
            _InEngineUnits(TotalVariation2D(weight=s.tv_weight), spec, centred=False),
            _InEngineUnits(Norm(weight=s.norm_weight, p=s.norm_p), spec, centred=True),
        ]
        beta_2 = 0.999
        optimizer = keras_module().optimizers.Adam(
            learning_rate=s.learning_rate * span,
            beta_1=0.9,
            beta_2=beta_2,
            epsilon=1e-8 * math.sqrt(1.0 - beta_2) / span,
        )
        with _quiet(), _numpy_global_seed(int(rng.integers(2**31))):
            result = self.visualizer(
                _score([t for t, _ in plan], float(getattr(s, "contrast", 0.0))),
                seed_input=seed_input,
                input_range=(float(spec.low), float(spec.high)),
                input_modifiers=modifiers,
                regularizers=regularizers,
                steps=steps,
                optimizer=optimizer,
            )
        if isinstance(result, list | tuple):  # documented for multi-input models only
            result = result[0]
        # tf-keras-vis 0.8.7 under Keras 3 returns an EagerTensor, not the documented ndarray.
        final = np.asarray(result.numpy() if hasattr(result, "numpy") else result, np.float32)
        if self._kernel is not None and steps > 0 and steps % s.blur_every == 0:
            # The engine also blurs after its last update when the count falls on it.
            final = np.asarray(transforms.blur(tf.constant(final), self._kernel), np.float32)
        return final

    def _logits(self, images: np.ndarray, targets: list[int]) -> np.ndarray:
        span = self.spec.high - self.spec.low
        inputs = tf.constant(self.spec.low + span * (images.astype(np.float32) / 255.0))
        outputs = self.model(inputs, training=False)
        if isinstance(outputs, list | tuple):
            outputs = outputs[0]
        scores = np.asarray(outputs, np.float32)
        picked: np.ndarray = np.take_along_axis(scores, np.asarray(targets)[:, None], axis=1)
        return picked[:, 0]


def reference_maximize(
    model: Any,
    spec: InputSpec,
    plan: Sequence[tuple[int, int]],
    steps: int,
    settings: EngineSettings,
    mode: str = "batched",
) -> list[tuple[np.ndarray, float]]:
    """Class-maximize every (target index, seed) of ``plan`` with tf-keras-vis, set up
    like the engine. ``mode``: ``"batched"`` (one ``ActivationMaximization`` call over
    the whole plan) or ``"per_item"`` (one call per (target, seed)).

    Returns (uint8 image H×W×C, logit measured on that image) per item, in plan order.
    """
    return Reference(model, spec, settings).run(plan, steps, mode)


# ---------------------------------------------------------------------- helpers
def _score(targets: list[int], contrast: float) -> Any:
    """tf-keras-vis ``CategoricalScore`` of each image's target; with a ``contrast``
    setting, the engine's contrastive objective z_c − λ·logsumexp_{j≠c} z_j instead
    (tf-keras-vis takes any callable as a score)."""
    categorical = CategoricalScore(targets)
    if contrast <= 0:
        return categorical

    def contrastive(output: tf.Tensor) -> tf.Tensor:
        if output.shape[-1] <= 1:
            return categorical(output)
        mask = tf.one_hot(targets, output.shape[-1]) > 0
        others = tf.where(mask, -1e9, output)
        return categorical(output) - contrast * tf.reduce_logsumexp(others, axis=-1)

    return contrastive


@contextlib.contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """tf-keras-vis's ``Jitter`` draws from numpy's global generator: seed it for the
    call, and give the caller's global state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", activation or "linear")).lower()


def _logit_modifier(model: Any) -> list[Any]:
    """tf-keras-vis model modifiers that make the (cloned) model output logits."""
    last = model.layers[-1]
    kind = type(last).__name__
    if kind == "TFSMLayer":
        raise ActauditError(
            "the tf-keras-vis reference cannot linearize an opaque SavedModel layer; "
            "use a .keras/.h5 model"
        )
    if kind == "Softmax" or (kind == "Activation" and _activation_name(last) in SQUASHING):
        # ReplaceToLinear would set an attribute this layer does not use: take its input.
        producer = next((layer for layer in model.layers[:-1] if layer.output is last.input), None)
        if producer is None:
            raise ActauditError(
                f"cannot find the layer feeding the output layer {last.name!r} of {model.name!r}"
            )
        return [ExtractIntermediateLayer(producer.name)]
    if _activation_name(last) in SQUASHING:
        return [ReplaceToLinear()]
    return []  # already linear: nothing to change (and no clone needed)
