"""The shortcut probe: does a small part of a class's maximization image, pasted into
real images of other classes, make the model read them as that class — more than the
same part of the class's real images does? numpy and OpenCV only; the model is reached
through a ``predict`` callable (uint8 images → class probabilities).

The statistic per seed is ``flip rate − max(control flip rate, accuracy on the class's
own references)``: a window of the maximization image may flip other classes' images
as often as the real object is recognized, but not more.

Why the control: class-maximization images hold miniature whole objects, so a window
of one can flip other-class images even for a model that learned the right shape.
The same transplant made from the class's real images — each one's own most salient
window, pasted at its place — shows what the real object does; only the excess over
that points at a shortcut (a model that learned a tag responds to the tag in its
maximization image, and hardly at all to real, tag-free images of the class). Windows
are pasted where they were cut: an artifact bound to a place only works there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Predict = Callable[[NDArray[np.uint8]], NDArray[np.float64]]
Attribute = Callable[[NDArray[np.uint8], int], NDArray[np.float32]]


@dataclass
class ProbeResult:
    """Per seed: the window (x0, y0, side), flip rate of the transplant, flip rate of
    the control, and their difference (the excess)."""

    windows: list[tuple[int, int, int]]
    flip_rates: NDArray[np.float64]
    control_rates: NDArray[np.float64]
    references_of_class: int
    references_of_others: int
    class_accuracy: float  # share of the class's own references the model gets right
    examples: list[NDArray[np.uint8]] = field(default_factory=list)

    @property
    def baseline_rates(self) -> NDArray[np.float64]:
        """What the real object achieves: the larger of the control transplant's flip
        rate and the model's accuracy on the class's own (whole) references."""
        return np.maximum(self.control_rates, self.class_accuracy)

    @property
    def excess(self) -> NDArray[np.float64]:
        """How much more the maximization window achieves than the real object does."""
        return np.asarray(self.flip_rates - self.baseline_rates, np.float64)


def salient_window(attribution: NDArray[np.float32], side: int) -> tuple[int, int]:
    """Top-left corner (x0, y0) of the side × side window holding the most attribution."""
    height, width = attribution.shape
    side_y, side_x = min(side, height), min(side, width)
    integral = np.pad(attribution.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (
        integral[side_y:, side_x:]
        - integral[:-side_y, side_x:]
        - integral[side_y:, :-side_x]
        + integral[:-side_y, :-side_x]
    )
    y0, x0 = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x0), int(y0)


def paste(
    targets: NDArray[np.uint8], source: NDArray[np.uint8], window: tuple[int, int, int]
) -> NDArray[np.uint8]:
    """Copies of ``targets`` with ``source``'s window pasted at the same place."""
    x0, y0, side = window
    out = targets.copy()
    out[:, y0 : y0 + side, x0 : x0 + side] = source[y0 : y0 + side, x0 : x0 + side]
    return out


def probe(
    index: int,
    images: NDArray[np.uint8],
    attribution: NDArray[np.float32],
    references: NDArray[np.uint8],
    labels: NDArray[np.int64],
    predict: Predict,
    attribute: Attribute,
    *,
    window_fraction: float = 0.5,
    examples: int = 4,
) -> ProbeResult:
    """Run the probe for class ``index`` on its maximization ``images`` (seeds × H × W
    × C) with their ``attribution`` maps, against labelled real ``references``."""
    own = references[labels == index]
    others = references[labels != index]
    if len(own) == 0 or len(others) == 0:
        missing = "this class" if len(own) == 0 else "any other class"
        raise ValueError(
            f"the shortcut probe needs reference images of class {index} and of other "
            f"classes; none of {missing} were given"
        )
    height, width = images.shape[1:3]
    side = max(1, round(min(height, width) * window_fraction))
    own_pred = np.argmax(predict(own), axis=1)
    # Control: each real image of the class gives its own most salient window, pasted at
    # its place into the other-class images in turn (as many pastes as a seed makes).
    own_windows = [(*salient_window(a, side), side) for a in attribute(own, index)]
    control = others.copy()
    for k in range(len(others)):
        j = k % len(own)
        control[k] = paste(others[k : k + 1], own[j], own_windows[j])[0]
    control_rate = float(np.mean(np.argmax(predict(control), axis=1) == index))
    windows, flips = [], []
    shown: list[NDArray[np.uint8]] = []
    for image, attr in zip(images, attribution, strict=True):
        x0, y0 = salient_window(attr, side)
        window = (x0, y0, side)
        windows.append(window)
        pasted = paste(others, image, window)
        flips.append(float(np.mean(np.argmax(predict(pasted), axis=1) == index)))
        if len(shown) < examples:
            shown.extend(pasted[: examples - len(shown)])
    controls = [control_rate] * len(images)
    return ProbeResult(
        windows=windows,
        flip_rates=np.array(flips),
        control_rates=np.array(controls),
        references_of_class=len(own),
        references_of_others=len(others),
        class_accuracy=float(np.mean(own_pred == index)),
        examples=shown,
    )
