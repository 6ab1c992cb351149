"""What to maximize: the pre-activation score (logit) of a class.

Maximizing a softmax output saturates (its gradient vanishes once the class wins)
and can be raised by pushing other classes down; the logit cannot. We build a
second model that shares the user's layers and weights but stops before the final
softmax/sigmoid; the user's model object is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.load import is_binary_head, keras_module

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
    features: Any = None  # model → penultimate activations (input of the last Dense)
    # model → [logits, features] in one forward pass (None where they cannot share one)
    joint: Any = None


def _activation_name(activation: Any) -> str:
    return str(getattr(activation, "__name__", activation or "linear")).lower()


def feature_model(model: Any) -> Any:
    """The input of the last layer with a kernel (the classifier head): the model's
    penultimate representation, or ``None`` when there is no such layer."""
    keras = keras_module()
    for layer in reversed(model.layers):
        if hasattr(layer, "kernel") and type(layer).__name__ != "TFSMLayer":
            try:
                return keras.Model(model.inputs, layer.input)
            except Exception:  # nested or multi-input heads: no feature metric
                return None
    return None


def detector_model(model: Any) -> Any:
    """The output of the last layer with a spatial (batch, H, W, channels) output: the
    model's last bank of local detectors, or ``None`` when there is none (or the graph
    cannot be cut there)."""
    keras = keras_module()
    for layer in reversed(model.layers):
        try:
            output = layer.output
        except (AttributeError, ValueError):  # a layer used twice, or never built
            continue
        if not hasattr(output, "shape") or len(output.shape) != 4:
            continue
        if output.shape[1] == 1 and output.shape[2] == 1:
            continue  # a 1 × 1 map (a squeeze-excite gate) is no bank of detectors
        try:
            return keras.Model(model.inputs, output)
        except Exception:
            return None
    return None


def score_models(model: Any) -> ScoreModels:
    scores = _score_models(model)
    if is_binary_head(model):
        # A binary head: two targets, its logit z and -z (the negation), whose sigmoids
        # are the two classes' probabilities, exactly.
        keras = keras_module()
        z = scores.logits.outputs[0]
        both = keras.layers.Concatenate(name="binary_logits")(
            [keras.layers.Rescaling(-1.0, name="negated_logit")(z), z]
        )
        scores = ScoreModels(keras.Model(model.inputs, both), "sigmoid")
    features = feature_model(model)
    joint = None
    if features is not None and scores.output_kind != "log":
        try:  # both are cuts of the same functional graph: one model, one forward pass
            joint = keras_module().Model(
                model.inputs, [scores.logits.outputs[0], features.outputs[0]]
            )
        except Exception:  # a graph Keras cannot cut twice: two forward passes
            joint = None
    return ScoreModels(scores.logits, scores.output_kind, features, joint)


def _score_models(model: Any) -> ScoreModels:
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


def layer_scores(model: Any, layer_name: str) -> ScoreModels:
    """Scores of one layer's units: a Dense layer's outputs, or a conv layer's filters
    averaged over space (seeds 001/002: filter visualization)."""
    import difflib

    from ..errors import ActauditError

    keras = keras_module()
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        close = difflib.get_close_matches(layer_name, names, n=3)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ActauditError(
            f"model {model.name!r} has no layer {layer_name!r}; {hint}layers: "
            + ", ".join(map(repr, names[:30]))
        )
    output = model.get_layer(layer_name).output
    rank = len(output.shape)
    if rank == 4:
        output = keras.layers.GlobalAveragePooling2D()(output)
    elif rank != 2:
        raise ActauditError(
            f"layer {layer_name!r} outputs shape {tuple(output.shape)}; a unit target needs a "
            "dense (batch, units) or conv (batch, H, W, filters) output"
        )
    return ScoreModels(keras.Model(model.inputs, output), "unit", None)
