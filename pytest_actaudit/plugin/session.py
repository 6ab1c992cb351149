"""The plugin object registered with ``--actaudit``: one runner per model, the session's
planned targets, audits turned into report records as tests finish, the report at the end."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .. import settings as settings_mod
from ..checks.audit import ClassAudit
from ..errors import ActauditError, CheckNotRun
from ..model import load_model, source_path
from ..settings import Settings
from . import finish, shards, xdist
from .items import ZeroCodeItem, classes_named, is_audit, zero_code_checks, zero_code_items
from .records import input_assumption, models_meta, run_stats


class ActauditCacheWarning(pytest.PytestWarning):
    """The result cache's folder cannot be written: the run goes on without it."""


class ActauditSession:
    """The plugin object registered with ``--actaudit``: one runner per model, the
    audits of finished tests as report records, and the report at session end.

    Under xdist each worker turns its audits into records (images on disk) as tests
    finish and writes them as JSON pieces; the controller merges the pieces and
    renders once. A worker that dies loses only the test it was running.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        from ..report.writer import ImageSink

        self.config = config
        self.settings = settings
        self.started = time.time()
        self.runners: dict[Any, Any] = {}
        self.pending: list[ClassAudit] = []
        self.records: list[dict[str, Any]] = []
        self.outcomes: dict[str, str] = {}
        self.planned: list[str | int] = []
        self.zero_code: list[str] = []  # the zero-code items' classes, once collected
        self.input_noted: set[str] = set()  # models whose assumed input the header said
        self.models: list[dict[str, Any]] = []  # every model's header, once the report is made
        self.report_path: Path | None = None
        self.worker, self.run_id, self.report_dir, self.report_error = xdist.run_folder(
            config, settings.report
        )
        self.sink = ImageSink(self.report_dir)
        self._model: Any = None
        self._pieces = xdist.Pieces(self.report_dir, self.run_id, self.worker)
        self._references: dict[Any, Any] = {}
        self.reference_notes: list[str] = []  # what was read, for the terminal
        self.reference_warnings: list[str] = []  # files skipped, references converted
        self._cache_dir: str | None = None  # "" once known to be none
        self.started_nodes: list[str] = []
        self.finished_nodes: set[str] = set()
        # the time split's parts this process measures itself (records.time_split)
        self.shard = shards.shard_from(settings.shard)
        self.shard_note = ""
        self.shard_deselected = 0
        self.summary: tuple[int, int] = (0, 0)  # (audits, failed) once the report is written
        self.summary_paths: list[Path] = []
        self.time_split = ""
        self.timings = dict.fromkeys(
            (
                "tensorflow_import_seconds",
                "model_load_seconds",
                "check_seconds",
                "probe_seconds",
                "report_seconds",
            ),
            0.0,
        )

    def _import_tensorflow(self) -> None:
        """Import TensorFlow now, timed, unless something imported it before."""
        if "tensorflow" not in sys.modules:
            began = time.perf_counter()
            import tensorflow  # noqa: F401

            self.timings["tensorflow_import_seconds"] += time.perf_counter() - began

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Capture output as pytest does around a test: TensorFlow's start-up lines
        (``E0000 … failed call to cuInit`` on a CPU machine) are C++ logs that no
        environment variable set this late silences, and outside a test (collection, the
        header) pytest's capture is off. Dropped, as a passing test's are."""
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is None or not capman.is_globally_capturing():
            yield
            return
        capman.resume_global_capture()
        try:
            yield
        finally:
            capman.suspend_global_capture(in_=False)
            capman.read_global_capture()

    def _stats(self) -> dict[str, float]:
        return {**run_stats(self.runners), **self.timings}

    # ------------------------------------------------------------ models, runners
    def configured_model(self) -> Any:
        """The model of --actaudit-model / ini actaudit_model, loaded once."""
        if self._model is None:
            if not self.settings.model:
                raise ActauditError(
                    "no model configured: pass --actaudit-model PATH, set actaudit_model in "
                    "the ini, or override the actaudit_model fixture in conftest.py"
                )
            self._import_tensorflow()
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

    def runner(self, model: Any) -> Any:
        # One runner per model file (a parametrized fixture may load it more than once),
        # else per model object.
        key: Any = source_path(model) or id(model)
        if key not in self.runners:
            self._import_tensorflow()
            from ..engine.loop import EngineSettings
            from ..runner import AuditRunner

            verbose = self.config.getoption("verbose") > 0
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            progress = (lambda line: tr.write_line(line)) if verbose and tr else None
            cache_dir = self.cache_dir()

            def make(
                input_range: str | None, preprocess: str | None, weights: str | None = None
            ) -> Any:
                return AuditRunner(
                    model,
                    labels=self.settings.labels,
                    model_path=source_path(model),
                    input_range=input_range,
                    input_size=self.settings.input_size,
                    preprocess=preprocess,
                    size_source="--actaudit-input-size / ini actaudit_input_size",
                    output=self.settings.output,
                    engine_settings=EngineSettings(
                        device=xdist.worker_device(self.settings.device, self.worker),
                        parametrization=self.settings.parametrization,
                        max_batch=self.settings.max_batch,
                        lanes=self.settings.lanes,
                        # a lane holds the run's seeds of one class: none wasted
                        lane_width=self.settings.seeds,
                    ),
                    progress=progress,
                    cache_dir=cache_dir,
                    weights=weights,
                )

            runner = make(self.settings.input_range, self.settings.preprocess)
            if self.settings.references and not (
                self.settings.input_range or self.settings.preprocess
            ):
                # No input setting but trusted references: read them the way that reads
                # them best (a model trained on caffe or [-1, 1] input says nothing itself).
                from ..runner import choose_input

                try:
                    refs = self._read_references(runner)
                except ActauditError:
                    pass  # said where references are used (the probe), not here
                else:
                    runner = choose_input(runner, refs, make)  # keeps it: read by the model
                    self._references[("references", id(model))] = refs
                    self._note_references(runner, refs)
            if self.worker:
                runner.meta["worker"] = self.worker
            self.runners[key] = (runner, model)  # keep the model alive: id() stays unique
        return self.runners[key][0]

    def _read_references(self, runner: Any) -> Any:
        """The folder of --actaudit-references for ``runner``'s model: class subfolders,
        or a flat folder whose classes the model reads."""
        from ..checks.references import read_references

        return read_references(
            self.settings.references or "",
            runner.labels,
            runner.spec.shape,
            classify=runner.classify,
        )

    def _note_references(self, runner: Any, refs: Any) -> None:
        """What the report header and the terminal say about the references read."""
        runner.meta["references"] = refs.describe()
        line = f"references: {refs.describe()}"
        if line not in self.reference_notes:
            self.reference_notes.append(line)
        for warning in refs.warnings():
            if warning not in self.reference_warnings:
                self.reference_warnings.append(warning)

    def references(self, model: Any) -> Any:
        """The default references (a ``References``, unpacked as ``(images, labels)``):
        the folder of --actaudit-references, read once per model."""
        key = ("references", id(model))
        if key not in self._references:
            if not self.settings.references:
                raise ActauditError(
                    "the shortcut probe and assert_ignores need reference images: pass "
                    "--actaudit-references DIR (ini actaudit_references; one subfolder per "
                    "class name, or a flat folder of photos whose classes the model reads) "
                    "or override the actaudit_references fixture in conftest.py"
                )
            runner = self.runner(model)
            if key not in self._references:  # runner() may have read them already
                self._references[key] = self._read_references(runner)
                self._note_references(runner, self._references[key])
        return self._references[key]

    def maximize(
        self,
        model: Any,
        target: str | int,
        settings: Settings,
        nodeid: str,
        references: Callable[[], tuple[Any, Any]] | None = None,
        layer: str | None = None,
    ) -> ClassAudit:
        """One audit for a test, recorded: a class (batched with the session's planned
        targets), or with ``layer``, a unit/filter of that layer."""
        runner = self.runner(model)
        audit: ClassAudit
        if layer is not None:
            (audit,) = runner.maximize_units(
                layer, [int(target)], seeds=settings.seeds, steps=settings.steps
            )
        else:
            audit = runner.maximize(
                target, seeds=settings.seeds, steps=settings.steps, planned=self.planned
            )
        audit.nodeid = nodeid
        get_references = references or (lambda: self.references(model))
        from ..runner import probe_context

        audit.probe_context = probe_context(runner, get_references)
        if settings.generate_baseline or settings.baseline:
            from ..checks.baseline import BaselineStore

            store = BaselineStore(
                settings.generate_baseline or settings.baseline or "",
                generate=bool(settings.generate_baseline),
            )
            audit.baseline_store = store
            if store.generate:
                store.write(audit)
        self.pending.append(audit)
        return audit

    # ------------------------------------------------------------------ collection
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        if self.settings.model and not all("::" in arg for arg in config.args):
            items.extend(zero_code_items(self, session))
        if self.shard is not None:  # before planning: the batch holds only what stays
            self.shard_note, self.shard_deselected = shards.deselect(
                self, config, items, self.shard
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Planned once every deselection (-k, -m, --lf, shards) is done: the batch holds
        # only the classes of the tests that will run.
        self.zero_code = [i.target for i in session.items if isinstance(i, ZeroCodeItem)]
        for item in session.items:
            marker = item.get_closest_marker("actaudit")
            if marker and marker.kwargs.get("classes"):
                self.planned.extend(settings_mod.class_list(marker.kwargs["classes"]))
            callspec = getattr(item, "callspec", None)
            # Under xdist a worker cannot know which items it will get: it batches
            # only what its tests ask for, so no class is optimized twice.
            if callspec is not None and is_audit(item) and not self.worker:
                self.planned.extend(
                    v for v in callspec.params.values() if isinstance(v, str) and not v.isdigit()
                )
            if isinstance(item, ZeroCodeItem) and not self.worker:
                self.planned.append(item.target)
        self.planned = list(dict.fromkeys(self.planned))

    # --------------------------------------------------------------------- running
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        if call.when == "call":  # each check's value and threshold, for JUnit XML
            for audit in self.pending:
                if audit.nodeid == item.nodeid:
                    for check in audit.checks:
                        item.user_properties.append(
                            (f"actaudit {audit.label} {check.name} {check.metric}", check.summary())
                        )
        outcome = yield
        if call.excinfo is not None and call.excinfo.errisinstance(CheckNotRun):
            # a check the references cannot support is no verdict on the model: skipped,
            # with the reason (never a pass, never a failure of the model)
            report = outcome.get_result()
            if report.failed and not hasattr(report, "wasxfail"):
                path, line, _ = item.reportinfo()
                report.outcome = "skipped"
                report.longrepr = (
                    str(path),
                    (line or 0) + 1,
                    f"actaudit: check not run: {call.excinfo.value}",
                )

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Pre-record every audit that starts: if it never ends (Ctrl-C, a dead xdist
        # worker), the report still shows it, as an error.
        if is_audit(item) or isinstance(item, ZeroCodeItem):
            self.started_nodes.append(item.nodeid)
            if self.worker:
                self._write_piece([], started=[item.nodeid])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcomes.get(report.nodeid)
            if previous in (None, "passed"):
                outcome: str = report.outcome
                if hasattr(report, "wasxfail"):
                    outcome = "xpassed" if report.passed else "xfailed"
                elif report.when != "call" and report.failed:
                    outcome = "error"
                self.outcomes[report.nodeid] = outcome
        if report.when == "teardown":
            self.finished_nodes.add(report.nodeid)
            self._flush()

    def _flush(self) -> None:
        """Turn finished audits into records now (images written): nothing is lost if
        the session stops later."""
        from ..report.writer import audit_record

        pending, self.pending = self.pending, []
        if not pending:
            return
        began = time.perf_counter()
        fresh = []
        for audit in pending:
            self.timings["check_seconds"] += audit.check_seconds
            self.timings["probe_seconds"] += audit.probe_seconds
            record = audit_record(audit, self.sink)
            record["test_outcome"] = self.outcomes.get(audit.nodeid, "unknown")
            fresh.append(record)
        self.records.extend(fresh)
        self.timings["report_seconds"] += time.perf_counter() - began
        if self.worker:
            self._write_piece(fresh)

    def _write_piece(self, records: list[dict[str, Any]], started: Sequence[str] = ()) -> None:
        self._pieces.write(
            records,
            started,
            sorted(self.finished_nodes),
            models_meta(self.runners),
            self._stats(),
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        xdist.configure_node(node, self.run_id, self.report_dir)

    # ---------------------------------------------------------------------- report
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._flush()
        if self.worker:
            self._write_piece([])  # final stats of this worker
            return
        finish.write_session_report(self)
        if self.shard is not None and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            # a shard whose audits all belong to other shards has nothing to do: not a
            # failure of the CI job (more shards than classes). Under xdist the workers
            # collect and deselect; the controller only sees that nothing ran.
            session.exitstatus = pytest.ExitCode.OK
            self.shard_note = (
                self.shard_note or f"shard {self.shard}: other shards' audit items deselected"
            ) + "; nothing left for this shard (more shards than audits?)"

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from ..checks.references import layout

        s = self.settings
        lines = [
            f"actaudit: model={s.model or '(actaudit_model fixture)'} seeds={s.seeds} "
            f"steps={s.steps} device={s.device} report={self.report_dir}"
            + (f" shard={s.shard}" if s.shard else "")
            + (f" references={s.references} ({layout(s.references)})" if s.references else "")
        ]
        said = self.input_note()
        if said:
            lines.append(f"actaudit: {said}")
        return lines

    def input_note(self) -> str:
        """What the configured model's input is taken to be, when nothing set it and the
        model does not say (no leading Rescaling layer): a wrong guess makes every check
        lie. Loads the model (it is needed next, by collection or the first test); an
        error here is said where the model is used, not in the header."""
        s = self.settings
        # an xdist controller runs no test: it would load TensorFlow for this line only
        controller = self.config.pluginmanager.has_plugin("dsession")
        if not s.model or s.input_range or s.preprocess or controller:
            return ""
        try:
            with self.quiet():
                runner = self.runner(self.configured_model())
        except ActauditError:
            return ""
        self.input_noted.add(runner.meta["name"])
        return input_assumption(runner.meta)

    def pytest_report_collectionfinish(
        self, config: pytest.Config, items: Sequence[pytest.Item]
    ) -> list[str]:
        """Before anything is optimized: how much will be, and why zero-code items are
        absent when they are."""
        s = self.settings
        lines = []
        if self.zero_code:
            checks = ", ".join(zero_code_checks(s)) or "none: images only, items skipped"
            lines.append(
                f"actaudit: {len(self.zero_code)} zero-code audit(s) of {s.model} "
                f"(checks: {checks})"
            )
        elif s.model and not self.worker and not (zero_code_checks(s) or classes_named(config)):
            lines.append(
                f"actaudit: no zero-code audits of {s.model}: no threshold key is set (e.g. "
                "actaudit_min_probability) and actaudit_classes names no class; its classes "
                "are audited only by the tests that ask for them"
            )
        if self.planned:
            shown = ", ".join(map(str, self.planned[:8])) + (" …" if len(self.planned) > 8 else "")
            n = len(self.planned)
            # the tests' string parameters are candidates: one that names no class of
            # its model (a model's name, say) is left out when the model is known
            lines.append(
                f"actaudit: up to {n} class{'es' if n != 1 else ''} planned for one batch "
                f"({shown}): up to {n * s.seeds} image{'s' if n * s.seeds != 1 else ''} of "
                f"{s.steps} steps to optimize, less the cache's hits and the names that are no "
                "class of their model"
            )
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.reference_notes:
            terminalreporter.write_line(f"actaudit: {line}")
        for line in self.reference_warnings:
            terminalreporter.write_line(f"actaudit: warning: {line}", yellow=True)
        finish.terminal_summary(self, terminalreporter)
