"""What the checks may ask of the model, given to ``ClassAudit`` when it is made: the
trusted references and the model's calls on real images. numpy types only — the runner
implements them with its engine, a test with plain functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

Images = NDArray[np.uint8]  # N × H × W × C, as the model's input sees them
Labels = NDArray[np.int64]
# uint8 images -> class probabilities N × classes
Predict = Callable[[Images], NDArray[Any]]
# uint8 images, a class -> attribution maps N × H × W
Attribute = Callable[[Images, int], NDArray[np.float32]]
# uint8 images -> the last spatial layer's channels at their strongest place (N × K, N × K × 2)
Detectors = Callable[[Images], tuple[NDArray[Any], NDArray[Any]]]
# images, labels -> the known input settings ranked by how many they read right
RankInputs = Callable[[Images, Labels], Any]
# references -> the object-free edits screened on them (an ``edits.Screen``)
Screen = Callable[[Images], Any]
# (class index, its images, their attribution, run) -> the probe's result: run() or a kept one
RememberProbe = Callable[[int, Images, NDArray[np.float32], Callable[[], Any]], Any]


@dataclass(frozen=True)
class ReferenceContext:
    """The trusted references (uint8 N × H × W × C) and their class indices, and the
    model's calls on images — probabilities, attribution maps, the last spatial layer's
    detectors — with the known inputs' ranking (for the error when the references are not
    read right) and the object-free edits' screening (both once per model).

    It is its own ``ReferenceSource``: a test gives one made of plain functions."""

    references: Images
    labels: Labels
    predict: Predict
    attribute: Attribute | None = None
    detectors: Detectors | None = None
    rank_inputs: RankInputs | None = None
    screen: Screen | None = None
    # the labels are the model's own readings (a flat folder of photos, no class folders)
    read_by_model: bool = False
    remember_probe: RememberProbe | None = None
    # class index -> its ``trigger.TriggerEvidence`` (the search runs once per model)
    triggers: Callable[[int], Any] | None = None

    def context(self) -> ReferenceContext:
        return self


class ReferenceSource(Protocol):
    """Gives the ``ReferenceContext`` on first use by a check that needs it (the
    references are read then; an ``ActauditError`` says why there are none)."""

    def context(self) -> ReferenceContext: ...
