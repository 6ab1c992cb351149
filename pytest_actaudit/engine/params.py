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
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
import tensorflow as tf

from . import transforms
from .transforms import COLOR

if TYPE_CHECKING:
    from .maco import MacoParam


class ViewSettings(Protocol):
    """The settings a step's view reads (``EngineSettings`` has them)."""

    @property
    def rotate_every(self) -> int: ...
    @property
    def degrees(self) -> float: ...
    @property
    def scale(self) -> float: ...


class PixelSettings(Protocol):
    """The settings of the pixel parametrization (``EngineSettings`` has them)."""

    @property
    def init_noise(self) -> float: ...
    @property
    def blur_every(self) -> int: ...
    @property
    def blur_sigma(self) -> float: ...


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

    def view(
        self, x: tf.Tensor, transform: tf.Tensor, t: tf.Tensor, settings: ViewSettings
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(image, what the model sees at step ``t``) of the parameters ``x``, with this
        step's transform (B×4: dx, dy, angle, zoom): the whole affine view every step
        (there is no cheap exact shift of a pixel image)."""
        unit = self.to_unit(x)
        return unit, transforms.affine(unit, transform)

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
    """Parameters B×2×C×H×K (real and imaginary parts of each channel's half
    spectrum, K = W//2 + 1), contiguous per part so that nothing slices the last axis."""

    name = "fourier"

    def __init__(self, shape: tuple[int, int, int], *, decay: float = 1.0, sd: float = 0.01):
        height, width, channels = shape
        self.shape = shape
        self.sd = sd
        fy = np.fft.fftfreq(height)[:, None]
        fx = np.fft.rfftfreq(width)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        # 1/f amplitude, times √(HW) (irfft's 1/(HW) normalization) and 1/4 (the
        # pre-sigmoid scale), all folded into one constant.
        scale = (
            math.sqrt(height * width) / 4.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay
        )
        self.scale = tf.constant(scale.astype(np.float32))
        # The inverse real FFT is linear; its adjoint is a forward real FFT times these
        # weights (bins other than DC and Nyquist stand for two conjugate bins).
        weight = np.full(fx.shape, 2.0)
        weight[:, 0] = 1.0
        if width % 2 == 0:
            weight[:, -1] = 1.0
        self.adjoint = tf.constant((weight * scale / (height * width)).astype(np.float32))
        self.fy = tf.constant((-2.0 * math.pi * fy).astype(np.float32))
        self.fx = tf.constant((-2.0 * math.pi * fx).astype(np.float32))
        self.color = tf.constant(COLOR) if channels == 3 else None

    def initial(self, seed: int) -> np.ndarray:
        height, width, channels = self.shape
        rng = np.random.default_rng([seed, 0xF0F0])
        spectrum = rng.normal(0.0, self.sd, (channels, height, width // 2 + 1, 2))
        return np.ascontiguousarray(np.moveaxis(spectrum, -1, 0)).astype(np.float32)

    def to_unit(self, x: tf.Tensor, shift: tf.Tensor | None = None) -> tf.Tensor:
        """Images in (0, 1), B×H×W×C. ``shift`` (B×2: dx, dy in pixels) translates
        each image by a phase ramp on its spectrum: exact, sub-pixel, and wrapping
        around (the image is periodic), at the cost of one complex multiply."""
        if shift is None:
            shift = tf.zeros([tf.shape(x)[0], 2])
        return tf.sigmoid(self._linear(x, shift))

    def view(
        self, x: tf.Tensor, transform: tf.Tensor, t: tf.Tensor, settings: ViewSettings
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(image, what the model sees at step ``t``) of the parameters ``x``, with this
        step's transform (B×4: dx, dy, angle, zoom). The jitter is a phase shift of the
        spectrum (exact, sub-pixel, almost free); rotation and zoom, a resampling op
        forward and backward that costs a noticeable part of a small model's step, come
        every ``rotate_every`` steps."""
        s = settings
        unit = self.to_unit(x, shift=transform[:, :2])
        if s.rotate_every <= 0 or (s.degrees == 0 and s.scale == 0):
            return unit, unit
        turn = tf.concat([tf.zeros_like(transform[:, :2]), transform[:, 2:]], axis=1)
        moved = tf.cond(
            t % s.rotate_every == 0, lambda: transforms.affine(unit, turn), lambda: unit
        )
        return unit, moved

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def _linear(
        self, x: tf.Tensor, shift: tf.Tensor
    ) -> tuple[tf.Tensor, Callable[[tf.Tensor], tuple[tf.Tensor, None]]]:
        """Spectrum → pre-sigmoid image B×H×W×C: phase shift, inverse real FFT,
        colour mix, channels last. Its adjoint is written out (real FFT, colour
        transpose, phase back): autodiff through complex/real/imag, the FFT's
        registered gradient and an einsum cost several times the forward FFT
        (docs/engine-speed.md, where the time goes)."""
        height, width, channels = self.shape
        angle = (self.fy[None] * shift[:, 1, None, None] + self.fx[None] * shift[:, 0, None, None])[
            :, None
        ]  # B×1×H×K
        cos, sin = tf.cos(angle), tf.sin(angle)
        re, im = x[:, 0] * self.scale, x[:, 1] * self.scale
        spectrum = tf.complex(re * cos - im * sin, re * sin + im * cos)
        raw = tf.signal.irfft2d(spectrum, fft_length=[height, width])  # B×C×H×W
        image = self._mix(tf.transpose(raw, [0, 2, 3, 1]), transpose=False)

        def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, None]:
            planes = tf.transpose(self._mix(upstream, transpose=True), [0, 3, 1, 2])
            back = tf.signal.rfft2d(planes, fft_length=[height, width])
            g_re, g_im = tf.math.real(back), tf.math.imag(back)
            # the adjoint of a phase rotation rotates back
            un_re, un_im = g_re * cos + g_im * sin, g_im * cos - g_re * sin
            return tf.stack([un_re, un_im], 1) * self.adjoint, None

        return image, grad

    def _mix(self, image: tf.Tensor, *, transpose: bool) -> tf.Tensor:
        """Decorrelated → RGB colour (or back, for the adjoint) on B×H×W×C images: one
        (pixels × 3) · (3 × 3) matmul, measured faster than an einsum on planes."""
        if self.color is None:
            return image
        flat = tf.reshape(image, [-1, self.shape[2]])
        mixed = tf.matmul(flat, self.color, transpose_b=not transpose)
        return tf.reshape(mixed, tf.shape(image))

    def after_step(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return x


def make_param(
    kind: str, shape: tuple[int, int, int], settings: PixelSettings
) -> PixelParam | FourierParam | MacoParam:
    if kind == "pixel":
        return PixelParam(
            shape,
            init_noise=settings.init_noise,
            blur_every=settings.blur_every,
            blur_sigma=settings.blur_sigma,
        )
    if kind == "fourier":
        return FourierParam(shape)
    if kind == "maco":
        from .maco import MacoParam  # imported when chosen: most runs never use it

        return MacoParam(shape)
    raise ValueError(f"unknown parametrization {kind!r}; use 'fourier', 'pixel' or 'maco'")
