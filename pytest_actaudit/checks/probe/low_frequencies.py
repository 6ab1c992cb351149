"""Low frequencies: the maximization image blurred by ``BLUR_FRACTION`` of its side (a
background, lighting, gradients), under the details of the other classes' references.

A window cannot carry them; the own references' low frequencies are the control."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .transfer import Batch, Plan, Sources, to_uint8

BLUR_FRACTION = 1 / 8


def low_frequencies_plan(sources: Sources, batch: Batch) -> Plan:
    """Each seed's low frequencies under the other classes' details; the control: the
    own-class partners' low frequencies, the same way."""
    images, others, pair = sources.images, sources.others, sources.pair
    sigma = max(1.0, sources.short * BLUR_FRACTION)
    others_f = others.astype(np.float32)
    detail = others_f - _blur(others_f, sigma)
    low = _blur(images.astype(np.float32), sigma)
    tests = [batch.add(to_uint8(detail + lo[None])) for lo in low]
    controls = [batch.add(to_uint8(detail + _blur(pair.astype(np.float32), sigma)))]
    components = [to_uint8(lo) for lo in low]
    where = [f"low frequencies (background, lighting; blur {sigma:.0f} px)"] * len(images)
    return Plan("low frequencies", where, tests, controls, components)


def _blur(images: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    import cv2

    flat = images.reshape(-1, *images.shape[-3:])
    out = np.empty_like(flat)
    for i, image in enumerate(flat):
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        out[i] = blurred.reshape(image.shape)
    return out.reshape(images.shape)
