"""The checks that need trusted references, as functions of one class's images and a
``ReferenceContext``: the shortcut probe's run and its check's wording, and a named
suspect's reading. numpy only; ``ClassAudit`` records their outcomes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ..errors import CheckNotRun
from .model_calls import ReferenceContext, ReferenceSource

if TYPE_CHECKING:
    from .artifacts import Artifact, ArtifactReading
    from .probe import ProbeResult


def fmt_list(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{float(v):.2f}" for v in values) + "]"


def context_of(source: ReferenceSource | None, label: str, check: str) -> ReferenceContext:
    """The trusted references and the model's calls on them, for ``check`` of class
    ``label``; an error says how to give references when the audit has none."""
    if source is None:
        raise ValueError(
            f"class {label!r}: {check} needs reference images; use "
            "the actaudit fixture with --actaudit-references DIR (or override the "
            "actaudit_references fixture)"
        )
    return source.context()


def run_probe(
    label: str,
    index: int,
    images: NDArray[np.uint8],
    attribution: NDArray[np.float32],
    context: ReferenceContext,
) -> ProbeResult:
    """The shortcut probe of class ``index`` (named ``label``) on its seeds' images, or
    the result the context keeps for them."""
    from .probe import probe

    attribute, screen = context.attribute, context.screen
    if attribute is None:
        raise ValueError(f"class {label!r}: no attribution maps were computed")

    def run() -> ProbeResult:
        return probe(
            index,
            images,
            attribution,
            context.references,
            context.labels,
            context.predict,
            attribute,
            context.detectors,
            rank_inputs=context.rank_inputs,
            screen=None if screen is None else lambda: screen(context.references),
            read_by_model=context.read_by_model,
        )

    remember = context.remember_probe
    try:
        result: ProbeResult = (
            run() if remember is None else remember(index, images, attribution, run)
        )
    except CheckNotRun as exc:  # say which class, by name
        raise CheckNotRun(
            f"class {label!r}: {str(exc).replace(f' for class {index}', '')}"
        ) from None
    return result


def shortcut_terms(
    result: ProbeResult, seeds: list[int]
) -> tuple[str, str, tuple[str, float] | None]:
    """The shortcut check's metric, its note (the strongest evidence named, the others'
    median excess, the model's accuracy on the class's references) and, when one seed
    decides alone, what decides and its value."""
    from .probe import DECISIVE_NOVELTY

    top = result.strongest
    others = "; ".join(
        f"{e.kind} {np.median(e.excess):+.2f}" for e in result.evidence if e is not top
    )
    flipped = top.flipped or f"{result.references_of_others} other-class references"
    note = (
        f"strongest evidence: {top.kind}, {top.describe()}: flips "
        f"{fmt_list(top.flip_rates)} of {flipped}, control {top.control_rate:.2f} "
        f"({top.control_what}); other "
        f"evidence (median excess): {others}; the model "
        f"reads {result.class_accuracy:.0%} of this class's {result.references_of_class} "
        "references correctly"
        + (
            " (by construction: the references' classes are the model's own readings, "
            "so their accuracy is not checked)"
            if result.read_by_model
            else ""
        )
    )
    decisive = top.deciding_seed
    verdict_by = None
    metric = f"excess flip rate ({top.kind}), median over seeds"
    if decisive is not None and top.novelty is not None:
        metric += " or a decisive seed"
        verdict_by = (
            f"seed {seeds[decisive]}: a detector "
            f"{float(top.novelty[decisive]):.0f}× beyond any trusted image, "
            f"≥ {DECISIVE_NOVELTY:g}×, counts alone",
            top.score,
        )
    return metric, note, verdict_by


def read_suspect(index: int, named: Artifact, context: ReferenceContext) -> ArtifactReading:
    """What the named suspect does to the references (refused first when the model does
    not read them right, unless their classes are its own readings)."""
    from .artifacts import measure
    from .probe import check_references_are_read

    references, labels, predict = context.references, context.labels, context.predict
    if not context.read_by_model:
        check_references_are_read(references, labels, predict(references), context.rank_inputs)
    return measure(index, named, references, labels, predict)
