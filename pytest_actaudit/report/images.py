"""PNG and JPEG encoding (OpenCV) and safe file names."""

from __future__ import annotations

import base64
import re

import numpy as np
from numpy.typing import NDArray


def _bgr(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGB(A) → OpenCV's BGR(A); grayscale as it is."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA), np.uint8)
    return image


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """RGB(A) or grayscale uint8 → PNG bytes, at the source's size (the page enlarges
    with ``image-rendering: pixelated``), zlib's strongest compression: these images
    are small, so it costs milliseconds."""
    import cv2

    ok, buf = cv2.imencode(".png", _bgr(image), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return bytes(buf.tobytes())


JPEG_QUALITY = 90


def encode_jpeg(image: NDArray[np.uint8]) -> bytes:
    """RGB or grayscale uint8 → JPEG bytes: for pictures that are a view and not the
    pixels the model saw (heat maps), a fraction of a PNG's size."""
    import cv2

    ok, buf = cv2.imencode(".jpg", _bgr(image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as JPEG")
    return bytes(buf.tobytes())


def data_uri(data: bytes) -> str:
    """An image file's bytes inline (PNG or JPEG, told by their signature)."""
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


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
