"""The text artifact: words blended into the images, a watermark or a stamp, in OpenCV's
plain (Hershey) font or in a TrueType/OpenType font drawn by PIL. Its control is a
neutral Latin text no wider, in the same font, size, colour, opacity and place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .artifact import (
    Artifact,
    Colour,
    Images,
    blend_ink,
    fraction,
    ink_of,
    place_inside,
    whole_pixels,
)

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont

# The control of a text: a neutral text of the same size, colour and place.
NEUTRAL_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor",
    "sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium",
)


def _neutral(words: str, width_of: Callable[[str], int]) -> str:
    """The longest start of a neutral Latin text no wider than ``words``."""
    source = NEUTRAL_TEXT[1] if words.strip().lower().startswith("lorem") else NEUTRAL_TEXT[0]
    limit, chosen = width_of(words), source[:1]
    for end in range(1, len(source) + 1):
        if source[end - 1] != " " and width_of(source[:end]) <= limit:
            chosen = source[:end]
    return chosen


def _font(font: str | Path, size: int, index: int) -> FreeTypeFont:
    """A TrueType/OpenType font (``index``: the face in a .ttc collection), with an error
    naming the file and the fix."""
    from PIL import ImageFont

    path = Path(font)
    if not path.is_file():
        raise ValueError(
            f"font file {str(font)!r} not found (looked for {path.resolve()}); pass the path "
            "of a TrueType/OpenType file (.ttf, .otf, .ttc) that has the text's glyphs, e.g. "
            "Debian's fonts-noto-cjk-extra for Chinese, Japanese and Korean"
        )
    try:
        return ImageFont.truetype(str(path), size, index=index)
    except OSError as exc:
        raise ValueError(
            f"font file {str(font)!r} (face {index}) cannot be read as a TrueType/OpenType "
            f"font: {exc}; pass a .ttf, .otf or .ttc file"
        ) from None


def _font_mask(words: str, face: FreeTypeFont) -> NDArray[np.uint8]:
    """The text's coverage (0-255) drawn at (0, 0) with PIL's default anchor (the left
    end of the ascender line), as wide and tall as its ink reaches."""
    from PIL import Image, ImageDraw

    _, _, right, bottom = face.getbbox(words)
    canvas = Image.new("L", (max(int(right), 1), max(int(bottom), 1)), 0)
    ImageDraw.Draw(canvas).text((0, 0), words, fill=255, font=face)
    return np.asarray(canvas, np.uint8)


def _missing_glyphs(words: str, face: FreeTypeFont) -> list[str]:
    """Characters the font has no glyph for: PIL draws them as the font's 'missing'
    box, which is what a code point no font has (U+10FFFE) draws as."""
    missing = _font_mask("\U0010fffe", face)
    return [
        ch
        for ch in dict.fromkeys(words)
        if not ch.isspace()
        and (drawn := _font_mask(ch, face)).shape == missing.shape
        and np.array_equal(drawn, missing)
    ]


@dataclass(frozen=True)
class _Writing:
    """Where and how a text is written: its place, colour and opacity."""

    description: str
    x: int
    y: int
    colour: Colour | int
    opacity: float

    def blend(self, images: Images, mask: NDArray[np.uint8], top: int) -> Images:
        """``images`` with ``mask`` (coverage 0-255) inked at (x, top)."""
        height, width = mask.shape
        alpha = self.opacity * mask.astype(np.float32)[None, :, :, None] / 255.0
        region = images[:, top : top + height, self.x : self.x + width]
        ink = ink_of(self.colour, images.shape[-1])
        images[:, top : top + height, self.x : self.x + width] = blend_ink(region, alpha, ink)
        return images


def text(
    words: str,
    x: int,
    y: int,
    *,
    colour: Colour | int = (255, 255, 255),
    scale: float = 0.35,
    opacity: float = 0.7,
    thickness: int = 1,
    font: str | Path | None = None,
    size: int | None = None,
    face: int = 0,
) -> Artifact:
    """``words`` blended at ``opacity``: a watermark or a stamp. Without ``font``, in
    OpenCV's plain font (``scale``, ``thickness``; anti-aliased), its baseline's left end
    at (x, y). With ``font`` (a TrueType/OpenType file; ``face``: the face in a .ttc
    collection) any Unicode text at ``size`` px, drawn as PIL draws it: (x, y) is the left
    end of the ascender line. Its control is a neutral Latin text (lorem ipsum) no wider,
    in the same font, size, colour, opacity and place."""
    x, y = whole_pixels("x", x), whole_pixels("y", y)
    ink_of(colour, 3)
    if not words.strip():
        raise ValueError(f"text {words!r}: give some characters to draw")
    how = _Writing(
        f"the text {words!r} at x={x}, y={y}", x, y, colour, fraction("opacity", opacity)
    )
    if font is not None:
        if size is None:
            raise ValueError(f"text {words!r} with font={str(font)!r} needs size=PX (its size)")
        return _font_text(
            words, how, font, whole_pixels("size", size, 1), whole_pixels("face", face)
        )
    if size is not None:
        raise ValueError(
            f"text {words!r}: size={size!r} needs font=PATH (OpenCV's plain font is sized by "
            "scale=)"
        )
    if not words.isascii():
        raise ValueError(
            f"text {words!r}: OpenCV's plain font draws ASCII only; pass font=PATH "
            "(a TrueType/OpenType file with the text's glyphs) and size=PX"
        )
    return _hershey_text(words, how, scale, whole_pixels("thickness", thickness, 1))


def _hershey_text(words: str, how: _Writing, scale: float, thickness: int) -> Artifact:
    import cv2

    plain = cv2.FONT_HERSHEY_SIMPLEX

    def writer(chars: str) -> Callable[[Images], Images]:
        (width, height), below = cv2.getTextSize(chars, plain, scale, thickness)

        def apply(images: Images) -> Images:
            place_inside(
                how.description, images, how.x, how.y - height, height + below, width,
                "x and y are where the text's baseline starts",
            )  # fmt: skip
            # drawn on the whole image, as the zoo painted its tag: the same pixels
            mask = np.zeros(images.shape[1:3], np.uint8)
            cv2.putText(mask, chars, (how.x, how.y), plain, scale, 255, thickness, cv2.LINE_AA)
            alpha = how.opacity * mask.astype(np.float32)[None, :, :, None] / 255.0
            return blend_ink(images, alpha, ink_of(how.colour, images.shape[-1]))

        return apply

    neutral = _neutral(words, lambda t: cv2.getTextSize(t, plain, scale, thickness)[0][0])
    control = Artifact(f"a neutral text {neutral!r} of the same size", writer(neutral))
    return Artifact(how.description, writer(words), control)


def _font_text(words: str, how: _Writing, font: str | Path, size: int, face: int) -> Artifact:
    loaded = _font(font, size, face)
    missing = _missing_glyphs(words, loaded)
    if missing:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:5])
        raise ValueError(
            f"font file {str(font)!r} (face {face}) has no glyph for {shown}; pass a font "
            "that covers the text's script"
        )

    def writer(chars: str) -> Callable[[Images], Images]:
        mask = _font_mask(chars, loaded)
        height, width = mask.shape

        def apply(images: Images) -> Images:
            place_inside(
                how.description, images, how.x, how.y, height, width,
                "x and y are the left end of the text's ascender line",
            )  # fmt: skip
            return how.blend(images, mask, how.y)

        return apply

    neutral = _neutral(words, lambda t: int(loaded.getbbox(t)[2]))
    control = Artifact(f"a neutral text {neutral!r} of the same size", writer(neutral))
    return Artifact(f"{how.description} in {Path(font).name} at {size} px", writer(words), control)
