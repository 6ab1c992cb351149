"""The model's preprocessing, when it is not a layer of the model: what turns RGB pixels in
0–255 into what the model was trained on. Parsing is pure Python; the TensorFlow function
is built on first use, so the plugin's import path stays free of TensorFlow.

Modes (the names and arithmetic of ``keras.applications`` ``preprocess_input``):

* ``caffe``: RGB → BGR, minus the ImageNet channel means (VGG16, ResNet50);
* ``tf``: ``x / 127.5 − 1``, to [−1, 1] (MobileNet, Inception, Xception);
* ``torch``: ``x / 255``, minus the ImageNet means, divided by their standard deviations;
* ``mean=R,G,B,std=R,G,B[,bgr]``: per channel, in 0–255 units, ``(x − mean) / std``
  (``std`` optional; ``bgr`` swaps the channels first; one value each for grayscale);
* ``module:function``: a TensorFlow-differentiable function of a float32 batch of RGB
  pixels in 0–255 (N × H × W × C), returning what the model takes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ActauditError

IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications caffe mode
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch")
USAGE = (
    "caffe, tf, torch, mean=R,G,B[,std=R,G,B][,bgr] (0-255 units), or module:function "
    "(a TensorFlow function of RGB pixels in 0-255)"
)


@dataclass(frozen=True)
class Preprocess:
    """A parsed preprocessing: ``(x[..., order] − mean) / std`` per channel, or a user
    function. ``text`` is what the user wrote (for the report and the cache key)."""

    text: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    bgr: bool = False
    function: str = ""  # "module:function"

    def tf_function(self, channels: int) -> Callable[[Any], Any]:
        """The preprocessing as a TensorFlow function of a float32 0–255 RGB batch."""
        import tensorflow as tf

        if self.function:
            return _import(self.function)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values and len(values) not in (1, channels):
                raise ActauditError(
                    f"preprocessing {self.text!r}: {len(values)} {name} values for a model "
                    f"with {channels} input channels"
                )
        if self.bgr and channels != 3:
            raise ActauditError(
                f"preprocessing {self.text!r} swaps RGB to BGR, but the model has {channels} "
                "input channel(s); use mean=...,std=... without bgr"
            )
        mean = tf.constant(self.mean or (0.0,), tf.float32)
        std = tf.constant(self.std or (1.0,), tf.float32)
        bgr = self.bgr

        def apply(x: Any) -> Any:
            if bgr:
                x = x[..., ::-1]
            return (x - mean) / std

        return apply


def parse_preprocess(value: str, name: str = "--actaudit-preprocess") -> Preprocess:
    """Parse a preprocessing setting; the error names the bad value and the forms."""
    text = str(value).strip()
    if text == "caffe":
        return Preprocess(text, mean=IMAGENET_MEAN_BGR, bgr=True)
    if text == "tf":
        return Preprocess(text, mean=(127.5,), std=(127.5,))
    if text == "torch":
        return Preprocess(
            text,
            mean=tuple(255.0 * m for m in TORCH_MEAN),
            std=tuple(255.0 * s for s in TORCH_STD),
        )
    if ":" in text and "=" not in text:
        module, _, function = text.partition(":")
        if module and function.isidentifier():
            return Preprocess(text, function=text)
    if text.startswith("mean="):
        return _parse_mean_std(text, name)
    raise ValueError(f"{name}: unknown preprocessing {value!r}; expected {USAGE}")


def _parse_mean_std(text: str, name: str) -> Preprocess:
    values: dict[str, list[float]] = {"mean": [], "std": []}
    bgr = False
    current = ""
    for part in (p.strip() for p in text.split(",")):
        if part == "bgr":
            bgr = True
            continue
        if "=" in part:
            current, _, part = part.partition("=")
            if current not in values:
                raise ValueError(f"{name}: unknown key {current!r} in {text!r}; expected {USAGE}")
        try:
            values[current].append(float(part))
        except (KeyError, ValueError):
            raise ValueError(f"{name}: {part!r} in {text!r} is not a number; {USAGE}") from None
    if any(s == 0 for s in values["std"]):
        raise ValueError(f"{name}: std must not be 0 in {text!r}")
    return Preprocess(text, mean=tuple(values["mean"]), std=tuple(values["std"]), bgr=bgr)


def _import(spec: str) -> Callable[[Any], Any]:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ActauditError(
            f"preprocessing {spec!r}: cannot import module {module_name!r} ({exc}); it must be "
            "importable from where pytest runs (rootdir or an installed package)"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ActauditError(
            f"preprocessing {spec!r}: module {module_name!r} has no function {attribute!r}"
        )
    return function  # type: ignore[no-any-return]
