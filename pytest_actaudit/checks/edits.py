"""Object-free edits: the shortcut probe's fifth and sixth kinds of evidence
(``docs/shortcuts.md``).

A shortcut is something other than the object that the model reads as the class: a
watermark, a tag in a corner, a band along an edge, a frame, a colour cast, a background,
a texture. The maximization images show it only where it outgrew the object. This module
asks the model directly: a bank of simple edits that hold no object (bands and frames in
a few colours and widths, a soft dot at fixed places and at a random one, a mark in each
corner, colour casts, the background replaced by gradients or stripes) is applied to
trusted references of other classes, and an edit that makes them read as the class **as
confidently as the model reads real images** is evidence.

The confidence is what separates a learned shortcut from a model merely unsure: a frame
tips many clean models' images over to "square" (the evidence for every other class
fades), with a margin far below the one the model gives its real images; an artifact the
model learned from the class's training images wins with the margin of the real object
or more. The **margin** of a reading as class c is log(p_c / max_{k≠c} p_k) (the logit
gap for a softmax head); the yardstick is the median margin of the model's right readings
of the trusted references.

numpy and OpenCV only; the model is reached through ``predict`` (uint8 images → class
probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Images = NDArray[np.uint8]
Predict = Callable[[Images], NDArray[np.float64]]

# name, RGB (a grey image gets the colour's luminance)
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("black", (0, 0, 0)),
    ("white", (255, 255, 255)),
    ("grey", (128, 128, 128)),
    ("red", (255, 0, 0)),
    ("green", (0, 255, 0)),
    ("blue", (0, 0, 255)),
    ("cyan", (0, 255, 255)),
    ("magenta", (255, 0, 255)),
    ("yellow", (255, 255, 0)),
)
# name, per-channel gain, per-channel offset (RGB)
CASTS: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...] = (
    ("warm", (1.0, 0.85, 0.6), (50.0, 15.0, 0.0)),
    ("cool", (0.6, 0.85, 1.0), (0.0, 15.0, 50.0)),
    ("green", (0.8, 1.0, 0.8), (0.0, 40.0, 0.0)),
    ("magenta", (1.0, 0.7, 1.0), (30.0, 0.0, 30.0)),
    ("dark", (0.6, 0.6, 0.6), (0.0, 0.0, 0.0)),
    ("bright", (0.6, 0.6, 0.6), (100.0, 100.0, 100.0)),
    ("washed-out", (0.5, 0.5, 0.5), (64.0, 64.0, 64.0)),
)
GRADIENTS: tuple[tuple[str, str], ...] = (
    ("white", "grey"), ("white", "green"), ("white", "blue"), ("blue", "green"),
    ("cyan", "green"), ("cyan", "yellow"), ("blue", "yellow"), ("grey", "green"),
    ("black", "blue"), ("grey", "yellow"), ("white", "yellow"), ("blue", "grey"),
)  # fmt: skip
SCREEN_PER_CLASS = 4  # references per class the whole bank is screened on (more catch
# no more shortcuts and cost the probe time; docs/shortcuts.md gives the measure)
SCREEN_MAX = 64  # and at most this many in all (a 1000-class model screens 64 images)
KEEP = 3  # the best edits per class, measured again on every other-class reference
NEEDED_KEEP = 2  # and the edits the class's own references most need, measured again
MARGIN_FACTOR = 2.5  # a reading counts when its margin is ≥ this × the model's median
# (higher misses partial shortcuts, lower raises false alarms; docs/shortcuts.md gives
# the measured rates)
NEEDED_OTHERS = 0.5  # an edit the class needs counts only if it also makes at least this
# share of other classes' references read as the class (plain readings, no margin)
BACKGROUND_DISTANCE = 60.0  # a pixel this close (RGB distance) to the border's median
# colour is background


@dataclass(frozen=True)
class Edit:
    """One object-free edit: what it does, in words a reviewer recognises."""

    kind: str  # "band", "frame", "dot", "mark", "colour cast", "background"
    description: str  # "a 2 px magenta band along the bottom edge"
    params: tuple[Any, ...]

    def apply(self, images: Images, seed: int = 0) -> Images:
        return _apply(self, images, seed)

    def mask(self, height: int, width: int) -> NDArray[np.float32]:
        """Where the edit acts, in [0, 1] (a whole-image edit: everywhere)."""
        kind = self.kind
        if kind in ("band", "frame"):
            return _band_mask(height, width, *self.params[:2])
        if kind == "dot" and self.params[0] is not None:
            cy, cx, sigma = self.params[:3]
            return _gauss(height, width, cy, cx, sigma)
        if kind == "mark":
            return _mark_mask(height, width, *self.params[:2])
        return np.ones((height, width), np.float32)


def bank(height: int, width: int) -> list[Edit]:
    """Every edit for images of this size (sizes in pixels follow the image)."""
    short = min(height, width)
    out: list[Edit] = []
    # three widths, ~3 %, ~5 % and ~8 % of the side: a model that learned a 3 px band
    # may ignore a 2 px or a 5 px one (docs/shortcuts.md gives the measure)
    widths = sorted(
        {max(2, round(short / 32)), max(3, round(short / 21)), max(4, round(short / 12))}
    )
    for name, rgb in COLOURS:
        for w in widths:
            for edge in ("top", "bottom", "left", "right"):
                out.append(
                    Edit("band", f"a {w} px {name} band along the {edge} edge", (edge, w, rgb))
                )
            out.append(Edit("frame", f"a {w} px {name} frame", ("frame", w, rgb)))
    sigma = short * 3 / 64
    for name, rgb in COLOURS:
        for fy, py in ((0.15, "top"), (0.5, "middle"), (0.85, "bottom")):
            for fx, px in ((0.15, "left"), (0.5, "centre"), (0.85, "right")):
                cy, cx = fy * height, fx * width
                out.append(
                    Edit(
                        "dot",
                        f"a soft {name} dot at x={cx:.0f}, y={cy:.0f} ({py} {px})",
                        (cy, cx, sigma, rgb),
                    )
                )
        out.append(Edit("dot", f"a soft {name} dot at a random place", (None, None, sigma, rgb)))
    for name, rgb in (COLOURS[0], COLOURS[1]):
        for corner in ("top-left", "top-right", "bottom-left", "bottom-right"):
            out.append(
                Edit("mark", f"a small {name} text-like mark in the {corner} corner", (corner, rgb))
            )
    for name, gain, offset in CASTS:
        out.append(Edit("colour cast", f"a {name} colour cast", (gain, offset)))
    rgb_of = dict(COLOURS)
    for a, b in GRADIENTS:
        out.append(
            Edit(
                "background",
                f"the background replaced by a {a}-to-{b} gradient",
                ("gradient", rgb_of[a], rgb_of[b]),
            )
        )
    for period in sorted({max(4, short // 8), max(4, short // 16)}):
        for orientation in ("diagonal", "vertical", "horizontal"):
            out.append(
                Edit(
                    "background",
                    f"the background replaced by {orientation} stripes, period {period} px",
                    ("stripes", period, orientation),
                )
            )
    return out


# ------------------------------------------------------------------ applying edits
LUMINANCE = (0.299, 0.587, 0.114)  # an RGB colour's grey value: their weights


def colour_value(rgb: tuple[int, int, int], channels: int) -> NDArray[np.float32]:
    """An RGB colour as the image's channel values (a grey image: its luminance)."""
    if channels == 3:
        return np.array(rgb, np.float32)
    grey = LUMINANCE[0] * rgb[0] + LUMINANCE[1] * rgb[1] + LUMINANCE[2] * rgb[2]
    return np.full(channels, grey, np.float32)


