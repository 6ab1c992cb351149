"""Artifacts a user can name, for ``audit.assert_ignores(artifact)``: a square, a text
mark, a pasted logo, a band, a frame, a colour cast, or any function of the images.

The shortcut probe (``assert_no_shortcut``) looks for artifacts nobody named. Some it
cannot find: a small solid patch that a model answers only at its exact place, size and
colour (``docs/shortcuts.md``). A team often knows its suspects: the scanner's stamp in
one corner, the watermark of one photo source, the hospital's tag. Naming one turns the
question into a direct measurement: pasted into trusted images of *other* classes, how
many does the model then read as this class?

numpy and OpenCV only; the model is reached through ``predict`` (uint8 images → class
probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ArtifactError, CheckNotRun
from . import edits

Images = NDArray[np.uint8]
Predict = Callable[[Images], NDArray[np.float64]]
Colour = tuple[int, int, int]

# The check fails when the artifact turns more than this share of other classes'
# trusted references into the class. On the zoo (docs/shortcuts.md, "Naming a suspect")
# every learned shortcut named by its artifact pulled >= 0.52; clean models' classes named
# by artifacts that look like a class of the data set (a checkerboard reads as "cross")
# pulled up to 0.55: above 0.4, 3 of 280 such pairs, above 0.25, 9.
DEFAULT_MAX_PULL = 0.4


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


def _grey(colour: Colour | int) -> int:
    """The grey of ``colour``'s luminance: the control of a solid colour."""
    return int(round(float(_ink(colour, 1)[0])))


def _whole(name: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r}: expected a whole number of pixels ≥ {low}")
    return int(value)


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}={value!r}: expected a value from 0 to 1")
    return float(value)


def _blend(region: NDArray[Any], alpha: NDArray[Any], ink: NDArray[Any]) -> Images:
    """``region`` × (1 − alpha) + alpha × ink, rounded to uint8 pixels."""
    mixed = region.astype(np.float32) * (1 - alpha) + alpha * ink
    out: Images = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out


