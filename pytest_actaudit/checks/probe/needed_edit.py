"""The edit the class needs: the object-free edit of the same bank that most raises the
share of the class's *own* references read right, when it also makes most other
classes' references read as the class; its control is the model's accuracy on the own
references. A total shortcut read by a small margin (a warm cast on every image of the
class) is the model needing the artifact to see the class."""

from __future__ import annotations

import numpy as np

from .. import edits
from .evidence import Evidence
from .transfer import Batch, Readings, Sources


def needed_plan(
    sources: Sources, screened: edits.Screen, batch: Batch
) -> tuple[list[edits.Edit], list[tuple[slice, slice]]]:
    """The edits the class's own references most need (screened once per model), each
    applied to the own references and to the other classes'."""
    needed = [screened.edits[e] for e in screened.needed.get(sources.index, [])]
    tests = [
        (batch.add(edit.apply(sources.own, seed=k)), batch.add(edit.apply(sources.others, seed=k)))
        for k, edit in enumerate(needed)
    ]
    return needed, tests


def needed_evidence(
    needed: list[edits.Edit],
    tests: list[tuple[slice, slice]],
    readings: Readings,
    class_accuracy: float,
    n_own: int,
) -> Evidence:
    """The object-free edit this class needs: with it, more of the class's own
    references are read right than without (the control is the model's accuracy on them)
    — a model that learned the class from an artifact on most of its training images
    reads the plain object poorly and the object with the artifact well. It counts only
    if the edit also makes ``edits.NEEDED_OTHERS`` of other classes' references read as
    the class (a cast that merely restores contrast does not)."""
    control_what = "the model's accuracy on this class's plain references"
    flipped = f"this class's {n_own} own references (read right with the edit)"
    rates, reads = [], []
    for own_t, others_t in tests:
        reads.append(readings.read_as_class(others_t))
        right = readings.read_as_class(own_t)
        rates.append(right if reads[-1] >= edits.NEEDED_OTHERS else class_accuracy)
    if not tests or max(rates) <= class_accuracy:
        return Evidence(
            kind="edit the class needs",
            where="no edit raises this class's own readings",
            flip_rates=np.full(readings.seeds, class_accuracy),
            control_rate=class_accuracy,
            control_what=control_what,
            flipped=flipped,
        )
    best = int(np.argmax(rates))
    edit, (own_t, others_t) = needed[best], tests[best]
    where = (
        f"{edit.description} (this class's own references read right: "
        f"{class_accuracy:.0%} without it, {rates[best]:.0%} with it; other classes' "
        f"references read as this class: {reads[best]:.0%})"
    )
    shown = readings.batch.images(own_t)
    height, width, channels = shown.shape[1:]
    own_shown = list(shown[: readings.examples // 2])
    others_shown = list(readings.batch.images(others_t)[: readings.examples // 2])
    grey = np.full((1, height, width, channels), 128, np.uint8)
    return Evidence(
        kind="edit the class needs",
        where=where,
        flip_rates=np.full(readings.seeds, rates[best]),
        control_rate=class_accuracy,
        examples=own_shown + others_shown,
        component=edit.apply(grey)[0],
        control_what=control_what,
        flipped=flipped,
        example_captions=["this class, with the edit"] * len(own_shown)
        + ["another class, with the edit"] * len(others_shown),
    )
