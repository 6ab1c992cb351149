"""The artifacts drawn as shapes and colours: a square, a pasted patch (a logo), a band
along an edge, a frame, a colour cast. Each has a control without its content (the same
shape in the grey of its luminance, the same change of brightness without the colour)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ArtifactError
from .. import edits
from .artifact import (
    Artifact,
    Colour,
    Images,
    blend_ink,
    fraction,
    grey_of,
    ink_of,
    place_inside,
    rgb_of,
    whole_pixels,
)


def square(x: int, y: int, size: int, colour: Colour | int) -> Artifact:
    """A solid ``size`` px square of ``colour`` with its top-left corner at (x, y); its
    control is the same square in the grey of the colour's luminance."""
    x, y, size = whole_pixels("x", x), whole_pixels("y", y), whole_pixels("size", size, 1)
    ink_of(colour, 3)
    description = f"a solid {size} px square of colour {colour} at x={x}, y={y}"

    def painter(ink: Colour | int) -> Callable[[Images], Images]:
        def apply(images: Images) -> Images:
            place_inside(description, images, x, y, size, size)
            images[:, y : y + size, x : x + size] = np.round(ink_of(ink, images.shape[-1]))
            return images

        return apply

    grey = grey_of(colour)
    control = Artifact(f"a grey ({grey}) square of the same size and place", painter(grey))
    return Artifact(description, painter(colour), control)


def patch(pixels: ArrayLike, x: int, y: int, *, opacity: float = 1.0) -> Artifact:
    """An image (H × W × 3 RGB or H × W × 4 RGBA, uint8, e.g. a logo) pasted with its
    top-left corner at (x, y); its alpha channel, times ``opacity``, blends it in. Its
    control is a patch of the same shape and alpha in the patch's mean grey."""
    art = np.asarray(pixels)
    if art.ndim != 3 or art.shape[-1] not in (3, 4) or art.dtype != np.uint8:
        raise ValueError(
            f"patch needs uint8 pixels H × W × 3 (RGB) or H × W × 4 (RGBA); got "
            f"{art.dtype} {art.shape}"
        )
    x, y, opacity = whole_pixels("x", x), whole_pixels("y", y), fraction("opacity", opacity)
    height, width = art.shape[:2]
    description = f"a {width}×{height} px patch at x={x}, y={y}"
    alpha = (art[..., 3:] / 255.0 if art.shape[-1] == 4 else np.ones((height, width, 1))) * opacity
    rgb = art[..., :3].astype(np.float32)
    weight = alpha[..., 0]
    luminance = rgb @ np.array(edits.LUMINANCE, np.float32)
    mean_grey = float(np.sum(luminance * weight) / max(float(weight.sum()), 1e-9))
    flat = np.full_like(rgb, round(mean_grey))

    def painter(pixels_rgb: NDArray[np.float32]) -> Callable[[Images], Images]:
        def apply(images: Images) -> Images:
            place_inside(description, images, x, y, height, width)
            ink = (
                pixels_rgb
                if images.shape[-1] == 3
                else pixels_rgb @ np.array(edits.LUMINANCE)[:, None]
            )
            region = images[:, y : y + height, x : x + width]
            images[:, y : y + height, x : x + width] = blend_ink(region, alpha, ink)
            return images

        return apply

    control = Artifact(
        f"a grey ({round(mean_grey)}) patch of the same shape and place", painter(flat)
    )
    return Artifact(description, painter(rgb), control)


def _edit(
    edit: edits.Edit, check: Callable[[Images], Images], control: Artifact | None = None
) -> Artifact:
    return Artifact(edit.description, lambda images: edit.apply(check(images)), control)


def _fits(description: str, width: int) -> Callable[[Images], Images]:
    def check(images: Images) -> Images:
        if 2 * width > min(images.shape[1:3]):
            raise ArtifactError(
                f"artifact {description!r} is wider than half the model's "
                f"{images.shape[2]}×{images.shape[1]} px images"
            )
        return images

    return check


def band(edge: str, width: int, colour: Colour | int) -> Artifact:
    """A solid band ``width`` px wide along the ``edge`` (top, bottom, left, right); its
    control is the same band in the grey of the colour's luminance."""
    if edge not in ("top", "bottom", "left", "right"):
        raise ValueError(f"band edge {edge!r}: expected 'top', 'bottom', 'left' or 'right'")
    width, rgb = whole_pixels("width", width, 1), rgb_of(colour)
    description = f"a {width} px {rgb} band along the {edge} edge"
    grey = (grey_of(colour),) * 3
    check = _fits(description, width)
    plain = edits.Edit("band", f"a grey {grey[0]} band, same place", (edge, width, grey))
    control = _edit(plain, check)
    return _edit(edits.Edit("band", description, (edge, width, rgb)), check, control)


def frame(width: int, colour: Colour | int) -> Artifact:
    """A solid frame ``width`` px wide around the image; its control is the same frame
    in the grey of the colour's luminance."""
    width, rgb = whole_pixels("width", width, 1), rgb_of(colour)
    description = f"a {width} px {rgb} frame"
    grey = (grey_of(colour),) * 3
    check = _fits(description, width)
    control = _edit(edits.Edit("frame", f"a grey {grey[0]} frame", ("frame", width, grey)), check)
    return _edit(edits.Edit("frame", description, ("frame", width, rgb)), check, control)


def _lit(gains: NDArray[np.float64], offsets: NDArray[np.float64]) -> Callable[[Images], Images]:
    def apply(images: Images) -> Images:
        if images.shape[-1] != 3:
            gains_, offsets_ = gains.mean(), offsets.mean()
        else:
            gains_, offsets_ = gains, offsets
        lit = images.astype(np.float32) * gains_ + offsets_
        out: Images = np.clip(np.round(lit), 0, 255).astype(np.uint8)
        return out

    return apply


def cast(gain: tuple[float, float, float], offset: tuple[float, float, float]) -> Artifact:
    """A colour cast: each channel (R, G, B) times ``gain`` plus ``offset`` (a grey
    image: their means). Its control changes the brightness alone: every channel by
    the means of the gains and offsets."""
    for name, values in (("gain", gain), ("offset", offset)):
        if len(tuple(values)) != 3:
            raise ValueError(f"cast {name}={values!r}: expected 3 values, for R, G and B")
    gains, offsets = np.array(gain, np.float64), np.array(offset, np.float64)
    level = (np.full(3, gains.mean()), np.full(3, offsets.mean()))
    control = Artifact("the same change of brightness without the colour", _lit(*level))
    return Artifact(
        f"a colour cast (gain {tuple(gain)}, offset {tuple(offset)})", _lit(gains, offsets), control
    )