def _place(
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


def _ink(colour: Colour | int, channels: int) -> NDArray[np.float32]:
    rgb = (colour,) * 3 if isinstance(colour, int) else tuple(colour)
    if len(rgb) != 3 or not all(0 <= int(v) <= 255 for v in rgb):
        raise ValueError(f"colour {colour!r} is not an RGB triple of 0-255 values")
    return edits.colour_value((int(rgb[0]), int(rgb[1]), int(rgb[2])), channels)


def _rgb(colour: Colour | int) -> tuple[int, ...]:
    """A checked colour as whole RGB values (for an edit's parameters)."""
    return tuple(int(v) for v in np.round(_ink(colour, 3)))


def square(x: int, y: int, size: int, colour: Colour | int) -> Artifact:
    """A solid ``size`` px square of ``colour`` with its top-left corner at (x, y); its
    control is the same square in the grey of the colour's luminance."""
    x, y, size = _whole("x", x), _whole("y", y), _whole("size", size, 1)
    _ink(colour, 3)
    description = f"a solid {size} px square of colour {colour} at x={x}, y={y}"

    def painter(ink: Colour | int) -> Callable[[Images], Images]:
        def apply(images: Images) -> Images:
            _place(description, images, x, y, size, size)
            images[:, y : y + size, x : x + size] = np.round(_ink(ink, images.shape[-1]))
            return images

        return apply

    grey = _grey(colour)
    control = Artifact(f"a grey ({grey}) square of the same size and place", painter(grey))
    return Artifact(description, painter(colour), control)


def patch(pixels: Any, x: int, y: int, *, opacity: float = 1.0) -> Artifact:
    """An image (H × W × 3 RGB or H × W × 4 RGBA, uint8, e.g. a logo) pasted with its
    top-left corner at (x, y); its alpha channel, times ``opacity``, blends it in. Its
    control is a patch of the same shape and alpha in the patch's mean grey."""
    art = np.asarray(pixels)
    if art.ndim != 3 or art.shape[-1] not in (3, 4) or art.dtype != np.uint8:
        raise ValueError(
            f"patch needs uint8 pixels H × W × 3 (RGB) or H × W × 4 (RGBA); got "
            f"{art.dtype} {art.shape}"
        )
    x, y, opacity = _whole("x", x), _whole("y", y), _fraction("opacity", opacity)
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
            _place(description, images, x, y, height, width)
            ink = (
                pixels_rgb
                if images.shape[-1] == 3
                else pixels_rgb @ np.array(edits.LUMINANCE)[:, None]
            )
            region = images[:, y : y + height, x : x + width]
            images[:, y : y + height, x : x + width] = _blend(region, alpha, ink)
            return images

        return apply

    control = Artifact(
        f"a grey ({round(mean_grey)}) patch of the same shape and place", painter(flat)
    )
    return Artifact(description, painter(rgb), control)


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


def _font(font: str | Path, size: int, index: int) -> Any:
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


def _font_mask(words: str, face: Any) -> NDArray[np.uint8]:
    """The text's coverage (0-255) drawn at (0, 0) with PIL's default anchor (the left
    end of the ascender line), as wide and tall as its ink reaches."""
    from PIL import Image, ImageDraw

    _, _, right, bottom = face.getbbox(words)
    canvas = Image.new("L", (max(int(right), 1), max(int(bottom), 1)), 0)
    ImageDraw.Draw(canvas).text((0, 0), words, fill=255, font=face)
    return np.asarray(canvas, np.uint8)


def _missing_glyphs(words: str, face: Any) -> list[str]:
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
        ink = _ink(self.colour, images.shape[-1])
        images[:, top : top + height, self.x : self.x + width] = _blend(region, alpha, ink)
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
    x, y = _whole("x", x), _whole("y", y)
    _ink(colour, 3)
    if not words.strip():
        raise ValueError(f"text {words!r}: give some characters to draw")
    how = _Writing(
        f"the text {words!r} at x={x}, y={y}", x, y, colour, _fraction("opacity", opacity)
    )
    if font is not None:
        if size is None:
            raise ValueError(f"text {words!r} with font={str(font)!r} needs size=PX (its size)")
        return _font_text(words, how, font, _whole("size", size, 1), _whole("face", face))
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
    return _hershey_text(words, how, scale, _whole("thickness", thickness, 1))


def _hershey_text(words: str, how: _Writing, scale: float, thickness: int) -> Artifact:
    import cv2

    plain = cv2.FONT_HERSHEY_SIMPLEX

    def writer(chars: str) -> Callable[[Images], Images]:
        (width, height), below = cv2.getTextSize(chars, plain, scale, thickness)

        def apply(images: Images) -> Images:
            _place(
                how.description, images, how.x, how.y - height, height + below, width,
                "x and y are where the text's baseline starts",
            )  # fmt: skip
            # drawn on the whole image, as the zoo painted its tag: the same pixels
            mask = np.zeros(images.shape[1:3], np.uint8)
            cv2.putText(mask, chars, (how.x, how.y), plain, scale, 255, thickness, cv2.LINE_AA)
            alpha = how.opacity * mask.astype(np.float32)[None, :, :, None] / 255.0
            return _blend(images, alpha, _ink(how.colour, images.shape[-1]))

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
            _place(
                how.description, images, how.x, how.y, height, width,
                "x and y are the left end of the text's ascender line",
            )  # fmt: skip
            return how.blend(images, mask, how.y)

        return apply

    neutral = _neutral(words, lambda t: int(loaded.getbbox(t)[2]))
    control = Artifact(f"a neutral text {neutral!r} of the same size", writer(neutral))
    return Artifact(f"{how.description} in {Path(font).name} at {size} px", writer(words), control)


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
    width, rgb = _whole("width", width, 1), _rgb(colour)
    description = f"a {width} px {rgb} band along the {edge} edge"
    grey = (_grey(colour),) * 3
    check = _fits(description, width)
    plain = edits.Edit("band", f"a grey {grey[0]} band, same place", (edge, width, grey))
    control = _edit(plain, check)
    return _edit(edits.Edit("band", description, (edge, width, rgb)), check, control)


def frame(width: int, colour: Colour | int) -> Artifact:
    """A solid frame ``width`` px wide around the image; its control is the same frame
    in the grey of the colour's luminance."""
    width, rgb = _whole("width", width, 1), _rgb(colour)
    description = f"a {width} px {rgb} frame"
    grey = (_grey(colour),) * 3
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


# ------------------------------------------------------------------ measuring one
# The specific-rise evidence counts when the class is among this share of the model's
# classes that the artifact raises most (against its control): by chance, an unrelated
# class lands there this often, so a model needs at least 1 / share classes to use it.
TOP_SHARE = 0.01
# ... and when the class's log-probability rises by more than this many nats more with
# the artifact than with its control (a factor e² ≈ 7.4 on its probability).
DEFAULT_MAX_RISE = 2.0


@dataclass
class ArtifactReading:
    """What one named artifact does to the model's readings of trusted references."""

    description: str
    pull: float  # other-class references read as the class with it, minus without it
    read: float  # other-class references read as the class with it
    before: float  # ... without it
    clearly: float  # ... with it, with a margin ≥ edits.MARGIN_FACTOR × the yardstick
    yardstick: float  # the model's median margin on its right readings of the references
    own_without: float  # this class's references read right without it (nan: none)
    own_with: float  # ... with it
    others: int
    own: int
    examples: list[Images] = field(default_factory=list)
    # mean rise of the class's log-probability on the other-class references: with the
    # artifact, and with its control (both against the plain references)
    rise: float = 0.0
    control_rise: float = 0.0
    control: str = "the plain images"
    rank: int = 1  # of the classes, by rise minus control rise (1: it rises most)
    classes: int = 1
    # every class's rise minus its control rise (what ``rank`` ranks), by class index
    specific_by_class: NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def specific_rise(self) -> float:
        """How much more the class's log-probability rises with the artifact than with
        its control (nats, mean over other-class references)."""
        return self.rise - self.control_rise

    @property
    def top(self) -> int:
        """The ranks that count as specific to the class: the top ``TOP_SHARE`` of the
        classes (0 when the model has too few classes for a rank to mean anything)."""
        return int(np.floor(TOP_SHARE * self.classes + 1e-9))

    def specific(self, max_rise: float) -> bool:
        """The artifact raises this class more than ``max_rise`` nats over its control,
        and more than nearly every other class: a learned, specific association."""
        return self.top >= 1 and self.rank <= self.top and self.specific_rise > max_rise

    def describe_rise(self, label: str = "this class") -> str:
        """The specific effect, in a sentence (``label``: what to call the class)."""
        where = "rises most" if self.rank == 1 else f"ranks {self.rank} by that difference"
        sentence = (
            f"it raises {label}'s log-probability by {self.rise:+.2f} nats on "
            f"{self.others} other-class references, {self.control} by "
            f"{self.control_rise:+.2f}; of {self.classes} classes, {label} {where}"
        )
        if self.top < 1:
            sentence += (
                f" (with fewer than {round(1 / TOP_SHARE)} classes the rank is no evidence; "
                "the pull decides)"
            )
        return sentence

    def describe(self, named: bool = True) -> str:
        """What it does, in a sentence (``named``: starting with what it is)."""
        own = (
            f"this class's own {self.own} references read right: {self.own_without:.0%} "
            f"without it, {self.own_with:.0%} with it"
            if self.own
            else "no reference reads as this class, so what it does to the class's own "
            "images is not measured"
        )
        return (
            f"{self.description if named else 'it'} makes the model read {self.read:.0%} of "
            f"{self.others} other-class references as this class ({self.before:.0%} "
            f"without it; {self.clearly:.0%} with a margin ≥ {edits.MARGIN_FACTOR:g}× the "
            f"model's median on real images); {own}; {self.describe_rise()}"
        )


def _log(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    # the floor keeps a probability that underflowed to 0 finite (as edits.margins does)
    return np.asarray(np.log(np.maximum(probabilities, 1e-38)), np.float64)


def measure(
    index: int,
    artifact: Artifact,
    references: Images,
    labels: NDArray[np.int64],
    predict: Predict,
    *,
    examples: int = 4,
) -> ArtifactReading:
    """Paste ``artifact`` (and its control) into every trusted reference and read them:
    the other classes' (how many turn into class ``index``, how much its log-probability
    rises against the control, and how that rise ranks among all classes) and the
    class's own, when any (how many it needs)."""
    labels = np.asarray(labels, np.int64)
    is_own = labels == index
    n_own, n_others = int(is_own.sum()), int((~is_own).sum())
    if n_others == 0:
        raise CheckNotRun(
            f"assert_ignores needs reference images of other classes than class {index}; "
            f"all {n_own} references are of this class"
        )
    plain = np.asarray(predict(references), np.float64)
    edited = artifact(references)
    read = np.asarray(predict(edited), np.float64)
    controlled, control = plain, "the plain images"
    if artifact.control is not None:
        control_images = artifact.control(references)
        if np.array_equal(control_images, edited):  # a grey suspect's grey control
            control += f" ({artifact.control.description} paints the same pixels)"
        else:
            controlled = np.asarray(predict(control_images), np.float64)
            control = artifact.control.description
    others = ~is_own
    base = _log(plain[others])
    rises = np.mean(_log(read[others]) - base, axis=0)
    control_rises = np.mean(_log(controlled[others]) - base, axis=0)
    specific = rises - control_rises
    yardstick = edits.typical_margin(plain, labels)
    as_class = np.argmax(read, axis=1) == index
    before = np.argmax(plain, axis=1) == index
    clearly = edits.margins(read[others], index) >= edits.MARGIN_FACTOR * yardstick
    # counts, not means, subtracted: 23/30 − 11/30 is 0.4 exactly, not 0.4000000000000001
    turned = int(np.sum(as_class[others])) - int(np.sum(before[others]))
    # the pictures: references it turned into the class first, then the others
    order = np.argsort(~(as_class & ~before)[others], kind="stable")
    return ArtifactReading(
        description=artifact.description,
        pull=turned / n_others,
        read=float(np.mean(as_class[others])),
        before=float(np.mean(before[others])),
        clearly=float(np.mean(clearly)),
        yardstick=yardstick,
        own_without=float(np.mean(before[is_own])) if n_own else float("nan"),
        own_with=float(np.mean(as_class[is_own])) if n_own else float("nan"),
        others=n_others,
        own=n_own,
        examples=list(edited[others][order[:examples]]),
        rise=float(rises[index]),
        control_rise=float(control_rises[index]),
        control=control,
        rank=1 + int(np.sum(specific > specific[index])),
        classes=int(plain.shape[1]),
        specific_by_class=specific,
    )


# ------------------------------------------------------------------ written as text
def patch_file(file: str, x: int, y: int, *, opacity: float = 1.0) -> Artifact:
    """:func:`patch` with the pixels of an image file (PNG with or without alpha, JPEG),
    its path relative to the folder pytest runs in."""
    import cv2

    path = Path(file)
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if pixels is None:
        raise ValueError(
            f"file {file!r} is not a readable image (looked for {path.resolve()}; paths are "
            "relative to the folder pytest runs in)"
        )
    if pixels.dtype != np.uint8:
        pixels = cv2.convertScaleAbs(pixels, alpha=255.0 / max(1, int(pixels.max())))
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    elif pixels.shape[-1] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    else:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    made = patch(pixels, x, y, opacity=opacity)
    return Artifact(
        made.description.replace("patch", f"patch {path.name}", 1), made.apply, made.control
    )


# For the ini (zero-code audits): one suspect per line, ``KIND key=value ...``.
WRITTEN: dict[str, Callable[..., Artifact]] = {
    "square": square,
    "text": text,
    "band": band,
    "frame": frame,
    "cast": cast,
    "patch": patch_file,
}
_WHOLE = {"x", "y", "size", "width", "thickness", "face"}
_TRIPLES = {"gain", "offset"}


def _value(key: str, raw: str) -> Any:
    if key in _WHOLE:
        return int(raw)
    if key in ("scale", "opacity"):
        return float(raw)
    if key == "colour":
        parts = [int(v) for v in raw.split(",")]
        return parts[0] if len(parts) == 1 else tuple(parts)
    if key in _TRIPLES:
        return tuple(float(v) for v in raw.split(","))
    return raw


def parse(line: str) -> Artifact:
    """One suspect as written in the ini, e.g. ``square x=5 y=50 size=6
    colour=255,140,0`` or ``text words="(c) ACME" x=4 y=10 opacity=0.8``; the keys are the
    constructor's arguments. Errors name the line and what is wrong."""
    import inspect
    import shlex

    try:
        kind, *pairs = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"suspect {line!r}: {exc}") from None
    make = WRITTEN.get(kind)
    if make is None:
        raise ValueError(
            f"suspect {line!r}: unknown kind {kind!r}; write one of {sorted(WRITTEN)} "
            "(your own function: use assert_ignores in a test)"
        )
    parameters = inspect.signature(make).parameters
    names = list(parameters)
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in parameters:
            raise ValueError(
                f"suspect {line!r}: {pair!r} is not one of {kind}'s key=value settings "
                f"({', '.join(names)})"
            )
        try:
            given[key] = _value(key, raw)
        except ValueError:
            raise ValueError(f"suspect {line!r}: {key}={raw!r} is not a valid value") from None
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in given
    ]
    if missing:
        raise ValueError(f"suspect {line!r}: {kind} needs {', '.join(missing)}")
    try:
        return make(**given)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"suspect {line!r}: {exc}") from None


def parse_lines(text: str) -> tuple[Artifact, ...]:
    """The ini value's suspects, one per line (blank lines and ``#`` comments skipped),
    each made by :func:`parse` (once, when pytest starts: a logo file is read once)."""
    return tuple(
        parse(stripped)
        for raw in str(text).splitlines()
        if (stripped := raw.strip()) and not stripped.startswith("#")
    )
