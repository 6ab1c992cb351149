"""The trigger search wired to a runner: the engine's search
(:mod:`pytest_actaudit.engine.trigger`) over the audited classes and the model's null
classes, once per model and references, judged by :mod:`pytest_actaudit.checks.trigger`.

The first class asked for searches, in one batch, every class the runner has audited so
far (a session's planned batch: all its classes), with the null: every other class of a
small model, or a fixed random sample of ``checks.trigger.NULL_CLASSES`` of a large one.
A class asked for later is searched alone and judged against the same null. With the
runner's result cache, each class's trigger is kept beside the images (key: the image
cache's prefix, the search's code and settings, the references' content, the class): a
rerun on an unchanged model and references searches nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import trigger as judge
from .cache import array_digest, entry_path, read_npz, write_npz

EXAMPLES = 3  # real images shown with the trigger


SCALARS = ("mask_size", "success", "held_out", "held_out_rise", "seconds")
FIELDS = ("mask", "pattern", "images", *SCALARS)


class TriggerCache:
    """Each class's trigger as one ``.npz`` beside the cached images; an entry that
    cannot be read is searched again, never trusted."""

    def __init__(self, results: Any, settings: Any, images: Any, labels: Any) -> None:
        from ..engine import trigger as engine

        code = hashlib.sha256(Path(str(engine.__file__)).read_bytes()).hexdigest()
        self.folder = Path(results.folder) / "trigger"
        self.prefix = (
            f"{results.prefix}|{code}|{json.dumps(settings.to_dict(), sort_keys=True)}|"
            f"{array_digest(images, labels)}"
        )

    def _path(self, index: int) -> Path:
        return entry_path(self.folder, f"{self.prefix}|{index}")

    def get(self, index: int) -> Any:
        from ..engine.trigger import Trigger

        values = read_npz(self._path(index), FIELDS)  # one that cannot be read: search again
        if values is None:
            return None
        scalars = {k: float(values[k]) for k in SCALARS}
        return Trigger(
            target=index, mask=values["mask"], pattern=values["pattern"],
            images=values["images"], **scalars,
        )  # fmt: skip

    def put(self, trigger: Any) -> None:
        write_npz(self._path(trigger.target), {k: getattr(trigger, k) for k in FIELDS})


class TriggerMemo:
    """Triggers found for one model and one set of references, by class index."""

    def __init__(
        self, search: Any, images: Any, labels: Any, n_classes: int, cache: Any = None
    ) -> None:
        self.search = search  # an engine.trigger.TriggerSearch
        self.images = np.asarray(images)
        self.labels = np.asarray(labels)
        self.n_classes = n_classes
        self.cache: TriggerCache | None = cache
        self.found: dict[int, Any] = {}  # class index -> engine.trigger.Trigger
        self.null: list[int] = []

    def evidence(self, index: int, audited: Sequence[int]) -> judge.TriggerEvidence:
        """The trigger evidence of class ``index``; ``audited``: classes to search with it
        when this is the model's first search."""
        if not self.found:
            self.null = judge.null_classes(self.n_classes, [index, *audited])
            self._search(self.null)
        elif index not in self.found:
            self._search([index])
        classes = list(dict.fromkeys([*self.null, index]))
        edits = {k: judge.Edit(self.found[k].mask_size, self.found[k].held_out) for k in classes}
        reading = judge.read(edits, index)
        return _evidence(reading, self.found[index])

    def _search(self, classes: Sequence[int]) -> None:
        missing = []
        for k in classes:
            kept = self.cache.get(k) if self.cache is not None else None
            if kept is None:
                missing.append(k)
            else:
                self.found[k] = kept
        if not missing:
            return
        for trigger in self.search.run(self.images, self.labels, missing):
            self.found[trigger.target] = trigger
            if self.cache is not None:
                self.cache.put(trigger)


def _evidence(reading: judge.TriggerReading, trigger: Any) -> judge.TriggerEvidence:
    originals = trigger.images[:EXAMPLES]
    return judge.TriggerEvidence(
        reading=reading,
        picture=judge.trigger_picture(trigger.mask, trigger.pattern),
        mask=np.asarray(np.round(255.0 * trigger.mask), np.uint8),
        examples=trigger.stamped(originals),
        originals=originals,
        success=trigger.success,
        seconds=trigger.seconds,
    )


def trigger_context(runner: Any, images: Any, labels: Any) -> Callable[[int], Any]:
    """``ReferenceContext.triggers`` for ``runner``'s model and these references: one
    search, made on the first class's check and shared by every later one (the runner's
    ``ReferenceMemo`` keeps this per references array, as it keeps the model's calls)."""
    memo: TriggerMemo | None = None

    def evidence(index: int) -> judge.TriggerEvidence:
        nonlocal memo
        if memo is None:
            from ..engine.trigger import TriggerSearch, TriggerSettings

            settings = TriggerSettings()
            search = TriggerSearch(runner.model, runner.spec, settings)
            cache = None
            if runner.cache is not None:
                cache = TriggerCache(runner.cache, settings, images, labels)
            memo = TriggerMemo(search, images, labels, len(runner.labels), cache)
        return memo.evidence(int(index), runner.audited_classes())

    return evidence
