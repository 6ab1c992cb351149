"""What one input image is to a model: its size and channels, the value range of its
pixels (given, or read from a leading Rescaling layer) or its preprocessing — read from
the model, refused when it is no image classifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ActauditError

RANGES: dict[str, tuple[float, float]] = {
    "0-255": (0.0, 255.0),
    "0-1": (0.0, 1.0),
    "-1-1": (-1.0, 1.0),
}


def parse_range(value: str) -> tuple[float, float]:
    """``0-255``, ``0-1``, ``-1-1`` or ``LOW,HIGH``."""
    text = str(value).strip()
    if text in RANGES:
        return RANGES[text]
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"input range must be one of {', '.join(RANGES)} or LOW,HIGH, got {value!r}"
        ) from None
    if not low < high:
        raise ValueError(f"input range needs LOW < HIGH, got {value!r}")
    return (low, high)


@dataclass(frozen=True)
class InputSpec:
    """What one input image looks like to the model."""

    height: int
    width: int
    channels: int
    low: float
    high: float
    range_source: str  # why we believe the range: "config", "Rescaling layer", "default"
    size_source: str = "model"  # "model" (fixed in its input), or the setting that gave it
    preprocess: Any = None  # a preprocess.Preprocess applied to 0-255 RGB, or None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def parse_size(value: str | Sequence[int]) -> tuple[int, int]:
    """``"H,W"``, ``"N"`` (square) or a pair of ints → (height, width), both ≥ 8."""
    parts: list[Any]
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").replace("×", ",").split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        dims = [int(str(p).strip()) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 8:
        raise ValueError(
            f"input size must be HEIGHT,WIDTH in pixels (each at least 8), like 224,224; "
            f"got {value!r}"
        )
    return dims[0], dims[1]


def input_spec(
    model: Any,
    input_range: str | None = None,
    input_size: str | Sequence[int] | None = None,
    size_source: str = "input_size",
    preprocess: str | None = None,
) -> InputSpec:
    """Read shape and value range of an image classifier's input; refuse anything else.
    ``input_size`` (H, W) is the size to optimize at when the model's spatial dims are not
    fixed; for a fixed model it must equal them."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ActauditError(
            f"model {getattr(model, 'name', model)!r} has no defined input; build it with an "
            "Input layer (or call it once) before auditing"
        )
    if len(inputs) != 1:
        raise ActauditError(
            f"model {model.name!r} has {len(inputs)} inputs; "
            "class maximization needs one image input"
        )
    shape = tuple(inputs[0].shape)
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    if len(shape) != 4 or shape[-1] not in (1, 3, 4) or "int" in dtype:
        raise ActauditError(
            f"model {model.name!r} is not an image classifier: its input is {shape} {dtype}, "
            "expected (batch, height, width, channels) floats with 1, 3 or 4 channels"
        )
    height, width, size_from = _size(model.name, shape, input_size, size_source)
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        out = [tuple(o.shape) for o in outputs]
        raise ActauditError(
            f"model {model.name!r} is not an image classifier: its output is {out}, "
            "expected one (batch, classes) tensor"
        )
    pre = None
    if preprocess and input_range:
        raise ActauditError(
            f"both an input range ({input_range!r}) and a preprocessing ({preprocess!r}) are "
            "set; give one: the preprocessing says what the model takes"
        )
    if preprocess:
        from .preprocess import parse_preprocess

        try:
            pre = parse_preprocess(preprocess)
        except ValueError as exc:
            raise ActauditError(str(exc)) from None
        low, high, source = 0.0, 255.0, f"RGB 0-255, then preprocessing {preprocess!r}"
    elif input_range:
        low, high = parse_range(input_range)
        source = "config"
    else:
        low, high, source = _infer_range(model)
    return InputSpec(
        height, width, int(shape[3]), low, high, source, size_source=size_from, preprocess=pre
    )


def _size(
    name: str,
    shape: tuple[Any, ...],
    given: str | Sequence[int] | None,
    setting: str,
) -> tuple[int, int, str]:
    """(height, width, where they came from) for a model input ``shape``."""
    fixed = shape[1] is not None and shape[2] is not None
    if given is None or given == "":
        if not fixed:
            raise ActauditError(
                f"model {name!r} has no fixed input size (its input is {shape}), so the size "
                "to optimize at is unknown: give it with --actaudit-input-size HEIGHT,WIDTH "
                "(ini actaudit_input_size, or input_size=(HEIGHT, WIDTH) in "
                "pytest_actaudit.maximize), e.g. the size the model was trained at"
            )
        return int(shape[1]), int(shape[2]), "model"
    try:
        height, width = parse_size(given)
    except ValueError as exc:
        raise ActauditError(str(exc)) from None
    for dim, want, what in ((shape[1], height, "height"), (shape[2], width, "width")):
        if dim is not None and int(dim) != want:
            raise ActauditError(
                f"{setting} {height},{width} does not match model {name!r}, whose input "
                f"{what} is fixed at {dim} (input {shape}); drop the setting or give "
                f"{shape[1] if shape[1] is not None else height},"
                f"{shape[2] if shape[2] is not None else width}"
            )
    return height, width, setting


def _infer_range(model: Any) -> tuple[float, float, str]:
    """A leading Rescaling or Normalization layer means the model takes raw 0–255 pixels."""
    for layer in model.layers[:4]:
        kind = type(layer).__name__
        if kind in {"Rescaling", "Normalization"}:
            return 0.0, 255.0, f"{kind} layer {layer.name!r}"
        if kind not in {"InputLayer"}:
            break
    return 0.0, 1.0, "default (no Rescaling layer; set actaudit_input_range if wrong)"
