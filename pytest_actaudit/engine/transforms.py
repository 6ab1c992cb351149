"""TF-native, traceable image transforms for robust class maximization.

All of them run inside the compiled step on the device that holds the images:
no numpy, no scipy, no host round trip (unlike tf-keras-vis's ``Rotate2D``).
Random parameters come in as tensors drawn per (seed, step) beforehand, so an
image's transforms depend on its own seed only, never on its batch neighbours.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# lucid's colour correlation (square root of the ImageNet colour covariance, by SVD)
COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
COLOR = COLOR_SQRT / np.max(np.linalg.norm(COLOR_SQRT, axis=0))


def draw_params(
    seed: int, steps: int, *, jitter: float, degrees: float, scale: float
) -> np.ndarray:
    """Per step: (dx, dy, angle in radians, scale factor), from this seed only.

    ``jitter`` is in pixels, ``degrees`` the largest rotation, ``scale`` the largest
    relative zoom (0.05 → 0.95–1.05).
    """
    rng = np.random.default_rng([seed, 0x5EED])
    params = np.empty((steps, 4), np.float32)
    params[:, 0:2] = rng.uniform(-jitter, jitter, (steps, 2))
    params[:, 2] = rng.uniform(-degrees, degrees, steps) * (math.pi / 180.0)
    params[:, 3] = rng.uniform(1.0 - scale, 1.0 + scale, steps)
    return params


def affine(images: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
    """Shift, rotate and zoom each image about its centre by its own params (B×4),
    in one projective-transform op with reflected borders."""
    shape = tf.shape(images)
    cy = (tf.cast(shape[1], tf.float32) - 1.0) / 2.0
    cx = (tf.cast(shape[2], tf.float32) - 1.0) / 2.0
    dx, dy, angle, zoom = tf.unstack(params, axis=1)
    cos = tf.cos(angle) / zoom
    sin = tf.sin(angle) / zoom
    # Output pixel (x, y) samples input at R/zoom · ((x, y) − c) + c + d.
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy + dx
    b2 = cy - b0 * cx - b1 * cy + dy
    return project(images, (a0, a1, a2, b0, b1, b2), "REFLECT")


def project(images: tf.Tensor, rows: tuple[tf.Tensor, ...], fill_mode: str) -> tf.Tensor:
    """Output pixel (x, y) of each image samples it, bilinearly, at (a0·x + a1·y + a2,
    b0·x + b1·y + b2), ``rows`` = (a0, a1, a2, b0, b1, b2) per image: one op; outside the
    image as ``fill_mode`` says (REFLECT, WRAP, …)."""
    zeros = tf.zeros_like(rows[0])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.stack([*rows, zeros, zeros], axis=1),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )


def gaussian_kernel(sigma: float, channels: int) -> tf.Tensor:
    """A depthwise 2-D Gaussian kernel (k×k×C×1) with k = 2·ceil(2σ)+1."""
    radius = max(1, math.ceil(2.0 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    g /= g.sum()
    kernel = np.outer(g, g)[:, :, None, None]
    return tf.constant(np.tile(kernel, (1, 1, channels, 1)), tf.float32)


def blur(images: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Gaussian blur with reflected borders (keeps edges from darkening)."""
    radius = kernel.shape[0] // 2
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")
