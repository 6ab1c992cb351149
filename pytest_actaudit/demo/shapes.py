"""A seeded synthetic data set of filled shapes on noisy backgrounds (numpy and cv2 only).

Every image is RGB, uint8, ``size`` x ``size`` x 3: a randomly tinted, low-contrast
background with a smooth texture and pixel noise, and one filled shape of a random colour
(circle, square, triangle or cross) at a random position, scale and rotation, fully inside
the image. Everything is drawn from ``np.random.default_rng(seed)``: the same arguments give
the same arrays, bit for bit.

The *artifact* is a small solid magenta square near the top-left corner (8 x 8 px, inset by
2 px, at 64 px). No background or shape colour is magenta-ish, so the artifact's colour is
unique to it. ``make_shapes(..., artifact_class=k)`` paints it on every image of class ``k``
and on no other image: the training data of the demo's shortcut model.
"""

from __future__ import annotations

import os
import pathlib

import cv2
import numpy as np
import numpy.typing as npt

from . import ARTIFACT_COLOR, IMAGE_SIZE, LABELS

TRAIN_SEED = 1
"""Seed of the demo models' training images."""
TEST_SEED = 2
"""Seed of the test images measured in ``training.json``."""
REFERENCE_SEED = 3
"""Seed of the artifact-free reference images written by :func:`write_references`."""

_SUBPIXEL_SHIFT = 4  # cv2 drawing with 1/16 px precision
_SUBPIXEL = 1 << _SUBPIXEL_SHIFT

Images = npt.NDArray[np.uint8]
Labels = npt.NDArray[np.int64]


def artifact_box(size: int = IMAGE_SIZE) -> tuple[int, int]:
    """``(inset, side)`` of the artifact square for images of side ``size`` (2, 8 at 64 px)."""
    side = max(2, round(size / 8))
    inset = max(1, round(size / 32))
    return inset, side


def paste_artifact(images: npt.ArrayLike) -> Images:
    """A copy of ``images`` (N x H x W x 3 or H x W x 3, uint8) with the artifact painted in."""
    out = np.array(images, dtype=np.uint8, copy=True)
    if out.ndim not in (3, 4) or out.shape[-1] != 3:
        raise ValueError(f"expected RGB images (N x H x W x 3 or H x W x 3), got {out.shape}")
    height, width = out.shape[-3], out.shape[-2]
    inset, side = artifact_box(min(height, width))
    out[..., inset : inset + side, inset : inset + side, :] = np.asarray(ARTIFACT_COLOR, np.uint8)
    return out


