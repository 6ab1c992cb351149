"""Carrying a part of one image into others: the sources each kind of evidence draws on,
the batch that collects every intervened image for one call of the model, and the plan
each kind of evidence leaves for the decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .evidence import Images, Predict


@dataclass(frozen=True)
class Sources:
    """The class's maximization images and the trusted references they are carried into."""

    index: int  # the class
    images: Images  # its maximization images, seeds × H × W × C
    own: Images  # the trusted references of the class
    others: Images  # ... of every other class: what the parts are carried into
    pair: Images  # per other-class reference, the own-class reference of its control

    @property
    def short(self) -> int:
        """The maximization images' shorter side (parts are sized by it)."""
        return int(min(self.images.shape[1:3]))


@dataclass
class Plan:
    """One kind of evidence, carried and waiting for the model's readings: per seed the
    batch slice of its intervened images (None: nothing carried), the control's slices."""

    kind: str
    where: list[str]
    tests: Sequence[slice | None]
    controls: list[slice]
    components: list[Images]
    novelty: NDArray[np.float64] | None = None


class Batch:
    """Collects intervened images of every transfer, predicted in one call."""

    def __init__(self) -> None:
        self.parts: list[Images] = []
        self.offset = 0

    def add(self, images: Images) -> slice:
        self.parts.append(images)
        start = self.offset
        self.offset += len(images)
        return slice(start, self.offset)

    def images(self, where: slice) -> Images:
        """The images a slice of the batch refers to (each slice is one added part)."""
        start = 0
        for part in self.parts:
            if start == where.start:
                return part
            start += len(part)
        raise IndexError(where)

    def predict(self, predict: Predict) -> NDArray[np.float64]:
        """Class probabilities of every image added, in one call."""
        if not self.parts:
            return np.zeros((0, 0))
        return np.asarray(predict(np.concatenate(self.parts)), np.float64)


def to_uint8(x: NDArray[np.float32]) -> Images:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def isolate(image: Images, mask: NDArray[np.bool_]) -> Images:
    """The image where ``mask`` holds, mid-grey elsewhere: the carried part, alone."""
    return np.where(mask[..., None], image, np.uint8(128)).astype(np.uint8)


@dataclass(frozen=True)
class Readings:
    """The model's readings of the whole batch, for the decision on every plan."""

    batch: Batch
    probabilities: NDArray[np.float64]
    index: int  # the class
    seeds: int  # how many maximization images
    examples: int  # how many intervened images each evidence shows

    def read_as_class(self, where: slice) -> float:
        """The share of a slice's images the model reads as the class."""
        return float(np.mean(np.argmax(self.probabilities[where], axis=1) == self.index))
