"""The probe itself: every kind of evidence carried into the references, read by the
model in one batch, and each weighed against its control."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ...errors import CheckNotRun
from .. import edits
from .colour import colour_plan
from .evidence import Attribute, Detectors, Evidence, Images, Predict, ProbeResult, RankInputs
from .low_frequencies import low_frequencies_plan
from .needed_edit import needed_evidence, needed_plan
from .object_free import object_free_evidence, object_free_plan, unfit_for_margins
from .transfer import Batch, Plan, Readings, Sources
from .trusted import check_references_are_read, missing
from .unseen import unseen_plan
from .window import window_control, window_plan


def probe(
    index: int,
    images: Images,
    attribution: NDArray[np.float32],
    references: Images,
    labels: NDArray[np.int64],
    predict: Predict,
    attribute: Attribute,
    detectors: Detectors | None = None,
    *,
    examples: int = 4,
    rank_inputs: RankInputs | None = None,
    screen: Callable[[], edits.Screen] | None = None,
    read_by_model: bool = False,
) -> ProbeResult:
    """Run the probe for class ``index`` on its maximization ``images`` (seeds × H × W
    × C, with their ``attribution`` maps) against labelled trusted ``references``.
    ``predict`` maps uint8 images to class probabilities, ``attribute`` images and a
    class to attribution maps, ``detectors`` images to the model's last spatial layer's
    channels at their strongest place (maxima N × K, places N × K × 2). ``screen``
    gives the object-free edits screened on the references (:func:`edits.screen`, the
    same for every class of a model: the caller may remember it); made here if not
    given. ``read_by_model``: the labels are the model's own readings (a flat folder of
    photos): its accuracy on them is 100% by construction, so it is not checked.
    Raises ``CheckNotRun`` when no reference is of the class, or none of another."""
    own = references[labels == index]
    others = references[labels != index]
    if len(own) == 0 or len(others) == 0:
        raise CheckNotRun(missing(index, len(own), len(references), read_by_model))
    # each other-class image is paired with one own-class image for the controls
    pair = own[np.arange(len(others)) % len(own)]
    sources = Sources(index, images, own, others, pair)
    batch = Batch()
    plans = [
        window_plan(sources, attribution, attribute, batch),
        unseen_plan(sources, references, detectors, batch),
        colour_plan(sources, batch),
        low_frequencies_plan(sources, batch),
    ]
    # The references alone: the same for every class of a model (the caller may remember
    # the call), so they are not part of this class's batch.
    read = predict(references)
    if not read_by_model:  # model-read classes are read right by construction
        check_references_are_read(references, labels, read, rank_inputs)
    class_accuracy = float(np.mean(np.argmax(read, axis=1)[labels == index] == index))
    # the edit bank is screened once per model; this class's best ones are measured again
    # on every other-class reference
    screened = screen() if screen is not None else edits.screen(references, labels, predict, read)
    # not read by a margin on grey pictures given to a colour model: see unfit_for_margins
    unfit = unfit_for_margins(references)
    kept, edit_tests = object_free_plan(sources, screened, unfit, batch)
    needed, needed_tests = needed_plan(sources, screened, batch)

    readings = Readings(batch, batch.predict(predict), index, len(images), examples)
    evidence = [_weigh(plan, readings, class_accuracy) for plan in plans]
    evidence.append(object_free_evidence(kept, edit_tests, readings, screened, unfit))
    evidence.append(needed_evidence(needed, needed_tests, readings, class_accuracy, len(own)))
    return ProbeResult(
        evidence=evidence,
        references_of_class=len(own),
        references_of_others=len(others),
        class_accuracy=class_accuracy,
        read_by_model=read_by_model,
    )


def _weigh(plan: Plan, readings: Readings, class_accuracy: float) -> Evidence:
    """A carried part's evidence: per seed, the share of other-class references it turns
    into the class, against its control (the largest of the control's shares)."""
    predicted = (
        np.argmax(readings.probabilities, axis=1)
        if len(readings.probabilities)
        else np.zeros(0, np.int64)
    )
    index = readings.index
    flips = np.array(
        [0.0 if t is None else float(np.mean(predicted[t] == index)) for t in plan.tests]
    )
    control = max([float(np.mean(predicted[c] == index)) for c in plan.controls] or [0.0])
    control_what = "the same part of this class's own references"
    transplant_control = control
    if plan.kind == "window":
        control, control_what = window_control(control, class_accuracy)
    if plan.novelty is not None:  # no unseen detector in a seed: nothing carried
        flips = np.where([t is None for t in plan.tests], control, flips)
    found = Evidence(
        kind=plan.kind,
        where=plan.where,
        flip_rates=flips,
        control_rate=control,
        novelty=None if plan.novelty is None else plan.novelty.astype(np.float64),
        control_what=control_what,
        transplant_control=transplant_control,
    )
    shown = found.shown_seed  # the deciding seed's pictures, else the strongest's
    test = plan.tests[shown]
    found.examples = [] if test is None else list(readings.batch.images(test)[: readings.examples])
    found.component = plan.components[shown]
    return found