def has_artifact(images: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per image: is the whole artifact square exactly the artifact colour?"""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    inset, side = artifact_box(min(arr.shape[1], arr.shape[2]))
    patch = arr[:, inset : inset + side, inset : inset + side, :]
    flags: npt.NDArray[np.bool_] = np.all(
        patch == np.asarray(ARTIFACT_COLOR, arr.dtype), axis=(1, 2, 3)
    )
    return flags


def _magentaish(color: npt.NDArray[np.float64]) -> bool:
    """Red and blue both well above green: the hue family the artifact is reserved."""
    return bool(min(color[0], color[2]) - color[1] > 60.0)


def _random_color(rng: np.random.Generator, low: float, high: float) -> npt.NDArray[np.float64]:
    while True:
        color = rng.uniform(low, high, size=3)
        if not _magentaish(color):
            return color


def _background(rng: np.random.Generator, size: int) -> tuple[npt.NDArray[np.float32], float]:
    """Tinted, textured background (float32, not yet clipped) and its pixel-noise sigma."""
    tint = _random_color(rng, 30.0, 225.0)
    grid = int(rng.integers(3, 9))
    texture = rng.normal(0.0, 1.0, size=(grid, grid, 3)).astype(np.float32)
    texture = np.asarray(
        cv2.resize(texture, (size, size), interpolation=cv2.INTER_CUBIC), dtype=np.float32
    )
    amplitude = rng.uniform(4.0, 22.0)
    # a shared luminance part and a weaker per-channel part, so the texture is mostly grey
    lum = texture.mean(axis=2, keepdims=True)
    background = tint.astype(np.float32) + amplitude * (0.7 * lum + 0.3 * texture)
    sigma = float(rng.uniform(2.0, 12.0))
    return background.astype(np.float32), sigma


def _shape_points(label: str, radius: float, angle: float) -> npt.NDArray[np.float64]:
    """Vertices (K x 2, x/y offsets from the centre) of a polygonal shape."""
    if label == "square":
        a = angle + np.pi / 4 + np.arange(4) * (np.pi / 2)
        local = np.stack([np.cos(a), np.sin(a)], axis=1) * radius
        return local
    if label == "triangle":
        a = angle + np.arange(3) * (2 * np.pi / 3)
        # an equilateral triangle has less area than a square of the same circumradius
        return np.stack([np.cos(a), np.sin(a)], axis=1) * (radius * 1.15)
    if label == "cross":
        w = 0.32 * radius
        r = radius
        local = np.array(
            [
                (w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r),
                (-w, -r), (-w, -w), (-r, -w), (-r, w), (-w, w), (-w, r),
            ],
            dtype=np.float64,
        )  # fmt: skip
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.array([[c, -s], [s, c]])
        rotated: npt.NDArray[np.float64] = local @ rotation.T
        return rotated
    raise ValueError(f"not a polygonal shape: {label!r}")


def _draw_one(rng: np.random.Generator, label: str, size: int) -> Images:
    return _draw_one_with_mask(rng, label, size)[0]


def _draw_one_with_mask(
    rng: np.random.Generator, label: str, size: int
) -> tuple[Images, npt.NDArray[np.float32]]:
    """One image and its shape's coverage (H x W, 0..1, anti-aliased); the mask draws
    nothing from ``rng``, so images are the same as :func:`_draw_one`'s."""
    background, sigma = _background(rng, size)
    tint = background.mean(axis=(0, 1)).astype(np.float64)
    while True:  # a shape colour that stands out from the background and is not magenta-ish
        color = _random_color(rng, 0.0, 255.0)
        if float(np.linalg.norm(color - tint)) >= 100.0:
            break
    radius = float(rng.uniform(0.15, 0.33) * size)
    angle = float(rng.uniform(0.0, 2 * np.pi))
    if label == "circle":
        offsets = np.array([(-radius, -radius), (radius, radius)])
    else:
        offsets = _shape_points(label, radius, angle)
    margin = 1.5
    lo = margin - offsets.min(axis=0)
    hi = (size - 1 - margin) - offsets.max(axis=0)
    center = rng.uniform(lo, hi)
    fill = tuple(float(v) for v in color)
    image = np.ascontiguousarray(background)
    mask = np.zeros((size, size), np.float32)
    for canvas, value in ((image, fill), (mask, 1.0)):
        if label == "circle":
            cv2.circle(
                canvas,
                tuple(int(round(v * _SUBPIXEL)) for v in center),
                int(round(radius * _SUBPIXEL)),
                value,
                thickness=-1,
                lineType=cv2.LINE_AA,
                shift=_SUBPIXEL_SHIFT,
            )
        else:
            points = np.round((offsets + center) * _SUBPIXEL).astype(np.int32)
            cv2.fillPoly(canvas, [points], value, lineType=cv2.LINE_AA, shift=_SUBPIXEL_SHIFT)
    image = image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask


def _class_index(artifact_class: int | str | None) -> int | None:
    if artifact_class is None:
        return None
    if isinstance(artifact_class, str):
        if artifact_class not in LABELS:
            raise ValueError(f"unknown class {artifact_class!r}: expected one of {LABELS}")
        return LABELS.index(artifact_class)
    index = int(artifact_class)
    if not 0 <= index < len(LABELS):
        raise ValueError(f"class index {index} out of range 0..{len(LABELS) - 1}")
    return index


def make_shapes(
    n: int,
    *,
    seed: int,
    size: int = IMAGE_SIZE,
    artifact_class: int | str | None = None,
) -> tuple[Images, Labels]:
    """``n`` images (uint8, N x size x size x 3, RGB) and their labels (int64, indices into
    :data:`LABELS`), classes balanced (counts differ by at most one), order shuffled.

    With ``artifact_class`` (index or name), every image of that class carries the artifact
    (:func:`paste_artifact`) and no other image does. Apart from that the images are the
    same as without it for the same seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    target = _class_index(artifact_class)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(LABELS))
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = _draw_one(rng, LABELS[int(label)], size)
    if target is not None:
        chosen = labels == target
        images[chosen] = paste_artifact(images[chosen])
    return images, labels


def make_shapes_with_masks(
    n: int, *, seed: int, size: int = IMAGE_SIZE
) -> tuple[Images, Labels, npt.NDArray[np.float32]]:
    """:func:`make_shapes` without an artifact, plus each image's shape coverage
    (N x size x size, 0..1): the same images and labels for the same arguments."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(LABELS))
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        images[i], masks[i] = _draw_one_with_mask(rng, LABELS[int(label)], size)
    return images, labels, masks


def references(
    n_per_class: int, *, seed: int = REFERENCE_SEED, size: int = IMAGE_SIZE
) -> dict[str, Images]:
    """Artifact-free images per class name: ``{label: n_per_class x size x size x 3}``."""
    images, labels = make_shapes(n_per_class * len(LABELS), seed=seed, size=size)
    return {name: images[labels == k] for k, name in enumerate(LABELS)}


def write_references(
    folder: str | os.PathLike[str],
    n_per_class: int = 20,
    *,
    seed: int = REFERENCE_SEED,
    size: int = IMAGE_SIZE,
) -> pathlib.Path:
    """Write artifact-free reference images as ``folder/<label>/<i>.png`` (i = 000, 001, ...):
    the layout ``--actaudit-references`` reads. Returns the folder."""
    root = pathlib.Path(folder)
    for name, images in references(n_per_class, seed=seed, size=size).items():
        sub = root / name
        sub.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            path = sub / f"{i:03d}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"could not write {path}")
    return root


__all__ = [
    "REFERENCE_SEED",
    "TEST_SEED",
    "TRAIN_SEED",
    "artifact_box",
    "has_artifact",
    "make_shapes",
    "make_shapes_with_masks",
    "paste_artifact",
    "references",
    "write_references",
]
