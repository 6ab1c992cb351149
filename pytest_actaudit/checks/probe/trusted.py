"""What the trusted references must be for the probe to compare anything: read by the
model well above chance, with references of the class and of other classes."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ...errors import ActauditError
from .evidence import Images, RankInputs

# references read right at most this far from chance towards 100%: nothing to compare
MIN_REFERENCE_MARGIN = 0.25


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
        raise ActauditError(
            f"the model reads only {accuracy:.0%} of the {total} trusted references "
            f"correctly (chance is {chance:.0%}), so the shortcut probe cannot compare "
            "anything: the references are most likely fed in the wrong input range or "
            "preprocessing (set actaudit_input_range or actaudit_preprocess to what the model "
            "was trained on), or they are not images of the classes their folders name, or "
            "the model reads none of its classes from the object"
            + _ranked(rank_inputs, references, labels)
        )


def _ranked(rank_inputs: RankInputs | None, references: Images, labels: NDArray[np.int64]) -> str:
    if rank_inputs is None:
        return ""
    ranked = rank_inputs(references, labels)
    return "; fed as each known setting would, they are read right: " + ", ".join(
        f"{option} = {value} {accuracy:.0%}" for option, value, accuracy in ranked
    )


def missing(index: int, own: int, total: int, read_by_model: bool) -> str:
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
