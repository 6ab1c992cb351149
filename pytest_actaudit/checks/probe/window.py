"""The window: the most salient half-side window of each maximization image, pasted at
its place into the other classes' references.

Class-maximization images are super-stimuli holding miniature whole objects, so a
window of one flips other images even for a model that learned the right shape; its
control is therefore the larger of the same transplant from the class's own images and
the model's accuracy on them, plus ``WINDOW_ALLOWANCE``. It catches a shortcut that
replaced the object (a model that learned a tag instead of the object)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .evidence import Attribute, Images
from .transfer import Batch, Plan, Sources, isolate

WINDOW_FRACTION = 1 / 2  # the salient window's side
# the window's control is raised by this much: a super-stimulus' window flips other
# images in clean classes too (docs/shortcuts.md gives how far)
WINDOW_ALLOWANCE = 0.25


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


def paste(targets: Images, source: Images, window: tuple[int, int, int]) -> Images:
    """Copies of ``targets`` with ``source``'s window pasted at the same place."""
    x0, y0, side = window
    out = targets.copy()
    out[:, y0 : y0 + side, x0 : x0 + side] = source[y0 : y0 + side, x0 : x0 + side]
    return out


def window_plan(
    sources: Sources, attribution: NDArray[np.float32], attribute: Attribute, batch: Batch
) -> Plan:
    """Each seed's most salient window carried into the other classes' references; the
    control: each own-class partner's most salient window, carried the same way."""
    own, others, pair = sources.own, sources.others, sources.pair
    height, width = sources.images.shape[1:3]
    n_others = len(others)
    side = max(1, round(sources.short * WINDOW_FRACTION))
    pair_attr = attribute(own, sources.index)[np.arange(n_others) % len(own)]
    control_images = others.copy()
    for k in range(n_others):
        window = (*salient_window(pair_attr[k], side), side)
        control_images[k] = paste(others[k : k + 1], pair[k], window)[0]
    where, tests, components = [], [], []
    for image, attr in zip(sources.images, attribution, strict=True):
        x0, y0 = salient_window(attr, side)
        where.append(f"{side} px window at x={x0}, y={y0}")
        tests.append(batch.add(paste(others, image, (x0, y0, side))))
        components.append(isolate(image, _window_mask(height, width, (x0, y0, side))))
    return Plan("window", where, tests, [batch.add(control_images)], components)


def window_control(transplant: float, class_accuracy: float) -> tuple[float, str]:
    """The window's control, and what it is in words: what the real object achieves (the
    larger of the same transplant from the class's own images, ``transplant``, and the
    model's accuracy on them), plus the super-stimulus' allowance."""
    control_what = (
        f"the larger of the same transplant from this class's own references "
        f"({transplant:.2f}) and the model's accuracy on them ({class_accuracy:.2f})"
    )
    control = max(transplant, class_accuracy)  # see control_what for both numbers
    control_what += f", plus {WINDOW_ALLOWANCE:g} (a super-stimulus' window)"
    return min(1.0, control + WINDOW_ALLOWANCE), control_what


def _window_mask(height: int, width: int, window: tuple[int, int, int]) -> NDArray[np.bool_]:
    x0, y0, side = window
    mask = np.zeros((height, width), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask
