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
    """A named edit of uint8 images N × H × W × C: ``apply`` returns edited copies."""

    description: str
    apply: Callable[[Images], Images]

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
            f"assert_ignores needs an artifact: one of pytest_actaudit.artifacts' square(), "
            f"text(), patch(), band(), frame(), cast(), or a function of uint8 images "
            f"N × H × W × C; got {artifact!r}"
        )
    name = getattr(artifact, "__name__", type(artifact).__name__)
    return Artifact(f"{name}()" if name != "<lambda>" else "a function of the images", artifact)


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
        raise ValueError(
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
    """A solid ``size`` px square of ``colour`` with its top-left corner at (x, y)."""
    x, y, size = _whole("x", x), _whole("y", y), _whole("size", size, 1)
    _ink(colour, 3)
    description = f"a solid {size} px square of colour {colour} at x={x}, y={y}"

    def apply(images: Images) -> Images:
        _place(description, images, x, y, size, size)
        images[:, y : y + size, x : x + size] = np.round(_ink(colour, images.shape[-1]))
        return images

    return Artifact(description, apply)


def patch(pixels: Any, x: int, y: int, *, opacity: float = 1.0) -> Artifact:
    """An image (H × W × 3 RGB or H × W × 4 RGBA, uint8, e.g. a logo) pasted with its
    top-left corner at (x, y); its alpha channel, times ``opacity``, blends it in."""
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

    def apply(images: Images) -> Images:
        _place(description, images, x, y, height, width)
        ink = rgb if images.shape[-1] == 3 else rgb @ np.array(edits.LUMINANCE)[:, None]
        region = images[:, y : y + height, x : x + width]
        images[:, y : y + height, x : x + width] = _blend(region, alpha, ink)
        return images

    return Artifact(description, apply)


def text(
    words: str,
    x: int,
    y: int,
    *,
    colour: Colour | int = (255, 255, 255),
    scale: float = 0.35,
    opacity: float = 0.7,
    thickness: int = 1,
) -> Artifact:
    """``words`` in OpenCV's plain font (anti-aliased), its baseline's left end at (x, y),
    blended at ``opacity``: a watermark or a stamp."""
    import cv2

    x, y, thickness = _whole("x", x), _whole("y", y), _whole("thickness", thickness, 1)
    opacity = _fraction("opacity", opacity)
    _ink(colour, 3)
    description = f"the text {words!r} at x={x}, y={y}"
    (width, height), below = cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)

    def apply(images: Images) -> Images:
        _place(
            description, images, x, y - height, height + below, width,
            "x and y are where the text's baseline starts",
        )  # fmt: skip
        mask = np.zeros(images.shape[1:3], np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(mask, words, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
        alpha = opacity * mask.astype(np.float32)[None, :, :, None] / 255.0
        return _blend(images, alpha, _ink(colour, images.shape[-1]))

    return Artifact(description, apply)


def _edit(edit: edits.Edit, check: Callable[[Images], Images]) -> Artifact:
    return Artifact(edit.description, lambda images: edit.apply(check(images)))


def _fits(description: str, width: int) -> Callable[[Images], Images]:
    def check(images: Images) -> Images:
        if 2 * width > min(images.shape[1:3]):
            raise ValueError(
                f"artifact {description!r} is wider than half the model's "
                f"{images.shape[2]}×{images.shape[1]} px images"
            )
        return images

    return check


def band(edge: str, width: int, colour: Colour | int) -> Artifact:
    """A solid band ``width`` px wide along the ``edge`` (top, bottom, left, right)."""
    if edge not in ("top", "bottom", "left", "right"):
        raise ValueError(f"band edge {edge!r}: expected 'top', 'bottom', 'left' or 'right'")
    width, rgb = _whole("width", width, 1), _rgb(colour)
    description = f"a {width} px {rgb} band along the {edge} edge"
    return _edit(edits.Edit("band", description, (edge, width, rgb)), _fits(description, width))


def frame(width: int, colour: Colour | int) -> Artifact:
    """A solid frame ``width`` px wide around the image."""
    width, rgb = _whole("width", width, 1), _rgb(colour)
    description = f"a {width} px {rgb} frame"
    return _edit(edits.Edit("frame", description, ("frame", width, rgb)), _fits(description, width))


def cast(gain: tuple[float, float, float], offset: tuple[float, float, float]) -> Artifact:
    """A colour cast: each channel (R, G, B) times ``gain`` plus ``offset`` (a grey
    image: their means)."""
    for name, values in (("gain", gain), ("offset", offset)):
        if len(tuple(values)) != 3:
            raise ValueError(f"cast {name}={values!r}: expected 3 values, for R, G and B")
    gains, offsets = np.array(gain, np.float64), np.array(offset, np.float64)

    def apply(images: Images) -> Images:
        if images.shape[-1] != 3:
            gains_, offsets_ = gains.mean(), offsets.mean()
        else:
            gains_, offsets_ = gains, offsets
        lit = images.astype(np.float32) * gains_ + offsets_
        out: Images = np.clip(np.round(lit), 0, 255).astype(np.uint8)
        return out

    return Artifact(f"a colour cast (gain {tuple(gain)}, offset {tuple(offset)})", apply)


# ------------------------------------------------------------------ measuring one
@dataclass
class ArtifactReading:
    """What one named artifact does to the model's readings of trusted references."""

    description: str
    pull: float  # other-class references read as the class with it, minus without it
    read: float  # other-class references read as the class with it
    before: float  # ... without it
    clearly: float  # ... with it, with a margin ≥ edits.MARGIN_FACTOR × the yardstick
    yardstick: float  # the model's median margin on its right readings of the references
    own_without: float  # this class's references read right without it
    own_with: float  # ... with it
    others: int
    own: int
    examples: list[Images] = field(default_factory=list)

    def describe(self, named: bool = True) -> str:
        """What it does, in a sentence (``named``: starting with what it is)."""
        return (
            f"{self.description if named else 'it'} makes the model read {self.read:.0%} of "
            f"{self.others} other-class references as this class ({self.before:.0%} "
            f"without it; {self.clearly:.0%} with a margin ≥ {edits.MARGIN_FACTOR:g}× the "
            f"model's median on real images); this class's own {self.own} references "
            f"read right: {self.own_without:.0%} without it, {self.own_with:.0%} with it"
        )


def measure(
    index: int,
    artifact: Artifact,
    references: Images,
    labels: NDArray[np.int64],
    predict: Predict,
    *,
    examples: int = 4,
) -> ArtifactReading:
    """Paste ``artifact`` into every trusted reference and read them: the other classes'
    (how many turn into class ``index``) and the class's own (how many it needs)."""
    labels = np.asarray(labels, np.int64)
    is_own = labels == index
    n_own, n_others = int(is_own.sum()), int((~is_own).sum())
    if n_own == 0 or n_others == 0:
        missing = "this class" if n_own == 0 else "any other class"
        raise ValueError(
            f"assert_ignores needs reference images of class {index} and of other classes; "
            f"none of {missing} were given"
        )
    plain = np.asarray(predict(references), np.float64)
    edited = artifact(references)
    read = np.asarray(predict(edited), np.float64)
    yardstick = edits.typical_margin(plain, labels)
    as_class = np.argmax(read, axis=1) == index
    before = np.argmax(plain, axis=1) == index
    clearly = edits.margins(read[~is_own], index) >= edits.MARGIN_FACTOR * yardstick
    # counts, not means, subtracted: 23/30 − 11/30 is 0.4 exactly, not 0.4000000000000001
    turned = int(np.sum(as_class[~is_own])) - int(np.sum(before[~is_own]))
    # the pictures: references it turned into the class first, then the others
    order = np.argsort(~(as_class & ~before)[~is_own], kind="stable")
    return ArtifactReading(
        description=artifact.description,
        pull=turned / n_others,
        read=float(np.mean(as_class[~is_own])),
        before=float(np.mean(before[~is_own])),
        clearly=float(np.mean(clearly)),
        yardstick=yardstick,
        own_without=float(np.mean(before[is_own])),
        own_with=float(np.mean(as_class[is_own])),
        others=n_others,
        own=n_own,
        examples=list(edited[~is_own][order[:examples]]),
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
    return Artifact(made.description.replace("patch", f"patch {path.name}", 1), made.apply)


# For the ini (zero-code audits): one suspect per line, ``KIND key=value ...``.
WRITTEN: dict[str, Callable[..., Artifact]] = {
    "square": square,
    "text": text,
    "band": band,
    "frame": frame,
    "cast": cast,
    "patch": patch_file,
}
_WHOLE = {"x", "y", "size", "width", "thickness"}
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
