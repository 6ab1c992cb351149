"""What an artifact is: a named edit of uint8 images with its control, and the checks
every kind of artifact makes of the numbers and colours it is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...errors import ArtifactError
from .. import edits

Images = NDArray[np.uint8]
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Artifact:
    """A named edit of uint8 images N × H × W × C: ``apply`` returns edited copies.

    ``control`` is the same edit without its content (a neutral text of the same size for
    a text, a grey patch of the same shape for a patch): what the model's answer to the
    artifact is measured against, so that covering part of an image, or brightening it,
    is not taken for the artifact's own effect. None: measured against the plain images.
    """

    description: str
    apply: Callable[[Images], Images]
    control: Artifact | None = None

    def __call__(self, images: Images) -> Images:
        out = np.asarray(self.apply(np.array(images, dtype=np.uint8, copy=True)))
        if out.shape != images.shape:
            raise ValueError(
                f"artifact {self.description!r} returned images of shape {out.shape} for "
                f"images of shape {images.shape}; it must keep the shape"
            )
        if out.dtype != np.uint8:
            raise ValueError(
                f"artifact {self.description!r} returned {out.dtype} images; return uint8 "
                "pixels 0-255 (np.clip(np.round(x), 0, 255).astype(np.uint8))"
            )
        return out


def as_artifact(artifact: Artifact | Callable[[Images], Images]) -> Artifact:
    """An ``Artifact`` as given, or a plain function of the images named after itself."""
    if isinstance(artifact, Artifact):
        return artifact
    if not callable(artifact):
        raise TypeError(
            f"assert_ignores needs an artifact: one of pytest_actaudit.checks.artifacts' square(), "
            f"text(), patch(), band(), frame(), cast(), or a function of uint8 images "
            f"N × H × W × C; got {artifact!r}"
        )
    name = getattr(artifact, "__name__", type(artifact).__name__)
    return Artifact(f"{name}()" if name != "<lambda>" else "a function of the images", artifact)


def grey_of(colour: Colour | int) -> int:
    """The grey of ``colour``'s luminance: the control of a solid colour."""
    return int(round(float(ink_of(colour, 1)[0])))


def whole_pixels(name: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r}: expected a whole number of pixels ≥ {low}")
    return int(value)


def fraction(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}={value!r}: expected a value from 0 to 1")
    return float(value)


def blend_ink(region: Images, alpha: NDArray[np.floating], ink: NDArray[np.floating]) -> Images:
    """``region`` × (1 − alpha) + alpha × ink, rounded to uint8 pixels."""
    mixed = region.astype(np.float32) * (1 - alpha) + alpha * ink
    out: Images = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out


def place_inside(
    description: str,
    images: Images,
    x: int,
    y: int,
    height: int,
    width: int,
    anchor: str = "x and y are the top-left corner",
) -> None:
    _, h, w = images.shape[:3]
    if x < 0 or y < 0 or x + width > w or y + height > h:
        raise ArtifactError(
            f"artifact {description!r} does not fit: it spans x={x}..{x + width - 1}, "
            f"y={y}..{y + height - 1} but the model's images are {w}×{h} px ({anchor}, "
            "in the model's input pixels)"
        )


def ink_of(colour: Colour | int, channels: int) -> NDArray[np.float32]:
    rgb = (colour,) * 3 if isinstance(colour, int) else tuple(colour)
    if len(rgb) != 3 or not all(0 <= int(v) <= 255 for v in rgb):
        raise ValueError(f"colour {colour!r} is not an RGB triple of 0-255 values")
    return edits.colour_value((int(rgb[0]), int(rgb[1]), int(rgb[2])), channels)


def rgb_of(colour: Colour | int) -> tuple[int, ...]:
    """A checked colour as whole RGB values (for an edit's parameters)."""
    return tuple(int(v) for v in np.round(ink_of(colour, 3)))