def _band_mask(height: int, width: int, edge: str, w: int) -> NDArray[np.float32]:
    m = np.zeros((height, width), np.float32)
    if edge in ("top", "frame"):
        m[:w] = 1
    if edge in ("bottom", "frame"):
        m[-w:] = 1
    if edge in ("left", "frame"):
        m[:, :w] = 1
    if edge in ("right", "frame"):
        m[:, -w:] = 1
    return m


def _gauss(height: int, width: int, cy: float, cx: float, sigma: float) -> NDArray[np.float32]:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.asarray(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)), np.float32)


def _mark_mask(height: int, width: int, corner: str, _rgb: object) -> NDArray[np.float32]:
    """Thin strokes like a few letters, 80% opaque, a sixth of the side wide."""
    short = min(height, width)
    h, w = max(3, short // 16), max(6, short // 6)
    y0 = round(0.12 * height - h / 2) if corner.startswith("top") else round(0.88 * height - h / 2)
    x0 = round(0.12 * width - w / 2) if corner.endswith("left") else round(0.88 * width - w / 2)
    y0, x0 = int(np.clip(y0, 0, height - h)), int(np.clip(x0, 0, width - w))
    m = np.zeros((height, width), np.float32)
    m[y0 : y0 + h, x0 : x0 + w : 2] = 0.8
    return m


def background_mask(images: NDArray[np.float32]) -> NDArray[np.float32]:
    """Pixels near the median colour of each image's border (N × H × W, 0 or 1): the
    background where the object stands on a plain one."""
    n = len(images)
    border = np.concatenate(
        [
            images[:, :2].reshape(n, -1, images.shape[-1]),
            images[:, -2:].reshape(n, -1, images.shape[-1]),
            images[:, :, :2].reshape(n, -1, images.shape[-1]),
            images[:, :, -2:].reshape(n, -1, images.shape[-1]),
        ],
        axis=1,
    )
    median = np.median(border, axis=1)[:, None, None, :]
    distance = np.sqrt(((images - median) ** 2).sum(axis=-1))
    return np.asarray(distance < BACKGROUND_DISTANCE, np.float32)


def grey_images(images: Images) -> NDArray[np.bool_]:
    """Per image: a grey picture in a colour model's input (its R, G and B equal), such
    as a grayscale reference converted for a colour model (``probe.unfit_for_margins``)."""
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        return np.zeros(len(images), bool)
    flat = images.reshape(len(images), -1, 3)
    same = (flat[..., 0] == flat[..., 1]) & (flat[..., 1] == flat[..., 2])
    return np.asarray(same.all(axis=1), bool)


def _apply(edit: Edit, images: Images, seed: int) -> Images:
    x = images.astype(np.float32)
    n, height, width, channels = x.shape
    kind, p = edit.kind, edit.params
    if kind in ("band", "frame", "mark") or (kind == "dot" and p[0] is not None):
        m = edit.mask(height, width)[None, :, :, None]
        rgb = p[-1]
        out = x * (1 - m) + m * colour_value(rgb, channels)
    elif kind == "dot":  # at a random place in each image
        _, _, sigma, rgb = p
        rng = np.random.default_rng(seed)
        out = x.copy()
        colour = colour_value(rgb, channels)
        s = float(sigma)
        for i in range(n):
            cy = rng.uniform(min(3 * s, height / 2), max(height - 3 * s, height / 2))
            cx = rng.uniform(min(3 * s, width / 2), max(width - 3 * s, width / 2))
            m = _gauss(height, width, cy, cx, s)[:, :, None]
            out[i] = x[i] * (1 - m) + m * colour
    elif kind == "colour cast":
        gain, offset = p
        if channels == 3:
            out = x * np.array(gain, np.float32) + np.array(offset, np.float32)
        else:  # a grey image: the cast's brightness change
            out = x * float(np.mean(gain)) + float(np.mean(offset))
    elif kind == "background":
        m = background_mask(x)[..., None]
        if p[0] == "gradient":
            t = np.linspace(0.0, 1.0, height, dtype=np.float32)[None, :, None, None]
            top, bottom = colour_value(p[1], channels), colour_value(p[2], channels)
            scene = top * (1 - t) + bottom * t
        else:
            period, orientation = int(p[1]), p[2]
            yy, xx = np.mgrid[0:height, 0:width]
            coord = {"diagonal": xx + yy, "vertical": xx, "horizontal": yy}[orientation]
            on = ((coord % period) < period // 2)[None, :, :, None]
            mean = x.mean(axis=(1, 2), keepdims=True)
            scene = np.where(on, mean + 25, mean - 25)
        out = x * (1 - m) + m * scene
    else:  # pragma: no cover - bank() makes only the kinds above
        raise ValueError(f"unknown edit kind {kind!r}")
    return np.asarray(np.clip(np.round(out), 0, 255), np.uint8)


# ------------------------------------------------------------------ measuring edits
def margins(
    probabilities: NDArray[np.float64], index: int | NDArray[np.int64]
) -> NDArray[np.float64]:
    """log(p_index / max_{k≠index} p_k) per row: how clearly each image reads as
    ``index`` (one class for all rows, or one per row; negative: it reads as another
    class). The logit gap for a softmax."""
    p = np.maximum(np.asarray(probabilities, np.float64), 1e-38)
    rows = np.arange(len(p))
    own = p[rows, index]
    others = p.copy()
    others[rows, index] = -np.inf
    return np.asarray(np.log(own) - np.log(others.max(axis=1)), np.float64)


def typical_margin(probabilities: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    """The median margin of the model's right readings of its trusted references: how
    clearly the model reads a real object (the yardstick of an edit's reading)."""
    read = np.argmax(probabilities, axis=1)
    right = np.flatnonzero(read == labels)
    if len(right) == 0:
        return float("inf")
    return float(np.median(margins(probabilities[right], labels[right])))


def confident_share(probabilities: NDArray[np.float64], index: int, yardstick: float) -> float:
    """The share of images read as ``index`` with a margin of at least
    ``MARGIN_FACTOR × yardstick``."""
    if len(probabilities) == 0:
        return 0.0
    return float(np.mean(margins(probabilities, index) >= MARGIN_FACTOR * yardstick))


@dataclass
class Screen:
    """The whole bank measured once per model on a few references of every class: for
    each class, the edits that made the most other-class references read as it,
    confidently (best first)."""

    edits: list[Edit]
    yardstick: float  # the model's median margin on its right readings
    best: dict[int, list[int]]  # class → indices into edits
    shares: NDArray[np.float64]  # edits × classes, on the screened references
    images: int  # references screened
    # class → the edits that most raised the share of the class's own references read
    # right, among those that also make other classes' references read as it
    needed: dict[int, list[int]] = field(default_factory=dict)


def screen(
    references: Images,
    labels: NDArray[np.int64],
    predict: Predict,
    read: NDArray[np.float64] | None = None,
) -> Screen:
    """Apply every edit to a few references per class (``SCREEN_PER_CLASS``, at most
    ``SCREEN_MAX`` in all), predict them in one call and keep, per class, the ``KEEP``
    edits that made the most other-class references read as it confidently. ``read``:
    the model's probabilities on ``references`` (computed if not given)."""
    labels = np.asarray(labels, np.int64)
    probs = np.asarray(predict(references) if read is None else read, np.float64)
    classes = probs.shape[1]
    yardstick = typical_margin(probs, labels)
    height, width = references.shape[1:3]
    edits = bank(height, width)
    present = np.unique(labels)
    per_class = max(1, min(SCREEN_PER_CLASS, SCREEN_MAX // max(1, len(present))))
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in present])
    chosen = chosen[:SCREEN_MAX]
    sample, sample_labels = references[chosen], labels[chosen]
    edited = np.concatenate([edit.apply(sample, seed=i) for i, edit in enumerate(edits)])
    predicted = np.asarray(predict(edited), np.float32).reshape(len(edits), len(sample), classes)
    margin = all_margins(predicted)  # edits × sample × classes
    others = (sample_labels[:, None] != np.arange(classes)[None, :]).astype(np.float32)
    count = np.maximum(others.sum(axis=0), 1.0)
    shares = ((margin >= MARGIN_FACTOR * yardstick) * others).sum(axis=1) / count
    mean_margin = (np.maximum(margin, -100.0) * others).sum(axis=1) / count
    # equal shares: the smaller edit first (a band before the frame that holds it), then
    # the one that moved the readings most towards the class (ties at zero are common)
    area = np.array([float(edit.mask(height, width).mean()) for edit in edits])
    # the edit the class needs: it raises the share of the class's own references read
    # right (a model that learned the class with the artifact on most of its images does
    # not read the plain object) and reads other classes' references as the class too
    own = 1.0 - others
    own_count = np.maximum(own.sum(axis=0), 1.0)
    own_read = ((margin > 0) * own).sum(axis=1) / own_count  # edits × classes
    clean_margin = all_margins(np.asarray(probs[chosen], np.float32))
    own_clean = ((clean_margin > 0) * own).sum(axis=0) / own_count  # classes
    others_read = ((margin > 0) * others).sum(axis=1) / count
    need = np.where(others_read >= NEEDED_OTHERS, own_read - own_clean[None, :], 0.0)
    best: dict[int, list[int]] = {}
    needed: dict[int, list[int]] = {}
    for c in present:
        order = np.argsort(-need[:, c], kind="stable")[:NEEDED_KEEP]
        needed[int(c)] = [int(e) for e in order if need[e, c] > 0]
        if not others[:, c].any():
            continue
        order = np.lexsort(
            (-mean_margin[:, c], np.where(shares[:, c] > 0, area, 0.0), -shares[:, c])
        )
        best[int(c)] = [int(e) for e in order[:KEEP]]
    return Screen(edits, yardstick, best, shares.astype(np.float64), len(sample), needed)


def all_margins(probabilities: NDArray[np.floating]) -> NDArray[np.float32]:
    """``margins`` for every class at once (… × classes in, the same shape out)."""
    logp = np.log(np.maximum(probabilities.astype(np.float32), np.float32(1e-38)))
    top2 = np.partition(logp, -2, axis=-1)[..., -2:] if logp.shape[-1] > 1 else logp
    first = top2.max(axis=-1, keepdims=True)
    second = top2.min(axis=-1, keepdims=True)
    return np.asarray(logp - np.where(logp >= first, second, first), np.float32)
