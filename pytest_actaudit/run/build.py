"""One place builds a runner: ``RunnerRecipe`` holds all that a runner of one model is
built from, and ``build_runner`` makes it — with the input range or preprocessing that
reads the trusted references best when neither is set. Used by the pytest session and by
``pytest_actaudit.maximize`` alike, so both give the same images for the same settings.
No pytest import; TensorFlow is imported when a runner is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .runner import AuditRunner, choose_input

if TYPE_CHECKING:
    from ..checks.references import References
    from ..engine.loop import EngineSettings


@dataclass(frozen=True)
class RunnerRecipe:
    """Everything a runner of one model is built from but its input range and
    preprocessing, which may be chosen from the trusted references (``build_runner``)."""

    model: Any
    labels: str | list[str] | None = None
    model_path: str | None = None
    input_size: str | Sequence[int] | None = None
    size_source: str = "input_size"
    engine_settings: EngineSettings | None = None
    output: str | None = None
    progress: Callable[[str], None] | None = None
    cache_dir: str | None = None

    def make(
        self, input_range: str | None, preprocess: str | None, weights: str | None = None
    ) -> AuditRunner:
        """A runner with this input range and preprocessing (``weights``: the model's
        hash, already known)."""
        return AuditRunner(
            self.model,
            labels=self.labels,
            model_path=self.model_path,
            input_range=input_range,
            input_size=self.input_size,
            size_source=self.size_source,
            preprocess=preprocess,
            engine_settings=self.engine_settings,
            progress=self.progress,
            cache_dir=self.cache_dir,
            output=self.output,
            weights=weights,
        )


def build_runner(
    recipe: RunnerRecipe,
    input_range: str | None,
    preprocess: str | None,
    references: Callable[[AuditRunner], References | None] | None = None,
) -> tuple[AuditRunner, References | None]:
    """The runner of ``recipe`` with this input range and preprocessing; with neither set
    and ``references(runner)`` giving trusted references, the runner that reads them
    best (``choose_input``), and the references read (None when not read)."""
    runner = recipe.make(input_range, preprocess)
    if references is None or input_range or preprocess:
        return runner, None
    read = references(runner)
    if read is None:
        return runner, None
    return choose_input(runner, read, recipe.make), read
