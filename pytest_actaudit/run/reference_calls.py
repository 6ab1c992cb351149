"""The runner's side of ``checks.model_calls``: the trusted references as ``References``
and ``EngineReferences``, the ``ReferenceSource`` a runner gives each audit — the model's
calls on the references made with its engine, the ones on the references themselves made
once per model. No pytest import; TensorFlow only through the engine given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..checks import edits
from ..checks.model_calls import Images, RankInputs, ReferenceContext
from ..checks.references import References

if TYPE_CHECKING:
    from .cache import ProbeCache, ResultCache

Classify = Callable[[Images], NDArray[np.int64]]
# what a runner is given as references: (images, class indices), or photos alone
GivenReferences = References | tuple[Any, Any] | NDArray[np.uint8]


class ModelInference(Protocol):
    """What the checks' calls need of the model on real images
    (``engine.inference.Inference``)."""

    def predict(self, images: Images) -> tuple[NDArray[Any], NDArray[Any]]: ...
    def attribution(self, images: Images, target: int) -> NDArray[Any]: ...
    def detectors(self, images: Images) -> tuple[NDArray[Any], NDArray[Any]]: ...


def as_references(references: GivenReferences, classify: Classify) -> References:
    """``references`` as ``References``: ``(images, class indices)`` as given, or one
    array of images, whose classes ``classify`` (the runner's model) reads."""
    from ..checks.references import read_by_model

    if isinstance(references, References):
        return references
    if isinstance(references, np.ndarray) and references.ndim == 4:
        return read_by_model(references, classify)
    try:
        images, labels = references
    except (TypeError, ValueError):
        raise ValueError(
            "references must be (images, class indices) — uint8 N × H × W × C and int N — "
            "or one uint8 N × H × W × C array of photos whose classes the model reads; got "
            f"{type(references).__name__}"
        ) from None
    return References(np.asarray(images), np.asarray(labels))


class ReferenceMemo:
    """Model calls on the trusted references, kept for the one references array they
    were made on (an identity check: a new array is a new call)."""

    def __init__(self) -> None:
        self._images: object = None
        self._results: dict[str, Any] = {}

    def wrap(
        self, name: str, call: Callable[[Any], Any], references: Images
    ) -> Callable[[Any], Any]:
        """``call``, remembered when it is made on ``references`` itself."""

        def remembered(images: Any) -> Any:
            if images is not references:
                return call(images)
            if self._images is not references:  # other references: forget the old ones
                self._images, self._results = references, {}
            if name not in self._results:
                self._results[name] = call(images)
            return self._results[name]

        return remembered


# (references, their labels) -> class index -> its trigger evidence (run.triggers)
TriggerSearches = Callable[[Any, Any], Callable[[int], Any]]


class EngineReferences:
    """What ``ClassAudit.shortcut_probe`` and ``assert_ignores`` ask for, on first use:
    the trusted references (``references()``: read then) and the model's predict,
    attribute and detectors (``inference``) and input ranking (``rank_inputs``, in the
    settings' words). The model's predictions and detectors on the
    references themselves, and the screening of the object-free edits on them, are made
    once per model (``memo``) and reused by every class's checks; with a
    result ``cache`` the probe's results are kept beside the images."""

    def __init__(
        self,
        inference: ModelInference,
        rank_inputs: RankInputs,
        references: Callable[[], GivenReferences],
        *,
        classify: Classify,
        memo: ReferenceMemo,
        cache: ResultCache | None = None,
        triggers: TriggerSearches | None = None,
    ) -> None:
        self._inference, self._rank_inputs = inference, rank_inputs
        self._triggers = triggers
        self._references, self._classify = references, classify
        self._memo = memo
        self._probes: ProbeCache | None = None
        if cache is not None:  # probe results are cached beside the images
            from .cache import ProbeCache

            self._probes = ProbeCache(cache)

    def context(self) -> ReferenceContext:
        inference = self._inference
        given = as_references(self._references(), self._classify)  # a bare photo array too
        images, labels = given
        remember = self._memo.wrap
        predict = remember("predict", lambda x: inference.predict(x)[1], images)
        remember_probe = None
        if self._probes is not None:
            from .cache import array_digest

            held = remember("digest", lambda x: array_digest(x, np.asarray(labels)), images)
            cache = self._probes

            def remember_probe(index: int, seeds: Any, attribution: Any, run: Any) -> Any:
                return cache.remember(held(images), index, seeds, attribution, run)

        triggers = None
        if self._triggers is not None:  # one search per references array, as the calls
            search = self._triggers
            triggers = remember("triggers", lambda x: search(x, labels), images)(images)
        return ReferenceContext(
            images,
            labels,
            predict,
            inference.attribution,
            remember("detectors", inference.detectors, images),
            self._rank_inputs,
            remember("edits", lambda x: edits.screen(x, labels, predict), images),
            bool(given.read_by_model),
            remember_probe,
            triggers,
        )
