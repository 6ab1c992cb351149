"""PNG encoding (OpenCV) and safe file names."""

from __future__ import annotations

import base64
import re

import numpy as np
from numpy.typing import NDArray

MIN_SIDE = 128  # small inputs are upscaled (nearest neighbour); the page shows them at 192 px


def upscale(image: NDArray[np.uint8], min_side: int = MIN_SIDE) -> NDArray[np.uint8]:
    import cv2

    side = min(image.shape[0], image.shape[1])
    factor = max(1, -(-min_side // side))
    if factor == 1:
        return image
    out = cv2.resize(
        image, (image.shape[1] * factor, image.shape[0] * factor), interpolation=cv2.INTER_NEAREST
    )
    if image.ndim == 3:  # OpenCV drops a single channel axis
        out = out.reshape(out.shape[0], out.shape[1], image.shape[2])
    return np.asarray(out, dtype=np.uint8)


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """RGB(A) or grayscale uint8 → PNG bytes."""
    import cv2

    bgr: NDArray[np.uint8] = image
    if image.ndim == 3 and image.shape[2] == 3:
        bgr = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.uint8)
    elif image.ndim == 3 and image.shape[2] == 4:
        bgr = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA), np.uint8)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return bytes(buf.tobytes())


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(text: str, limit: int = 40) -> str:
    """A file-name fragment from any label: letters, digits, '_' and '-' only, so no
    separators, dots or traversal can come from a model's class names."""
    return _UNSAFE.sub("_", text).strip("_")[:limit] or "x"


def mean_image(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Pixel-wise mean of the seeds' images: what they share stays sharp."""
    return np.asarray(np.round(images.astype(np.float64).mean(axis=0)), dtype=np.uint8)


def energy(images: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Where images depart from mid-grey, per pixel (the fallback heat map when no
    attribution was computed)."""
    return np.asarray(np.abs(images.astype(np.float32) - 127.5).mean(axis=-1), np.float32)


def heatmap_overlay(image: NDArray[np.uint8], weights: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The image under a JET colour map of ``weights`` (H×W), half and half; hot = where
    the target score comes from."""
    import cv2

    raw = np.asarray(weights, np.float32)
    w = np.asarray(cv2.GaussianBlur(raw, (0, 0), sigmaX=max(0.5, raw.shape[0] / 64)), np.float32)
    span = float(w.max() - w.min())
    norm = np.zeros_like(w) if span <= 0 else (w - w.min()) / span
    heat = cv2.applyColorMap(np.round(norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    base = image if image.shape[-1] == 3 else np.repeat(image[..., :1], 3, axis=-1)
    return np.asarray(cv2.addWeighted(base, 0.45, heat, 0.55, 0.0), np.uint8)
