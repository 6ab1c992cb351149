"""Image metrics on uint8 arrays: numpy and scikit-image only, no TensorFlow."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray


def ssim(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Structural similarity of two H×W×C uint8 images (1 = identical)."""
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    side = min(a.shape[0], a.shape[1])
    # SSIM's default 7 px window must fit and be odd; tiny images get a smaller one.
    win = min(7, side if side % 2 else side - 1)
    channel_axis = -1 if a.ndim == 3 else None
    value = structural_similarity(  # type: ignore[no-untyped-call]
        a, b, data_range=255, channel_axis=channel_axis, win_size=win
    )
    return float(value)


def pairwise_ssim(images: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Per image: its mean SSIM with every other image of the set.

    One number per seed, so a failure message can name the seed that disagrees.
    With a single image there is nothing to compare: the result is ``[nan]`` (undefined,
    not a perfect agreement that a threshold would pass).
    """
    n = len(images)
    if n < 2:
        return np.full(n, np.nan)
    table = np.eye(n)
    for i, j in itertools.combinations(range(n), 2):
        table[i, j] = table[j, i] = ssim(images[i], images[j])
    return np.asarray((table.sum(axis=1) - 1.0) / (n - 1), dtype=np.float64)


def pairwise_cosine(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per vector: its mean cosine similarity with every other vector of the set
    (``[nan]`` for a single vector: undefined)."""
    n = len(vectors)
    if n < 2:
        return np.full(n, np.nan)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    table = unit @ unit.T
    return np.asarray((table.sum(axis=1) - np.diag(table)) / (n - 1), dtype=np.float64)
