"""The session's models: the configured model loaded once, one runner per model (built by
``build.build_runner``), the result cache's folder, and the trusted references read once
per model, with what the header and the terminal say about them."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ActauditError
from ..model.load import load_model, source_path
from ..settings import Settings
from . import xdist

if TYPE_CHECKING:
    from ..checks.references import References
    from ..run.runner import AuditRunner


class ActauditCacheWarning(pytest.PytestWarning):
    """The result cache's folder cannot be written: the run goes on without it."""


class ModelRunners:
    """One runner per model file (a parametrized fixture may load it more than once),
    else per model object; ``timings`` gets TensorFlow's import and the model's load."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        worker: str | None,
        timings: dict[str, float],
    ) -> None:
        self.config, self.settings, self.worker, self.timings = config, settings, worker, timings
        # key -> (runner, model): the model kept alive, so its id() stays unique
        self.built: dict[str | int, tuple[AuditRunner, Any]] = {}
        self._model: Any = None
        self._references: dict[int, References] = {}  # by id(model)
        self.reference_notes: list[str] = []  # what was read, for the terminal
        self.reference_warnings: list[str] = []  # files skipped, references converted
        self._cache_dir: str | None = None  # "" once known to be none

    def import_tensorflow(self) -> None:
        """Import TensorFlow now, timed, unless something imported it before."""
        if "tensorflow" not in sys.modules:
            began = time.perf_counter()
            import tensorflow  # noqa: F401

            self.timings["tensorflow_import_seconds"] += time.perf_counter() - began

    def configured_model(self) -> Any:
        """The model of --actaudit-model / ini actaudit_model, loaded once."""
        if self._model is None:
            if not self.settings.model:
                raise ActauditError(
                    "no model configured: pass --actaudit-model PATH, set actaudit_model in "
                    "the ini, or override the actaudit_model fixture in conftest.py"
                )
            self.import_tensorflow()
            began = time.perf_counter()
            self._model = load_model(self.settings.model, safe_mode=not self.settings.unsafe_load)
            self.timings["model_load_seconds"] += time.perf_counter() - began
        return self._model

    def cache_dir(self) -> str | None:
        """The result cache's folder, made once; None without the cache, or (with a
        warning) when the folder cannot be made or written: a read-only checkout runs,
        only slower."""
        if self._cache_dir is not None:
            return self._cache_dir or None
        self._cache_dir = ""
        if not self.settings.cache:
            return None
        cache = getattr(self.config, "cache", None)
        if self.settings.cache_dir:
            where = Path(self.settings.cache_dir)
        elif cache is not None:
            where = Path(getattr(cache, "_cachedir", self.config.getini("cache_dir"))) / "d"
            where = where / "actaudit"
        else:
            return None
        try:
            if self.settings.cache_dir or cache is None:
                where.mkdir(parents=True, exist_ok=True)
            else:
                where = Path(cache.mkdir("actaudit"))
            with tempfile.TemporaryFile(dir=where):
                pass  # can be written, not merely made
        except OSError as exc:
            # the runner (and its cache) may be made before any test, for the header
            self.config.issue_config_time_warning(
                ActauditCacheWarning(
                    f"actaudit: the result cache's folder {where} cannot be written "
                    f"({type(exc).__name__}: {exc}); running without the cache, so every "
                    "image is optimized again on each run. Point --actaudit-cache-dir "
                    "(ini actaudit_cache_dir) at a writable folder, or pass "
                    "--actaudit-no-cache to silence this"
                ),
                stacklevel=1,
            )
            return None
        self._cache_dir = str(where)
        return self._cache_dir

    def runner(self, model: Any) -> AuditRunner:
        """The runner of ``model``, built on first use."""
        key: str | int = source_path(model) or id(model)
        if key not in self.built:
            self.import_tensorflow()
            from ..engine.loop import EngineSettings
            from ..run.build import RunnerRecipe, build_runner

            s = self.settings
            verbose = self.config.getoption("verbose") > 0
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            recipe = RunnerRecipe(
                model,
                labels=s.labels,
                model_path=source_path(model),
                input_size=s.input_size,
                size_source="--actaudit-input-size / ini actaudit_input_size",
                output=s.output,
                engine_settings=EngineSettings(
                    device=xdist.worker_device(s.device, self.worker),
                    parametrization=s.parametrization,
                    stop_change=s.stop,
                    learning_rate=s.learning_rate,
                    max_batch=s.max_batch,
                    lanes=s.lanes,
                    # a lane holds the run's seeds of one class: none wasted
                    lane_width=s.seeds,
                ),
                progress=(lambda line: tr.write_line(line)) if verbose and tr else None,
                cache_dir=self.cache_dir(),
            )
            # No input setting but trusted references: read them the way that reads them
            # best (a model trained on caffe or [-1, 1] input says nothing itself).
            runner, refs = build_runner(
                recipe, s.input_range, s.preprocess, self._readable if s.references else None
            )
            if refs is not None:
                self._references[id(model)] = refs
                self._note_references(runner, refs)
            if self.worker:
                runner.meta["worker"] = self.worker
            self.built[key] = (runner, model)
        return self.built[key][0]

    def _readable(self, runner: AuditRunner) -> References | None:
        """The references to choose the input from; None when they cannot be read: that
        is said where references are used (the probe), not here."""
        try:
            return self._read_references(runner)
        except ActauditError:
            return None

    def _read_references(self, runner: AuditRunner) -> References:
        """The folder of --actaudit-references for ``runner``'s model: class subfolders,
        or a flat folder whose classes the model reads."""
        from ..checks.references import read_references

        return read_references(
            self.settings.references or "",
            runner.labels,
            runner.spec.shape,
            classify=runner.classify,
        )

    def _note_references(self, runner: AuditRunner, refs: References) -> None:
        """What the report header and the terminal say about the references read."""
        runner.meta["references"] = refs.describe()
        line = f"references: {refs.describe()}"
        if line not in self.reference_notes:
            self.reference_notes.append(line)
        for warning in refs.warnings():
            if warning not in self.reference_warnings:
                self.reference_warnings.append(warning)

    def references(self, model: Any) -> References:
        """The default references (a ``References``, unpacked as ``(images, labels)``):
        the folder of --actaudit-references, read once per model."""
        if id(model) not in self._references:
            if not self.settings.references:
                raise ActauditError(
                    "the shortcut probe and assert_ignores need reference images: pass "
                    "--actaudit-references DIR (ini actaudit_references; one subfolder per "
                    "class name, or a flat folder of photos whose classes the model reads) "
                    "or override the actaudit_references fixture in conftest.py"
                )
            runner = self.runner(model)
            if id(model) not in self._references:  # runner() may have read them already
                self._references[id(model)] = self._read_references(runner)
                self._note_references(runner, self._references[id(model)])
        return self._references[id(model)]
