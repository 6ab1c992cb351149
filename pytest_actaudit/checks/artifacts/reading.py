"""Measuring one named artifact on trusted references: how many other-class references
it turns into the class (the pull), and how much more it raises the class's
log-probability than its control does, ranked among all classes (the specific rise)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ...errors import CheckNotRun
from .. import edits
from .artifact import Artifact, Images

Predict = Callable[[Images], NDArray[np.float64]]

# The check fails when the artifact turns more than this share of other classes'
# trusted references into the class: below what a learned shortcut named by its artifact
# pulls, above what most artifacts that merely look like a class of the data set pull (a
# checkerboard reads as "cross"); docs/shortcuts.md, "Naming a suspect", gives the rates.
DEFAULT_MAX_PULL = 0.4

# The specific-rise evidence counts when the class is among this share of the model's
# classes that the artifact raises most (against its control): by chance, an unrelated
# class lands there this often, so a model needs at least 1 / share classes to use it.
TOP_SHARE = 0.01
# ... and when the class's log-probability rises by more than this many nats more with
# the artifact than with its control (a factor e² ≈ 7.4 on its probability).
DEFAULT_MAX_RISE = 2.0


@dataclass
class ArtifactReading:
    """What one named artifact does to the model's readings of trusted references."""

    description: str
    pull: float  # other-class references read as the class with it, minus without it
    read: float  # other-class references read as the class with it
    before: float  # ... without it
    clearly: float  # ... with it, with a margin ≥ edits.MARGIN_FACTOR × the yardstick
    yardstick: float  # the model's median margin on its right readings of the references
    own_without: float  # this class's references read right without it (nan: none)
    own_with: float  # ... with it
    others: int
    own: int
    examples: list[Images] = field(default_factory=list)
    # mean rise of the class's log-probability on the other-class references: with the
    # artifact, and with its control (both against the plain references)
    rise: float = 0.0
    control_rise: float = 0.0
    control: str = "the plain images"
    rank: int = 1  # of the classes, by rise minus control rise (1: it rises most)
    classes: int = 1
    # every class's rise minus its control rise (what ``rank`` ranks), by class index
    specific_by_class: NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def specific_rise(self) -> float:
        """How much more the class's log-probability rises with the artifact than with
        its control (nats, mean over other-class references)."""
        return self.rise - self.control_rise

    @property
    def top(self) -> int:
        """The ranks that count as specific to the class: the top ``TOP_SHARE`` of the
        classes (0 when the model has too few classes for a rank to mean anything)."""
        return int(np.floor(TOP_SHARE * self.classes + 1e-9))

    def specific(self, max_rise: float) -> bool:
        """The artifact raises this class more than ``max_rise`` nats over its control,
        and more than nearly every other class: a learned, specific association."""
        return self.top >= 1 and self.rank <= self.top and self.specific_rise > max_rise

    def describe_rise(self, label: str = "this class") -> str:
        """The specific effect, in a sentence (``label``: what to call the class)."""
        where = "rises most" if self.rank == 1 else f"ranks {self.rank} by that difference"
        sentence = (
            f"it raises {label}'s log-probability by {self.rise:+.2f} nats on "
            f"{self.others} other-class references, {self.control} by "
            f"{self.control_rise:+.2f}; of {self.classes} classes, {label} {where}"
        )
        if self.top < 1:
            sentence += (
                f" (with fewer than {round(1 / TOP_SHARE)} classes the rank is no evidence; "
                "the pull decides)"
            )
        return sentence

    def describe(self, named: bool = True) -> str:
        """What it does, in a sentence (``named``: starting with what it is)."""
        own = (
            f"this class's own {self.own} references read right: {self.own_without:.0%} "
            f"without it, {self.own_with:.0%} with it"
            if self.own
            else "no reference reads as this class, so what it does to the class's own "
            "images is not measured"
        )
        return (
            f"{self.description if named else 'it'} makes the model read {self.read:.0%} of "
            f"{self.others} other-class references as this class ({self.before:.0%} "
            f"without it; {self.clearly:.0%} with a margin ≥ {edits.MARGIN_FACTOR:g}× the "
            f"model's median on real images); {own}; {self.describe_rise()}"
        )


def _log(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    # the floor keeps a probability that underflowed to 0 finite (as edits.margins does)
    return np.asarray(np.log(np.maximum(probabilities, 1e-38)), np.float64)


def measure(
    index: int,
    artifact: Artifact,
    references: Images,
    labels: NDArray[np.int64],
    predict: Predict,
    *,
    examples: int = 4,
) -> ArtifactReading:
    """Paste ``artifact`` (and its control) into every trusted reference and read them:
    the other classes' (how many turn into class ``index``, how much its log-probability
    rises against the control, and how that rise ranks among all classes) and the
    class's own, when any (how many it needs)."""
    labels = np.asarray(labels, np.int64)
    is_own = labels == index
    n_own, n_others = int(is_own.sum()), int((~is_own).sum())
    if n_others == 0:
        raise CheckNotRun(
            f"assert_ignores needs reference images of other classes than class {index}; "
            f"all {n_own} references are of this class"
        )
    plain = np.asarray(predict(references), np.float64)
    edited = artifact(references)
    read = np.asarray(predict(edited), np.float64)
    controlled, control = plain, "the plain images"
    if artifact.control is not None:
        control_images = artifact.control(references)
        if np.array_equal(control_images, edited):  # a grey suspect's grey control
            control += f" ({artifact.control.description} paints the same pixels)"
        else:
            controlled = np.asarray(predict(control_images), np.float64)
            control = artifact.control.description
    others = ~is_own
    base = _log(plain[others])
    rises = np.mean(_log(read[others]) - base, axis=0)
    control_rises = np.mean(_log(controlled[others]) - base, axis=0)
    specific = rises - control_rises
    yardstick = edits.typical_margin(plain, labels)
    as_class = np.argmax(read, axis=1) == index
    before = np.argmax(plain, axis=1) == index
    clearly = edits.margins(read[others], index) >= edits.MARGIN_FACTOR * yardstick
    # counts, not means, subtracted: 23/30 − 11/30 is 0.4 exactly, not 0.4000000000000001
    turned = int(np.sum(as_class[others])) - int(np.sum(before[others]))
    # the pictures: references it turned into the class first, then the others
    order = np.argsort(~(as_class & ~before)[others], kind="stable")
    return ArtifactReading(
        description=artifact.description,
        pull=turned / n_others,
        read=float(np.mean(as_class[others])),
        before=float(np.mean(before[others])),
        clearly=float(np.mean(clearly)),
        yardstick=yardstick,
        own_without=float(np.mean(before[is_own])) if n_own else float("nan"),
        own_with=float(np.mean(as_class[is_own])) if n_own else float("nan"),
        others=n_others,
        own=n_own,
        examples=list(edited[others][order[:examples]]),
        rise=float(rises[index]),
        control_rise=float(control_rises[index]),
        control=control,
        rank=1 + int(np.sum(specific > specific[index])),
        classes=int(plain.shape[1]),
        specific_by_class=specific,
    )
