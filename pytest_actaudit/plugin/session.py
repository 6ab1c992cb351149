"""The plugin object registered with ``--actaudit``: one runner per model (``runners``),
the session's planned targets, audits turned into report records as tests finish, the
report at the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .. import settings as settings_mod
from ..checks.audit import ClassAudit
from ..errors import ActauditError, CheckNotRun
from ..settings import Settings
from . import finish, header, shards, xdist
from .items import ZeroCodeItem, is_audit, zero_code_items
from .records import input_assumption, models_meta, run_stats
from .runners import ActauditCacheWarning, ModelRunners

if TYPE_CHECKING:
    from ..checks.references import References
    from ..run.reference_calls import GivenReferences
    from ..run.runner import AuditRunner

__all__ = ["ActauditCacheWarning", "ActauditSession"]


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
        self.pieces = xdist.Pieces(self.report_dir, self.run_id, self.worker)
        self.started_nodes: list[str] = []
        self.finished_nodes: set[str] = set()
        self.shard = shards.shard_from(settings.shard)
        self.shard_note = ""
        self.shard_deselected = 0
        self.summary: tuple[int, int] = (0, 0)  # (audits, failed) once the report is written
        self.summary_paths: list[Path] = []
        self.time_split = ""
        # the time split's parts this process measures itself (records.time_split)
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
        self.runners = ModelRunners(config, settings, self.worker, self.timings)

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

    def stats(self) -> dict[str, float]:
        return {**run_stats(self.runners.built), **self.timings}

    def models_meta(self) -> list[dict[str, Any]]:
        return models_meta(self.runners.built)

    # ------------------------------------------------------------ models, runners
    def configured_model(self) -> Any:
        """The model of --actaudit-model / ini actaudit_model, loaded once."""
        return self.runners.configured_model()

    def runner(self, model: Any) -> AuditRunner:
        return self.runners.runner(model)

    def references(self, model: Any) -> References:
        """The default references: the folder of --actaudit-references, read once per
        model."""
        return self.runners.references(model)

    def class_audit(
        self,
        model: Any,
        target: str | int,
        settings: Settings,
        nodeid: str,
        references: Callable[[], GivenReferences] | None = None,
        layer: str | None = None,
    ) -> ClassAudit:
        """One audit for a test, recorded: a class (batched with the session's planned
        targets), or with ``layer``, a unit/filter of that layer."""
        from ..run.runner import AuditLinks

        runner = self.runner(model)
        store = None
        if settings.generate_baseline or settings.baseline:
            from ..checks.baseline import BaselineStore

            store = BaselineStore(
                settings.generate_baseline or settings.baseline or "",
                generate=bool(settings.generate_baseline),
            )
        links = AuditLinks(nodeid, references or (lambda: self.references(model)), store)
        audit: ClassAudit
        if layer is not None:
            (audit,) = runner.unit_audits(
                layer, [int(target)], seeds=settings.seeds, steps=settings.steps, links=links
            )
        else:
            audit = runner.class_audit(
                target,
                seeds=settings.seeds,
                steps=settings.steps,
                planned=self.planned,
                links=links,
            )
        if store is not None and store.generate:
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
        self.pieces.write(
            records, started, sorted(self.finished_nodes), self.models_meta(), self.stats()
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
        lines = [header.settings_line(self.settings, self.report_dir)]
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
        return header.collection_lines(
            self.settings, config, self.zero_code, self.planned, bool(self.worker)
        )

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.runners.reference_notes:
            terminalreporter.write_line(f"actaudit: {line}")
        for line in self.runners.reference_warnings:
            terminalreporter.write_line(f"actaudit: warning: {line}", yellow=True)
        finish.terminal_summary(self, terminalreporter)
