"""What a step raises and what holds it back, on the device.

``Scorer``: the model's scores of images in [0, 1] ("unit") space, all classes, mapped
to the model's input on the way in. ``class_objective``: the target's score against the
strongest other classes. ``penalty``: tf-keras-vis's regularizers (total variation and
norm) with their gradient written out. Everything here is traceable TensorFlow; the
hand-written gradients equal autodiff's (tests/test_engine.py holds them to it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import numpy as np
import tensorflow as tf

from ..model import InputSpec
from .targets import ScoreModels


class Scorer:
    """The model's scores of unit-space images: the input range or the user's
    preprocessing applied inside the step, and the model called with AutoGraph for its
    own code once a trace showed the model needs it (``call``)."""

    def __init__(self, model: Any, spec: InputSpec, models: ScoreModels) -> None:
        self.model = model
        self.spec = spec
        self.models = models
        self._preprocess = (
            spec.preprocess.tf_function(spec.channels) if spec.preprocess is not None else None
        )
        # True once the model turned out to need AutoGraph (see call).
        self.model_autograph = False
        self._calls: dict[int, Callable[[tf.Tensor], Any]] = {}
        self._retrace: list[Callable[[], None]] = []

    def on_autograph(self, retrace: Callable[[], None]) -> None:
        """Have ``retrace`` rebuild its compiled functions when AutoGraph is turned on:
        their traces called the model without it."""
        self._retrace.append(retrace)

    def turn_on_autograph(self) -> None:
        self.model_autograph = True
        self._calls = {}
        for retrace in self._retrace:
            retrace()

    def to_input(self, unit: tf.Tensor) -> tf.Tensor:
        if self._preprocess is not None:  # the user's preprocessing, inside the step
            return self._preprocess(255.0 * unit)
        return self.spec.low + (self.spec.high - self.spec.low) * unit

    def call(self, model: Any, inputs: tf.Tensor) -> Any:
        """``model(inputs)``; with AutoGraph on for the model's own code once a trace
        showed the model needs it. The engine's functions are traced without AutoGraph,
        but a custom layer may rely on it (tf-keras converts a layer's ``call`` when
        AutoGraph is on around it: a Python ``if`` on a tensor). Then a nested
        tf.function per model turns it on for the model alone (Keras's own code is never
        converted). Not by default: the nested call makes a first call markedly slower
        (docs/engine-speed.md); the steps run as fast either way."""
        if not self.model_autograph:
            return model(inputs, training=False)
        call = self._calls.get(id(model))
        if call is None:
            call = self._calls[id(model)] = tf.function(
                lambda x: model(x, training=False), autograph=True
            )
        return call(inputs)

    def logits(self, inputs: tf.Tensor) -> tf.Tensor:
        """The score model's output in float32, whatever the model computes in."""
        return tf.cast(self.call(self.models.logits, inputs), tf.float32)

    def scores(
        self, unit: tf.Tensor, with_features: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
        """(logits, probabilities, penultimate features or None) of unit-space images,
        all classes. Features come from the same forward pass where the model allows
        (``ScoreModels.joint``)."""
        inputs = self.to_input(unit)
        kind = self.models.output_kind
        features = None
        if kind == "unit":  # a layer's units: no probabilities
            units = self.logits(inputs)
            return units, tf.fill(tf.shape(units), np.nan), None
        if kind == "log":
            outputs = tf.cast(self.call(self.model, inputs), tf.float32)
            return tf.math.log(outputs + 1e-12), outputs, None
        # One forward pass: the probabilities are the squashed logits (the linear copy
        # of the last layer has the user's weights), not a second run of the model.
        if with_features and self.models.joint is not None:
            logits, features = self.call(self.models.joint, inputs)
            logits = tf.cast(logits, tf.float32)
        else:
            logits = self.logits(inputs)
        if kind == "sigmoid" or (kind == "linear" and logits.shape[-1] == 1):
            return logits, tf.nn.sigmoid(logits), features
        return logits, tf.nn.softmax(logits, axis=-1), features

    def features(self, unit: tf.Tensor) -> tf.Tensor:
        """Penultimate features of unit-space images, one flat row each (no columns for
        a model without a head)."""
        if self.models.features is None:
            return tf.zeros([tf.shape(unit)[0], 0])
        return flat(self.call(self.models.features, self.to_input(unit)))


def flat(features: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(features, tf.float32), [tf.shape(features)[0], -1])


class _UsesScorer(Protocol):
    scorer: Scorer


S = TypeVar("S", bound=_UsesScorer)
P = ParamSpec("P")
T = TypeVar("T")


def model_autograph_on_demand(
    method: Callable[Concatenate[S, P], T],
) -> Callable[Concatenate[S, P], T]:
    """Run a method that calls the model; if tracing the model failed for want of
    AutoGraph (a custom layer's Python ``if``/``for`` on a tensor), turn it on for the
    model's calls (``Scorer.call``), retrace every function that calls the model and run
    again. Earlier chunks' results are kept."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except tf.errors.OperatorNotAllowedInGraphError:
            if self.scorer.model_autograph:
                raise
            self.scorer.turn_on_autograph()
            return method(self, *args, **kwargs)

    return wrapper


class ObjectiveSettings(Protocol):
    """The settings the objective reads (``EngineSettings`` has them)."""

    @property
    def contrast(self) -> float: ...
    @property
    def direction(self) -> int: ...


class PenaltySettings(Protocol):
    """The settings the penalty reads (``EngineSettings`` has them)."""

    @property
    def tv_weight(self) -> float: ...
    @property
    def norm_weight(self) -> float: ...
    @property
    def norm_p(self) -> int: ...


def class_objective(
    outputs: tf.Tensor, targets: tf.Tensor, kind: str, settings: ObjectiveSettings
) -> tuple[tf.Tensor, tf.Tensor]:
    """(target score, what the step raises) per image, from the score model's outputs
    (``Scorer.logits``) for an output of ``kind`` (``ScoreModels.output_kind``)."""
    s = settings
    logits = outputs
    if kind == "log":
        logits = tf.math.log(logits + 1e-12)
    # The target's score as a product with its one-hot row, not a gather: the same
    # value and gradient (bit for bit), and a backward pass of two ops instead of a
    # batched gather's fifty (a first call optimizes every node of the step).
    hot = tf.one_hot(targets, tf.shape(logits)[-1])
    score = tf.reduce_sum(logits * hot, axis=1)
    if s.contrast > 0 and s.direction > 0 and logits.shape[-1] > 1 and (kind != "unit"):
        # Raise the target against the strongest other classes, not alone:
        # z_c − λ·logsumexp_{j≠c} z_j (λ = 0 is the plain logit).
        return score, score - s.contrast * logsumexp_others(logits, hot)
    return score, s.direction * score


@tf.custom_gradient  # type: ignore[untyped-decorator]
def logsumexp_others(logits: tf.Tensor, hot: tf.Tensor) -> Any:
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


def tv_value(x: tf.Tensor, weight: float) -> tf.Tensor:
    """tf-keras-vis ``TotalVariation2D(weight)(x)`` per image (the parity test compares
    them), written here so that a first call does not import tf-keras-vis."""
    return weight * tf.image.total_variation(x) / float(np.prod(x.shape[1:]))


def norm_value(x: tf.Tensor, weight: float, p: int) -> tf.Tensor:
    """tf-keras-vis ``Norm(weight, p)(x)`` per image (see ``tv_value``)."""
    size = int(np.prod(x.shape[1:]))
    flat = tf.reshape(x, [-1, size])  # any batch size: the engine traces its lanes once
    return weight * tf.norm(flat, ord=p, axis=1) / float(size) ** (1.0 / p)


def penalty(unit: tf.Tensor, settings: PenaltySettings, *, value: bool = True) -> tf.Tensor:
    """tf-keras-vis ``TotalVariation2D(unit) + Norm(2·unit − 1)`` per image, with its
    gradient written out: autodiff through TV's strided slices and Norm's float power
    cost most of the engine's time over a bare loop, the written-out gradient a small
    part of that (docs/engine-speed.md, where the time goes). ``value=False``: zeros in
    its place, the same gradient (the step seeds its backward pass and never reads the
    loss: the value's thirty nodes would only be optimized away)."""
    s = settings
    p = float(s.norm_p)

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def regularized(x: tf.Tensor) -> Any:
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
            return tf.reshape(tv_coef, [-1, 1, 1, 1]) * tv + tf.reshape(coef, [-1, 1, 1, 1]) * powp1

        return total, grad

    return regularized(unit)
