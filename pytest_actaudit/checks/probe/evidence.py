"""What the probe finds: one ``Evidence`` per kind of evidence, gathered in a
``ProbeResult``; and the callables through which the probe reaches the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Images = NDArray[np.uint8]
Predict = Callable[[Images], NDArray[np.float64]]
Attribute = Callable[[Images, int], NDArray[np.float32]]
# (images, labels) -> [(option, value, share read right)], best first
RankInputs = Callable[[Images, NDArray[np.int64]], list[tuple[str, str, float]]]
Detectors = Callable[[Images], tuple[NDArray[np.float64], NDArray[np.float64]]]

# an unseen detector this many times its trusted maximum is decisive in one seed: the
# seed's excess counts even if the other seeds' optimizations never reached it (a
# detector that far beyond every trusted image is no odd seed; docs/shortcuts.md gives
# what the zoo measured)
DECISIVE_NOVELTY = 30.0


@dataclass
class Evidence:
    """One transfer's outcome: per seed, what was carried and how many other-class
    references it flipped; the control; a few intervened references and a picture of
    the carried part (for the strongest seed)."""

    kind: str  # "window", "unseen detail", "colour", "low frequencies", "object-free edit"
    where: list[str] | str  # per seed (or one for all): "32 px window at x=0, y=4", ...
    flip_rates: NDArray[np.float64]
    control_rate: float
    examples: list[Images] = field(default_factory=list)
    component: Images | None = None
    novelty: NDArray[np.float64] | None = None  # unseen detail: per seed, the top ratio
    control_what: str = "the same part of this class's own references"
    transplant_control: float | None = None  # the window's control before the accuracy
    flipped: str | None = None  # what the flip rates count, when not other-class references
    # a caption per example picture, when not "carried into another class"
    example_captions: list[str] = field(default_factory=list)

    @property
    def excess(self) -> NDArray[np.float64]:
        return np.asarray(self.flip_rates - self.control_rate, np.float64)

    @property
    def decisive_seed(self) -> int | None:
        """The seed whose unseen detector is ``DECISIVE_NOVELTY`` × beyond the trusted
        images' range with the largest excess, if any: it counts alone."""
        if self.novelty is None:
            return None
        decisive = np.flatnonzero(self.novelty >= DECISIVE_NOVELTY)
        if len(decisive) == 0:
            return None
        return int(decisive[np.argmax(self.excess[decisive])])

    @property
    def deciding_seed(self) -> int | None:
        """The decisive seed, when it is what the score is (its excess above the median)."""
        seed = self.decisive_seed
        if seed is None or self.excess[seed] <= np.median(self.excess):
            return None
        return seed

    @property
    def score(self) -> float:
        """The evidence's strength across seeds: the median excess (one odd seed is not
        a shortcut; a shortcut shows in most seeds), or a decisive seed's excess if it is
        larger (a detector far beyond anything the trusted images fire is no odd seed)."""
        seed = self.deciding_seed
        return float(np.median(self.excess)) if seed is None else float(self.excess[seed])

    @property
    def shown_seed(self) -> int:
        """The seed the evidence is described and pictured by: the deciding seed if
        there is one, else the seed that shows it most."""
        seed = self.deciding_seed
        return int(np.argmax(self.excess)) if seed is None else seed

    def describe(self, seed_index: int | None = None) -> str:
        """Where the evidence lies, in ``shown_seed`` (or the one given)."""
        if isinstance(self.where, str):
            return self.where
        return self.where[self.shown_seed if seed_index is None else seed_index]


@dataclass
class ProbeResult:
    """Every transfer's evidence, the model's accuracy on the class's own references."""

    evidence: list[Evidence]
    references_of_class: int
    references_of_others: int
    class_accuracy: float  # share of the class's own references the model gets right
    # the references' classes are the model's readings: class_accuracy is 1 by
    # construction (the window's and the needed edit's controls cannot be beaten)
    read_by_model: bool = False

    @property
    def strongest(self) -> Evidence:
        return max(self.evidence, key=lambda e: (e.score, float(np.max(e.excess))))

    @property
    def excess(self) -> NDArray[np.float64]:
        """Per seed, the excess of the strongest evidence."""
        return self.strongest.excess

    @property
    def flip_rates(self) -> NDArray[np.float64]:
        return self.strongest.flip_rates

    @property
    def control_rate(self) -> float:
        return self.strongest.control_rate

    @property
    def examples(self) -> list[Images]:
        return self.strongest.examples
