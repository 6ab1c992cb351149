"""The shortcut probe: is there a part of a class's maximization images that, carried
into trusted real images of other classes, makes the model read them as that class, more
than the same part of the class's own trusted images does? numpy and OpenCV only; the
model is reached through callables: ``predict`` (uint8 images → class probabilities),
``attribute`` (images, class → attribution maps) and ``detectors`` (images → the last
spatial layer's channels at their strongest place).

For every seed's image and every kind of evidence the probe measures the **flip rate**:
the share of the other classes' references that the model reads as the class once the
part is carried into them. The **control** is the same with the class's own references as
sources: what the real object does. The **excess** is flip rate − control.

The evidence, and why each control is what it is:

* **window**: the most salient half-side window, pasted at its place. Class-maximization
  images are super-stimuli holding miniature whole objects, so a window of one flips
  other images even for a model that learned the right shape; its control is therefore
  the larger of the same transplant from the class's own images and the model's
  accuracy on them, plus ``WINDOW_ALLOWANCE``. It catches a shortcut that replaced the
  object.
* **unseen detail**: where a channel of the last spatial layer fires far above anything
  it does on any trusted image, a patch around that place. Evidence the references never
  show cannot be the object, whatever the model's accuracy; its control is the same
  places of the own references. A seed whose detector fires ``DECISIVE_NOVELTY`` × beyond
  the trusted images counts alone (the other evidence is read as the median over seeds).
* **colour** (channel means) and **low frequencies** (the image blurred by 1/8 of its
  side): a cast, a background, lighting. A window cannot carry them; the own
  references' colour and low frequencies are the control (colour that *is* the object
  flips others from the real images too).
* **object-free edit** (:mod:`pytest_actaudit.checks.edits`): not from the maximization images.
  A bank of simple edits that hold no object (bands, frames, dots, a corner mark, colour
  casts, replaced backgrounds) is screened once per model; the class's best ones are
  applied to the other classes' references. The measure is the share they make the model
  read as the class with at least 2.5× its median margin on real images: a partial
  shortcut (the model still reads the real object) wins that clearly; a model merely
  tipped over by an unfamiliar input does not.
* **edit the class needs**: the edit of the same bank that most raises the share of the
  class's *own* references read right, when it also makes most other classes'
  references read as the class; its control is the model's accuracy on the own
  references. A total shortcut read by a small margin (a warm cast on every image of
  the class) is the model needing the artifact to see the class.

What was measured to work and not: ``docs/shortcuts.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..errors import CheckNotRun
from . import edits

Predict = Callable[[NDArray[np.uint8]], NDArray[np.float64]]
Attribute = Callable[[NDArray[np.uint8], int], NDArray[np.float32]]
# (images, labels) -> [(option, value, share read right)], best first
RankInputs = Callable[[NDArray[np.uint8], NDArray[np.int64]], list[tuple[str, str, float]]]
Detectors = Callable[[NDArray[np.uint8]], tuple[NDArray[np.float64], NDArray[np.float64]]]
Images = NDArray[np.uint8]

WINDOW_FRACTION = 1 / 2  # the salient window's side
PATCH_FRACTION = 1 / 4  # side of the part carried around each unseen detector's peak
NOVELTY = 12.0  # a detector firing this many times its trusted maximum is unseen (zoo: 20
# missed one striped-background model; 12 caught it with the same false alarms)
NOVEL_CHANNELS = 3  # the most novel detectors whose places are carried
# an unseen detector this many times its trusted maximum is decisive in one seed: the
# seed's excess counts even if the other seeds' optimizations never reached it (zoo: no
# clean class changes at 30; the held-out tag, at share 0.6, showed in one seed of three)
DECISIVE_NOVELTY = 30.0
BLUR_FRACTION = 1 / 8
# references read right at most this far from chance towards 100%: nothing to compare
MIN_REFERENCE_MARGIN = 0.25
# the window's control is raised by this much: a half-side window of a super-stimulus
# flipped up to 0.70 more than its control in clean classes of the zoo (docs/shortcuts.md)
WINDOW_ALLOWANCE = 0.25


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


# ------------------------------------------------------------------ geometry helpers
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


def _blur(images: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    import cv2

    flat = images.reshape(-1, *images.shape[-3:])
    out = np.empty_like(flat)
    for i, image in enumerate(flat):
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        out[i] = blurred.reshape(image.shape)
    return out.reshape(images.shape)


def _to_uint8(x: NDArray[np.float32]) -> Images:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------- transfers
class _Batch:
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


def detector_novelty(
    trusted: NDArray[np.floating], fired: NDArray[np.floating]
) -> NDArray[np.floating]:
    """Per seed × detector: how far beyond any trusted image the detector fires, as the
    ratio of its peak to the trusted images' largest (plus 1% of the median of those,
    so a detector the trusted images never fire is not divided by zero).

    A detector whose response is not finite on a seed's image or on any trusted image
    carries no evidence: its novelty is 0, and it never hides another one (a NaN in
    the row would make the row's maximum NaN, which no threshold passes)."""
    known = np.isfinite(fired) & np.all(np.isfinite(trusted), axis=0)
    trusted = np.where(np.isfinite(trusted), trusted, trusted.dtype.type(0))
    ceiling = trusted.max(axis=0) if len(trusted) else np.zeros(fired.shape[1])
    floor = 0.01 * float(np.median(ceiling[ceiling > 0])) if np.any(ceiling > 0) else 1e-6
    zero = fired.dtype.type(0)
    return np.where(known, np.where(known, fired, zero) / (ceiling + floor), zero)


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
        raise CheckNotRun(_missing(index, len(own), len(references), read_by_model))
    height, width = images.shape[1:3]
    short = min(height, width)
    n_others = len(others)
    # each other-class image is paired with one own-class image for the controls
    pair = own[np.arange(n_others) % len(own)]
    batch = _Batch()
    plans: list[_Plan] = []

    # 1. the most salient half-side window, pasted at its place; what the real object
    # achieves is the larger of the same transplant from the class's own images and the
    # model's accuracy on them (a model that learned a tag instead of the object)
    side = max(1, round(short * WINDOW_FRACTION))
    pair_attr = attribute(own, index)[np.arange(n_others) % len(own)]
    control_images = others.copy()
    for k in range(n_others):
        window = (*salient_window(pair_attr[k], side), side)
        control_images[k] = paste(others[k : k + 1], pair[k], window)[0]
    where, tests, components = [], [], []
    for image, attr in zip(images, attribution, strict=True):
        x0, y0 = salient_window(attr, side)
        where.append(f"{side} px window at x={x0}, y={y0}")
        tests.append(batch.add(paste(others, image, (x0, y0, side))))
        components.append(_isolate(image, _window_mask(height, width, (x0, y0, side))))
    window_plan = _Plan("window", where, tests, [batch.add(control_images)], components)
    plans.append(window_plan)

    # 2. detectors the trusted references never fire: where they fire in each seed's
    # image, that part is carried into the other classes' images
    if detectors is None:
        trusted, fired = np.zeros((1, 0)), np.zeros((len(images), 0))
        places = np.zeros((len(images), 0, 2))
    else:
        trusted, _ = detectors(references)
        fired, places = detectors(images)
    novelty = detector_novelty(trusted, fired)  # seeds × K
    side = max(2, round(short * PATCH_FRACTION))
    where, components, masks = [], [], []
    novel_tests: list[slice | None] = []
    for s_i, image in enumerate(images):
        top = [j for j in np.argsort(-novelty[s_i])[:NOVEL_CHANNELS] if novelty[s_i, j] >= NOVELTY]
        mask = np.zeros((height, width), bool)
        spots = []
        for j in top:
            cy, cx = places[s_i, j]
            y0 = int(np.clip(round(cy - side / 2), 0, height - side))
            x0 = int(np.clip(round(cx - side / 2), 0, width - side))
            mask[y0 : y0 + side, x0 : x0 + side] = True
            spots.append(f"x={x0 + side // 2}, y={y0 + side // 2}")
        masks.append(mask)
        ratio = float(novelty[s_i].max()) if novelty.shape[1] else 0.0
        if top:
            where.append(
                f"a detector {ratio:.0f}× stronger than on any trusted image, at "
                + "; ".join(dict.fromkeys(spots))
            )
        else:
            where.append(f"no detector beyond the trusted images' range (at most {ratio:.1f}×)")
        novel_tests.append(
            batch.add(np.where(mask[None, :, :, None], image[None], others)) if top else None
        )
        components.append(_isolate(image, mask))
    union = np.any(masks, axis=0)
    controls = [batch.add(np.where(union[None, :, :, None], pair, others))] if union.any() else []
    plans.append(
        _Plan(
            "unseen detail",
            where,
            novel_tests,
            controls,
            components,
            novelty.max(axis=1, initial=0.0),
        )
    )

    # 3. colour: each channel's mean moved to the source's
    tests = [batch.add(_recolour(others, image[None])) for image in images]
    controls = [batch.add(_recolour(others, pair))]
    means = [image.reshape(-1, image.shape[-1]).mean(axis=0) for image in images]
    where = ["colour cast: channel means " + ", ".join(f"{v:.0f}" for v in m) for m in means]
    components = [
        np.broadcast_to(_to_uint8(m), image.shape).copy()
        for m, image in zip(means, images, strict=True)
    ]
    plans.append(_Plan("colour", where, tests, controls, components))

    # 4. low frequencies: background, lighting, gradients; the details stay the target's
    sigma = max(1.0, short * BLUR_FRACTION)
    others_f = others.astype(np.float32)
    detail = others_f - _blur(others_f, sigma)
    low = _blur(images.astype(np.float32), sigma)
    tests = [batch.add(_to_uint8(detail + lo[None])) for lo in low]
    controls = [batch.add(_to_uint8(detail + _blur(pair.astype(np.float32), sigma)))]
    components = [_to_uint8(lo) for lo in low]
    where = [f"low frequencies (background, lighting; blur {sigma:.0f} px)"] * len(images)
    plans.append(_Plan("low frequencies", where, tests, controls, components))

    # The references alone: the same for every class of a model (the caller may remember
    # the call), so they are not part of this class's batch.
    read = predict(references)
    read_as = np.argmax(read, axis=1)
    if not read_by_model:  # model-read classes are read right by construction
        check_references_are_read(references, labels, read, rank_inputs)
    class_accuracy = float(np.mean(read_as[labels == index] == index))

    # 5. object-free edits: the bank screened once per model; this class's best ones are
    # measured again on every other-class reference
    screened = screen() if screen is not None else edits.screen(references, labels, predict, read)
    # not read by a margin on grey pictures given to a colour model: see unfit_for_margins
    unfit = unfit_for_margins(references)
    kept = [] if unfit else [screened.edits[e] for e in screened.best.get(index, [])]
    edit_tests = [batch.add(edit.apply(others, seed=k)) for k, edit in enumerate(kept)]
    needed = [screened.edits[e] for e in screened.needed.get(index, [])]
    needed_tests = [
        (batch.add(edit.apply(own, seed=k)), batch.add(edit.apply(others, seed=k)))
        for k, edit in enumerate(needed)
    ]

    probabilities = batch.predict(predict)
    predicted = np.argmax(probabilities, axis=1) if len(probabilities) else np.zeros(0, np.int64)
    evidence = []
    for plan in plans:
        flips = np.array(
            [0.0 if t is None else float(np.mean(predicted[t] == index)) for t in plan.tests]
        )
        control = max([float(np.mean(predicted[c] == index)) for c in plan.controls] or [0.0])
        control_what = "the same part of this class's own references"
        transplant_control = control
        if plan is window_plan:
            control_what = (
                f"the larger of the same transplant from this class's own references "
                f"({control:.2f}) and the model's accuracy on them ({class_accuracy:.2f})"
            )
            control = max(control, class_accuracy)  # see control_what for both numbers
            control_what += f", plus {WINDOW_ALLOWANCE:g} (a super-stimulus' window)"
            control = min(1.0, control + WINDOW_ALLOWANCE)
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
        found.examples = [] if test is None else list(batch.images(test)[:examples])
        found.component = plan.components[shown]
        evidence.append(found)
    if unfit:
        evidence.append(
            Evidence(
                "object-free edit", f"not measured: {unfit}", np.zeros(len(images)), 0.0,
                control_what="none (not measured)",
            )
        )  # fmt: skip
    else:
        evidence.append(
            _edit_evidence(
                kept, edit_tests, probabilities, index, screened, len(images), batch, examples
            )
        )
    evidence.append(
        _needed_evidence(
            needed, needed_tests, probabilities, index, class_accuracy, len(images), batch,
            examples, len(own),
        )
    )  # fmt: skip
    return ProbeResult(
        evidence=evidence,
        references_of_class=len(own),
        references_of_others=n_others,
        class_accuracy=class_accuracy,
        read_by_model=read_by_model,
    )


def _missing(index: int, own: int, total: int, read_by_model: bool) -> str:
    """Why the probe cannot run for class ``index``, and what to add."""
    if read_by_model:
        where = (
            f"its {total} references are photos whose classes the model reads (no class folders)"
        )
        if own == 0:
            return (
                f"the shortcut probe cannot run for class {index}: it compares the class's "
                f"own real images with other classes', and {where}: it reads none of them as "
                "this class. Add photos of this class to the folder (the model must read "
                "them as it), or use class subfolders; named suspects (assert_ignores) run "
                "without them"
            )
        return (
            f"the shortcut probe cannot run for class {index}: {where}, and it reads every "
            "one as this class; add photos of other things"
        )
    if own == 0:
        return (
            f"the shortcut probe cannot run for class {index}: it compares the class's own "
            f"real images with other classes', and none of the {total} references is of this "
            "class; add real images of it (a subfolder named after the class in "
            "--actaudit-references DIR, or in the actaudit_references fixture)"
        )
    return (
        f"the shortcut probe cannot run for class {index}: all {total} references are of "
        "this class; add real images of other classes"
    )


def unfit_for_margins(references: Images) -> str:
    """Why the object-free edits' readings cannot be measured against the model's margin
    on these references ("" if they can): most are grey pictures (R = G = B) in a colour
    model's input. A colour model reads grayscale photos less surely than its real
    images, so that yardstick shrinks while a plain edit on a grey picture tips a clean
    model's reading as far as ever (the demo's clean model reads a frame on grey shapes as
    a square more surely than the grey shapes themselves). The edit the class needs is
    read without a margin and is still measured: a colour cast that a grey reference needs
    is how a colour shortcut shows on grey references."""
    if references.ndim != 4 or references.shape[-1] != 3 or len(references) == 0:
        return ""
    grey = int(np.sum(edits.grey_images(references)))
    if 2 * grey < len(references):
        return ""
    return (
        f"{grey} of the {len(references)} references are grayscale pictures in a colour "
        "model's input: its margins on them are no yardstick of how clearly it reads real "
        "images (give colour references)"
    )


def _ranked(rank_inputs: RankInputs | None, references: Images, labels: NDArray[np.int64]) -> str:
    if rank_inputs is None:
        return ""
    ranked = rank_inputs(references, labels)
    return "; fed as each known setting would, they are read right: " + ", ".join(
        f"{option} = {value} {accuracy:.0%}" for option, value, accuracy in ranked
    )


def check_references_are_read(
    references: Images,
    labels: NDArray[np.int64],
    read: NDArray[np.float64],
    rank_inputs: RankInputs | None = None,
) -> None:
    """Every comparison with trusted references assumes the model reads them (``read``:
    its probabilities on them); near chance it would compare noise (and a wrong input
    range flags clean models). The error ranks the known input ranges and
    preprocessings by how well they read the references."""
    total = len(references)
    chance = 1.0 / max(int(read.shape[1]), 2)
    accuracy = int(np.sum(np.argmax(read, axis=1) == labels)) / total
    if accuracy < chance + MIN_REFERENCE_MARGIN * (1.0 - chance):
        from ..errors import ActauditError

        raise ActauditError(
            f"the model reads only {accuracy:.0%} of the {total} trusted references "
            f"correctly (chance is {chance:.0%}), so the shortcut probe cannot compare "
            "anything: the references are most likely fed in the wrong input range or "
            "preprocessing (set actaudit_input_range or actaudit_preprocess to what the model "
            "was trained on), or they are not images of the classes their folders name, or "
            "the model reads none of its classes from the object"
            + _ranked(rank_inputs, references, labels)
        )


def _edit_evidence(
    kept: Sequence[edits.Edit],
    tests: Sequence[slice],
    probabilities: NDArray[np.float64],
    index: int,
    screened: edits.Screen,
    seeds: int,
    batch: _Batch,
    examples: int,
) -> Evidence:
    """The best object-free edit's evidence: the share of other-class references it
    makes the model read as the class with at least ``MARGIN_FACTOR`` × the model's
    typical margin. Not per seed (the edit does not come from the images): every seed
    gets the same value, and the control is zero (the yardstick is in the share)."""
    bar = edits.MARGIN_FACTOR * screened.yardstick
    control_what = (
        f"none: a reading counts only with a margin ≥ {edits.MARGIN_FACTOR:g}× the "
        f"model's median margin on the trusted references ({bar:.1f} ≥ "
        f"{edits.MARGIN_FACTOR:g} × {screened.yardstick:.1f})"
    )
    if not kept:
        return Evidence(
            "object-free edit", "no edit screened", np.zeros(seeds), 0.0,
            control_what=control_what,
        )  # fmt: skip
    shares = [edits.confident_share(probabilities[t], index, screened.yardstick) for t in tests]
    best = int(np.argmax(shares))
    edit, test = kept[best], tests[best]
    read = float(np.mean(np.argmax(probabilities[test], axis=1) == index))
    where = f"{edit.description} (read as this class: {read:.0%}, {shares[best]:.0%} clearly)"
    shown = batch.images(test)
    height, width, channels = shown.shape[1:]
    grey = np.full((1, height, width, channels), 128, np.uint8)
    return Evidence(
        kind="object-free edit",
        where=where,
        flip_rates=np.full(seeds, shares[best]),
        control_rate=0.0,
        examples=list(shown[:examples]),
        component=edit.apply(grey)[0],
        control_what=control_what,
    )


def _needed_evidence(
    needed: Sequence[edits.Edit],
    tests: Sequence[tuple[slice, slice]],
    probabilities: NDArray[np.float64],
    index: int,
    class_accuracy: float,
    seeds: int,
    batch: _Batch,
    examples: int,
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
        reads.append(float(np.mean(np.argmax(probabilities[others_t], axis=1) == index)))
        right = float(np.mean(np.argmax(probabilities[own_t], axis=1) == index))
        rates.append(right if reads[-1] >= edits.NEEDED_OTHERS else class_accuracy)
    if not tests or max(rates) <= class_accuracy:
        return Evidence(
            kind="edit the class needs",
            where="no edit raises this class's own readings",
            flip_rates=np.full(seeds, class_accuracy),
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
    shown = batch.images(own_t)
    height, width, channels = shown.shape[1:]
    own_shown = list(shown[: examples // 2])
    others_shown = list(batch.images(others_t)[: examples // 2])
    grey = np.full((1, height, width, channels), 128, np.uint8)
    return Evidence(
        kind="edit the class needs",
        where=where,
        flip_rates=np.full(seeds, rates[best]),
        control_rate=class_accuracy,
        examples=own_shown + others_shown,
        component=edit.apply(grey)[0],
        control_what=control_what,
        flipped=flipped,
        example_captions=["this class, with the edit"] * len(own_shown)
        + ["another class, with the edit"] * len(others_shown),
    )


@dataclass
class _Plan:
    kind: str
    where: list[str]
    tests: Sequence[slice | None]
    controls: list[slice]
    components: list[Images]
    novelty: NDArray[np.float64] | None = None


def _recolour(targets: Images, sources: Images) -> Images:
    """``targets`` with each channel's mean moved to that of ``sources`` (one source
    for all, or one per target)."""
    t = targets.astype(np.float32)
    shift = sources.astype(np.float32).mean(axis=(-3, -2), keepdims=True)
    return _to_uint8(t - t.mean(axis=(-3, -2), keepdims=True) + shift)


def _window_mask(height: int, width: int, window: tuple[int, int, int]) -> NDArray[np.bool_]:
    x0, y0, side = window
    mask = np.zeros((height, width), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def _isolate(image: Images, mask: NDArray[np.bool_]) -> Images:
    """The image where ``mask`` holds, mid-grey elsewhere: the carried part, alone."""
    return np.where(mask[..., None], image, np.uint8(128)).astype(np.uint8)
