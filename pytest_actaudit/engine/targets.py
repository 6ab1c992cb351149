"""What to maximize: the pre-activation score (logit) of a class.

Maximizing a softmax output saturates (its gradient vanishes once the class wins)
and can be raised by pushing other classes down; the logit cannot. We build a
second model that shares the user's layers and weights but stops before the final
softmax/sigmoid; the user's model object is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import keras_module

SQUASHING = {"softmax", "sigmoid"}


@dataclass(frozen=True)
class ScoreModels:
    """``logits``: model → pre-activation scores; ``output_kind`` says how the user's
    model turns them into probabilities: "softmax", "sigmoid", "linear" (already
    logits: we apply softmax) or "log" (opaque model emitting probabilities: we
    maximize their logarithm, which differs from the logit only by a per-image
    constant under softmax)."""

    logits: Any
    output_kind: str


def _activation_name(activation: Any) -> str:
    return str(getattr(activation, "__name__", activation or "linear")).lower()


def score_models(model: Any) -> ScoreModels:
    keras = keras_module()
    last = model.layers[-1]
    kind = type(last).__name__
    if kind == "Softmax":
        return ScoreModels(keras.Model(model.inputs, last.input), "softmax")
    act_name = _activation_name(getattr(last, "activation", None))
    if kind == "Activation" and act_name in SQUASHING:
        return ScoreModels(keras.Model(model.inputs, last.input), act_name)
    if act_name in SQUASHING and hasattr(last, "get_config"):
        # A Dense/Conv layer with a squashing activation: same layer, linear, same weights.
        config = dict(last.get_config(), activation="linear", name=last.name + "_logits")
        linear = type(last).from_config(config)
        outputs = linear(last.input)
        linear.set_weights(last.get_weights())
        return ScoreModels(keras.Model(model.inputs, outputs), act_name)
    if kind == "TFSMLayer":
        return ScoreModels(model, "log")
    return ScoreModels(model, "linear")
