"""MACO: the image's phase is optimized under a fixed, natural magnitude spectrum.

Fel et al., "Unlocking Feature Visualization for Deeper Networks with MAgnitude
Constrained Optimization" (NeurIPS 2023); xplique's ``features_visualizations/maco.py``.
The optimizer changes only the phase of each channel's half spectrum; the magnitude is
that of real photos (the user's references when given, else a default measured on natural
photos, stored below as a small table), so the image keeps natural image statistics
while its content is free. The image is standardized, its colours recorrelated (lucid's
matrix, as for ``fourier``) and squashed into (0, 1) with a sigmoid. Each step the model
sees a random crop of it, shrinking over the run, with a little noise: the crop's centre,
size and turn are drawn beforehand from the image's seed (``draw``), the noise from the
step's own draw, so an image never depends on its batch neighbours.

Same interface as ``params.PixelParam``/``FourierParam`` (``initial``, ``to_unit``,
``after_step``), plus ``draw`` (the per-step crops) and ``view`` (what the model sees).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from . import transforms
from .transforms import COLOR

# The default magnitude: log mean |rfft2| of natural photos in lucid's decorrelated colour
# basis (rows 0-2) and of their luminance (row 3, for grayscale models), sampled at
# RADII (cycles per pixel, log-spaced) × ANGLES (0: horizontal frequencies, π/2: vertical),
# natural photos being close to mirror-symmetric. Measured by ``measure_table`` on the 20
# photos that ship in scikit-image, scikit-learn and matplotlib (benchmarks/image_quality.py
# --spectrum prints it); one common offset, so the channels keep their relative energy.
RADII = np.geomspace(1.0 / 256.0, math.sqrt(0.5), 16)
ANGLES = np.linspace(0.0, math.pi / 2.0, 5)
# fmt: off
DEFAULT_TABLE = np.array(
    [
    [
        [3.87, 3.10, 3.38, 2.72, 4.12],
        [3.04, 2.95, 2.95, 2.71, 3.43],
        [3.02, 2.40, 2.48, 2.41, 3.17],
        [2.34, 2.06, 2.01, 2.06, 2.75],
        [2.00, 1.79, 1.59, 1.66, 2.34],
        [1.53, 1.26, 1.29, 1.27, 1.53],
        [1.15, 0.88, 0.81, 0.91, 1.15],
        [0.65, 0.45, 0.36, 0.49, 0.78],
        [0.36, 0.04, -0.02, 0.06, 0.31],
        [-0.06, -0.38, -0.48, -0.44, -0.16],
        [-0.59, -0.84, -0.93, -0.90, -0.65],
        [-1.09, -1.33, -1.39, -1.37, -1.13],
        [-1.58, -1.78, -1.88, -1.86, -1.64],
        [-2.15, -2.35, -2.39, -2.39, -2.18],
        [-2.55, -2.86, -2.95, -2.84, -2.53],
        [-2.66, -3.17, -3.28, -3.15, -2.65],
    ],
    [
        [4.22, 3.16, 3.59, 3.13, 4.15],
        [3.11, 2.96, 2.68, 2.95, 3.58],
        [3.05, 2.23, 2.25, 2.72, 2.97],
        [2.16, 1.89, 1.85, 2.14, 2.47],
        [1.84, 1.47, 1.59, 1.67, 2.05],
        [1.29, 1.09, 1.08, 1.18, 1.53],
        [0.84, 0.58, 0.61, 0.68, 1.11],
        [0.36, 0.11, 0.09, 0.20, 0.57],
        [-0.14, -0.38, -0.41, -0.36, 0.02],
        [-0.57, -0.93, -0.94, -0.91, -0.55],
        [-1.13, -1.47, -1.46, -1.39, -1.02],
        [-1.64, -1.97, -1.97, -1.90, -1.55],
        [-2.15, -2.43, -2.50, -2.41, -2.09],
        [-2.77, -3.06, -3.04, -2.98, -2.65],
        [-3.21, -3.62, -3.70, -3.52, -3.04],
        [-3.34, -3.96, -4.11, -3.84, -3.38],
    ],
    [
        [3.61, 2.74, 3.21, 2.58, 3.81],
        [2.91, 2.53, 2.13, 2.20, 3.10],
        [2.61, 2.07, 1.96, 2.37, 2.58],
        [1.44, 1.42, 1.66, 1.96, 2.15],
        [1.33, 1.05, 1.28, 1.44, 1.70],
        [0.81, 0.79, 0.80, 1.01, 1.20],
        [0.46, 0.38, 0.39, 0.54, 0.70],
        [0.04, -0.10, -0.09, -0.04, 0.27],
        [-0.41, -0.55, -0.55, -0.49, -0.22],
        [-0.77, -1.04, -1.00, -0.92, -0.68],
        [-1.26, -1.47, -1.46, -1.39, -1.17],
        [-1.72, -1.93, -1.89, -1.82, -1.59],
        [-2.15, -2.30, -2.32, -2.22, -2.06],
        [-2.66, -2.80, -2.78, -2.71, -2.53],
        [-2.98, -3.23, -3.29, -3.13, -2.86],
        [-2.92, -3.56, -3.60, -3.41, -2.87],
    ],
    [
        [3.32, 2.55, 2.85, 2.19, 3.58],
        [2.48, 2.41, 2.41, 2.19, 2.87],
        [2.49, 1.86, 1.92, 1.89, 2.61],
        [1.78, 1.52, 1.47, 1.51, 2.21],
        [1.46, 1.25, 1.06, 1.13, 1.80],
        [1.00, 0.72, 0.75, 0.73, 0.98],
        [0.61, 0.34, 0.26, 0.36, 0.61],
        [0.10, -0.09, -0.18, -0.05, 0.24],
        [-0.18, -0.50, -0.56, -0.48, -0.23],
        [-0.60, -0.93, -1.01, -0.98, -0.70],
        [-1.14, -1.38, -1.47, -1.44, -1.19],
        [-1.63, -1.87, -1.93, -1.91, -1.67],
        [-2.13, -2.32, -2.43, -2.40, -2.18],
        [-2.69, -2.89, -2.93, -2.93, -2.72],
        [-3.09, -3.41, -3.50, -3.38, -3.07],
        [-3.23, -3.72, -3.83, -3.69, -3.19],
    ],
    ],
    np.float32,
)
# fmt: on


def _polar(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius (cycles per pixel) and angle in [0, π/2] of each half-spectrum bin."""
    fy = np.abs(np.fft.fftfreq(height))[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    angle = np.arctan2(fy + 0.0 * fx, fx + 0.0 * fy)
    return radius, angle


def _decorrelated(images: np.ndarray) -> np.ndarray:
    """N×H×W×C images in [0, 1] → N×C×H×W planes in the basis the image is built in:
    lucid's decorrelated colours for RGB, luminance as is for grey."""
    x = images.astype(np.float64) - 0.5  # mid-grey: the mean colour stays in the DC bin
    if x.shape[-1] == 3:
        x = x @ np.linalg.inv(COLOR.astype(np.float64).T)
    return np.moveaxis(x, -1, 1)


def magnitude_from_images(images: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The mean |rfft2| (C×H×(W//2+1), float32) of ``images`` (uint8 or [0, 1] floats,
    N×H×W×C at the input's size ``shape`` = (H, W, C)): the magnitude MACO keeps fixed
    when the user's references are given."""
    height, width, channels = (int(v) for v in shape)
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[1:] != (height, width, channels):
        raise ValueError(
            f"MACO's magnitude needs images of the input's shape N×{height}×{width}×{channels},"
            f" got {arr.shape}; resize the references to the model's input first"
        )
    unit = arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    planes = _decorrelated(unit)
    mean = np.abs(np.fft.rfft2(planes)).mean(axis=0)
    return np.asarray(mean, np.float32)


def measure_table(images: Sequence[np.ndarray]) -> np.ndarray:
    """The default table (4 × len(RADII) × len(ANGLES), log magnitude) from photos of
    any sizes (H×W×3 uint8): each photo's centre square, its mean |rfft2| per channel,
    binned around each grid point."""
    logs = []
    for photo in images:
        side = min(photo.shape[:2])
        top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
        square = photo[top : top + side, left : left + side, :3].astype(np.float64) / 255.0
        grey = square @ np.array([0.299, 0.587, 0.114])
        planes = np.concatenate(
            [_decorrelated(square[None])[0], _decorrelated(grey[None, :, :, None])[0]]
        )
        # per pixel: a photo's spectrum scales with its size, the table is per pixel
        logs.append(np.log(np.abs(np.fft.rfft2(planes)) / side + 1e-8))
        del planes
    tables = [_bin(log) for log in logs]
    table = np.log(np.mean([np.exp(t) for t in tables], axis=0))
    return np.asarray(table - table[:3].mean(), np.float32)


def _bin(log: np.ndarray) -> np.ndarray:
    """Mean of ``log`` (C×H×K) over the bins nearest each (radius, angle) grid point."""
    radius, angle = _polar(log.shape[1], 2 * (log.shape[2] - 1))
    ri = np.abs(np.log(radius[..., None] + 1e-12) - np.log(RADII)).argmin(-1)
    ai = np.abs(angle[..., None] - ANGLES).argmin(-1)
    out = np.zeros((log.shape[0], len(RADII), len(ANGLES)))
    for r in range(len(RADII)):
        for a in range(len(ANGLES)):
            where = (ri == r) & (ai == a) & (radius > 0)
            if where.any():
                out[:, r, a] = log[:, where].mean(axis=1)
            else:  # no bin this close to the grid point: the nearest bins at its angle
                near = (ai == a) & (radius > 0)
                gap = np.abs(np.log(radius[near]) - np.log(RADII[r]))
                out[:, r, a] = log[:, near][:, gap <= gap.min() + 1e-9].mean(axis=1)
    return out


def default_magnitude(shape: Sequence[int], table: np.ndarray | None = None) -> np.ndarray:
    """The default magnitude (C×H×(W//2+1)) at this input shape, interpolated from the
    table in log radius and angle; any size, square or not, grey (C = 1) or RGB."""
    height, width, channels = (int(v) for v in shape)
    table = DEFAULT_TABLE if table is None else table
    rows = table[3:4] if channels == 1 else table[:3]
    radius, angle = _polar(height, width)
    lr = np.clip(np.log(np.maximum(radius, RADII[0])), np.log(RADII[0]), np.log(RADII[-1]))
    rpos = np.interp(lr, np.log(RADII), np.arange(len(RADII)))
    apos = np.interp(angle, ANGLES, np.arange(len(ANGLES)))
    r0, a0 = np.floor(rpos).astype(int), np.floor(apos).astype(int)
    r1, a1 = np.minimum(r0 + 1, len(RADII) - 1), np.minimum(a0 + 1, len(ANGLES) - 1)
    wr, wa = rpos - r0, apos - a0
    log = (
        rows[:, r0, a0] * (1 - wr) * (1 - wa)
        + rows[:, r1, a0] * wr * (1 - wa)
        + rows[:, r0, a1] * (1 - wr) * wa
        + rows[:, r1, a1] * wr * wa
    )
    mag = np.exp(log) * math.sqrt(height * width)
    # DC: a colour cast is something a class may need (the phase's cosine sets its sign
    # and size); as strong as the lowest frequencies, not zero
    mag[:, 0, 0] = mag[:, 0, 1]
    return np.asarray(mag, np.float32)


class MacoParam:
    """Parameters B×C×H×K: the phase of each channel's half spectrum (K = W//2 + 1)."""

    name = "maco"

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        magnitude: np.ndarray | None = None,
        crop_start: float = 1.0,
        crop_end: float = 1.0,
        crop_spread: float = 0.05,
        centre_spread: float = 0.05,
        degrees: float = 5.0,
        noise: float = 0.08,
        gain: float = 2.0,
    ) -> None:
        height, width, channels = shape
        self.shape = shape
        spectrum = (height, width // 2 + 1)
        if magnitude is None:
            magnitude = default_magnitude(shape)
        magnitude = np.asarray(magnitude, np.float32)
        if magnitude.shape != (channels, *spectrum):
            raise ValueError(
                f"MACO's magnitude must be C×H×(W//2+1) = {(channels, *spectrum)} for input "
                f"{shape}, got {magnitude.shape}; build it with magnitude_from_images"
            )
        self.magnitude = tf.constant(magnitude)
        self.crop = (crop_start, crop_end, crop_spread, centre_spread)
        self.degrees = degrees
        self.noise = noise
        # lucid's colour mix leaves each RGB channel with 0.59 of the standardized image's
        # spread; a grey image gets the same, so ``gain`` means the same contrast for both
        self.gain = gain if channels == 3 else gain * float(np.linalg.norm(COLOR, axis=1).mean())
        self.color = tf.constant(COLOR) if channels == 3 else None

    def initial(self, seed: int) -> np.ndarray:
        height, width, channels = self.shape
        rng = np.random.default_rng([seed, 0x3AC0])
        return rng.normal(0.0, 1.0, (channels, height, width // 2 + 1)).astype(np.float32)

    def to_unit(self, x: tf.Tensor) -> tf.Tensor:
        """Images in (0, 1), B×H×W×C, from phases B×C×H×K (standardized per image, as
        xplique does, so the step size means the same whatever the phase drifted to)."""
        height, width, channels = self.shape
        mean, var = tf.nn.moments(x, axes=[1, 2, 3], keepdims=True)
        phase = (x - mean) / (tf.sqrt(var) + 1e-5)
        spectrum = tf.complex(tf.cos(phase) * self.magnitude, tf.sin(phase) * self.magnitude)
        raw = tf.transpose(tf.signal.irfft2d(spectrum, fft_length=[height, width]), [0, 2, 3, 1])
        mean, var = tf.nn.moments(raw, axes=[1, 2, 3], keepdims=True)
        image = (raw - mean) / (tf.sqrt(var) + 1e-5)
        if self.color is not None:
            flat = tf.matmul(tf.reshape(image, [-1, channels]), self.color, transpose_b=True)
            image = tf.reshape(flat, tf.shape(image))
        return tf.sigmoid(self.gain * image)

    def after_step(self, x: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return x

    def draw(self, seed: int, steps: int) -> np.ndarray:
        """Per step: (centre dx, centre dy in pixels, turn in radians, crop side as a share
        of the image side), from this seed only. The crop shrinks linearly from
        ``crop_start`` to ``crop_end`` of the side over the run, with a spread."""
        start, end, spread, centre = self.crop
        height, width, _ = self.shape
        rng = np.random.default_rng([seed, 0xC209])
        params = np.empty((steps, 4), np.float32)
        params[:, 0] = rng.normal(0.0, centre, steps) * width
        params[:, 1] = rng.normal(0.0, centre, steps) * height
        params[:, 2] = rng.uniform(-self.degrees, self.degrees, steps) * (math.pi / 180.0)
        box = np.linspace(start, end, steps) + rng.normal(0.0, spread, steps)
        params[:, 3] = np.clip(box, 0.05, 1.0)
        return params

    def view(
        self, x: tf.Tensor, params: tf.Tensor, t: tf.Tensor, settings: Any = None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(image, what the model sees): this step's crop of the image, resized to the
        input (the image is periodic, so a crop past an edge wraps around), plus noise.
        ``settings`` is unused: the crops were drawn with the image's own."""
        unit = self.to_unit(x)
        shape = tf.shape(unit)
        cy = (tf.cast(shape[1], tf.float32) - 1.0) / 2.0
        cx = (tf.cast(shape[2], tf.float32) - 1.0) / 2.0
        dx, dy, angle, box = tf.unstack(params, axis=1)
        cos, sin = tf.cos(angle) * box, tf.sin(angle) * box
        # output pixel p samples the image at box · R · (p − c) + c + d
        a2 = cx - cos * cx + sin * cy + dx
        b2 = cy - sin * cx - cos * cy + dy
        crop = transforms.project(unit, (cos, -sin, a2, sin, cos, b2), "WRAP")
        return unit, crop + self.noise * _hash_noise(shape, dx)


def _hash_noise(shape: tf.Tensor, salt: tf.Tensor) -> tf.Tensor:
    """Uniform noise of unit standard deviation, B×H×W×C, from each image's own draw
    (``salt``, B): a sine hash of the pixel's coordinates, so it needs no random state
    and depends on nothing but the image's draw."""
    rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None, None]
    cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :, None]
    chans = tf.cast(tf.range(shape[3]), tf.float32)[None, None, None, :]
    phase = rows * 12.9898 + cols * 78.233 + chans * 37.719 + salt[:, None, None, None] * 0.173
    value = tf.sin(phase) * 43758.5453
    return (value - tf.floor(value) - 0.5) * math.sqrt(12.0)
