"""PNG encoding (OpenCV) and safe file names."""

from __future__ import annotations

import base64
import re

import numpy as np
from numpy.typing import NDArray

MIN_SIDE = 192  # small inputs are upscaled (nearest neighbour: pixels stay pixels)


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
