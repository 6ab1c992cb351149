"""Image parametrizations: what the optimizer actually changes.

``pixel``: the image itself in [0, 1], clipped after each step and blurred every few
steps (the seed tutorial's remedy for high-frequency noise).

``fourier``: a spectrum scaled by 1/frequency, turned into pixels by an inverse real
FFT, colours decorrelated (3 channels; the matrix lucid/lucent use) and squashed into
(0, 1) with a sigmoid — the lucid/lucent/xplique parametrization, which favours large
smooth structures over pixel noise. Both are traceable TF, on the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from . import transforms

# lucid's colour correlation (square root of the ImageNet colour covariance, by SVD)
COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
COLOR = COLOR_SQRT / np.max(np.linalg.norm(COLOR_SQRT, axis=0))


class PixelParam:
    name = "pixel"

    def __init__(
        self, shape: tuple[int, int, int], *, init_noise: float, blur_every: int, blur_sigma: float
    ) -> None:
        self.shape = shape
        self.init_noise = init_noise
        self.blur_every = blur_every if blur_sigma > 0 else 0
        self.kernel = transforms.gaussian_kernel(max(blur_sigma, 0.1), shape[2])

    def initial(self, seed: int) -> np.ndarray:
        """Mid-grey plus uniform noise, from this seed only."""
        rng = np.random.default_rng([seed, 0x1A17])
        noise = rng.uniform(-self.init_noise, self.init_noise, self.shape)
        return (0.5 + noise).astype(np.float32)

    def to_unit(self, x: tf.Tensor) -> tf.Tensor:
        return x

    def after_step(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        x = tf.clip_by_value(x, 0.0, 1.0)
        if self.blur_every > 0:
            x = tf.cond(
                (t + 1) % self.blur_every == 0,
                lambda: transforms.blur(x, self.kernel),
                lambda: x,
            )
        return x


class FourierParam:
    name = "fourier"

    def __init__(self, shape: tuple[int, int, int], *, decay: float = 1.0, sd: float = 0.01):
        height, width, channels = shape
        self.shape = shape
        self.sd = sd
        fy = np.fft.fftfreq(height)[:, None]
        fx = np.fft.rfftfreq(width)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay
        self.scale = tf.constant((scale * math.sqrt(height * width)).astype(np.float32))
        self.color = tf.constant(COLOR) if channels == 3 else None

    def initial(self, seed: int) -> np.ndarray:
        height, width, channels = self.shape
        rng = np.random.default_rng([seed, 0xF0F0])
        return rng.normal(0.0, self.sd, (channels, height, width // 2 + 1, 2)).astype(np.float32)

    def to_unit(self, x: tf.Tensor) -> tf.Tensor:
        height, width, channels = self.shape
        spectrum = tf.complex(x[..., 0] * self.scale, x[..., 1] * self.scale)
        raw = tf.signal.irfft2d(spectrum, fft_length=[height, width])  # B×C×H×W
        raw = tf.transpose(raw, [0, 2, 3, 1]) / 4.0
        if self.color is not None:
            raw = tf.einsum("bhwc,dc->bhwd", raw, self.color)
        return tf.sigmoid(raw)

    def after_step(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return x


def make_param(kind: str, shape: tuple[int, int, int], settings: Any) -> PixelParam | FourierParam:
    if kind == "pixel":
        return PixelParam(
            shape,
            init_noise=settings.init_noise,
            blur_every=settings.blur_every,
            blur_sigma=settings.blur_sigma,
        )
    if kind == "fourier":
        return FourierParam(shape)
    raise ValueError(f"unknown parametrization {kind!r}; use 'pixel' or 'fourier'")
