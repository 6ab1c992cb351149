"""pytest wiring only: options, ini keys, the marker, fixtures, skipping, report
hooks. The work is done by ``runner`` (engine), ``audit`` (checks) and ``report``.

Importing this module must not import TensorFlow: every pytest run in a model
repository loads it, with or without ``--actaudit``.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from . import settings as settings_mod
from .audit import AuditFailure, ClassAudit
from .errors import ActauditError
from .model import load_model, source_path
from .settings import Settings

SKIP_REASON = "pass --actaudit to run activation audits"
SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey["ActauditSession"]()
MARKER_HELP = (
    "actaudit(**settings): an activation audit; keyword arguments override the command line "
    "and ini for this test ("
    + ", ".join(f"{key}=" for key in settings_mod.MARKER_KEYS)
    + "); session-wide settings (device, lanes, preprocessing, ...) are options, not marker "
    "arguments"
)


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a settings parser as an argparse ``type=``: its message names the bad value."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


OPTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    # (command line, ini key or "", argparse kwargs, help)
    ("--actaudit", "", {"action": "store_true"}, "enable activation audits"),
    (
        "--actaudit-model",
        "actaudit_model",
        {"metavar": "PATH"},
        "model file (.keras, .h5 or SavedModel folder) for the actaudit_model fixture",
    ),
    (
        "--actaudit-labels",
        "actaudit_labels",
        {"metavar": "PATH"},
        "class names, one per line or a JSON list (default: labels.txt beside the model)",
    ),
    (
        "--actaudit-classes",
        "actaudit_classes",
        {"metavar": "LIST", "type": _argtype(settings_mod.class_list)},
        "'all', or class names/indices, comma separated (which classes zero-code audits cover)",
    ),
    (
        "--actaudit-seeds",
        "actaudit_seeds",
        {
            "metavar": "N",
            "type": _argtype(lambda v: settings_mod.positive_int(v, "--actaudit-seeds")),
        },
        f"random starts per class (default {settings_mod.DEFAULT_SEEDS})",
    ),
    (
        "--actaudit-steps",
        "actaudit_steps",
        {
            "metavar": "N",
            "type": _argtype(lambda v: settings_mod.positive_int(v, "--actaudit-steps")),
        },
        f"gradient-ascent steps (default {settings_mod.DEFAULT_STEPS})",
    ),
    (
        "--actaudit-report",
        "actaudit_report",
        {"metavar": "DIR"},
        f"report folder (default {settings_mod.DEFAULT_REPORT})",
    ),
    (
        "--actaudit-self-contained",
        "actaudit_self_contained",
        {"action": "store_true", "default": None},
        "inline the images into index.html (one file to share)",
    ),
    (
        "--actaudit-baseline",
        "actaudit_baseline",
        {"metavar": "DIR"},
        "compare against stored baseline images (assert_matches_baseline)",
    ),
    (
        "--actaudit-generate-baseline",
        "",
        {"metavar": "DIR"},
        "write every audit's images and metrics as the new baseline instead of comparing",
    ),
    (
        "--actaudit-device",
        "actaudit_device",
        {"metavar": "auto|cpu|gpu|gpu:N", "type": _argtype(settings_mod.device)},
        "where to optimize (default auto: the first visible GPU, else CPU)",
    ),
    (
        "--actaudit-no-cache",
        "actaudit_cache",
        {"action": "store_false", "dest": "actaudit_cache", "default": None},
        "disable the result cache in .pytest_cache (ini actaudit_cache = false)",
    ),
    (
        "--actaudit-references",
        "actaudit_references",
        {"metavar": "DIR"},
        "sample images per class (one subfolder per class) for the shortcut probe",
    ),
    (
        "--actaudit-output",
        "actaudit_output",
        {"metavar": "NAME"},
        "the classifier output of a multi-output model, by the name of its layer",
    ),
    (
        "--actaudit-input-range",
        "actaudit_input_range",
        {"metavar": "0-255|0-1|-1-1|LOW,HIGH"},
        "the model's input value range (default: 0-255 after a leading Rescaling/Normalization "
        "layer, else 0-1)",
    ),
    (
        "--actaudit-preprocess",
        "actaudit_preprocess",
        {
            "metavar": "P",
            "type": _argtype(lambda v: settings_mod.preprocess(v, "--actaudit-preprocess")),
        },
        "preprocessing done outside the model: caffe, tf, torch (keras.applications modes), "
        "mean=R,G,B[,std=R,G,B][,bgr] in 0-255 units, or module:function",
    ),
    (
        "--actaudit-input-size",
        "actaudit_input_size",
        {
            "metavar": "H,W",
            "type": _argtype(lambda v: settings_mod.input_size(v, "--actaudit-input-size")),
        },
        "the size to optimize at for a model whose input size is not fixed (a fully "
        "convolutional one); references are resized to it",
    ),
    (
        "--actaudit-parametrization",
        "actaudit_parametrization",
        {"metavar": "fourier|pixel", "type": _argtype(settings_mod.parametrization)},
        "what the optimizer changes: a 1/f-scaled spectrum (default) or the pixels",
    ),
    (
        "--actaudit-max-batch",
        "actaudit_max_batch",
        {
            "metavar": "N|auto",
            "type": _argtype(lambda v: settings_mod.auto_or_positive(v, "--actaudit-max-batch")),
        },
        "images optimized together at most (default auto: from the model's activation "
        "sizes and the memory available; the report header shows the bound)",
    ),
    (
        "--actaudit-lanes",
        "actaudit_lanes",
        {
            "metavar": "N|auto",
            "type": _argtype(lambda v: settings_mod.auto_or_positive(v, "--actaudit-lanes", 2)),
        },
        "independent loops a batch runs as, at the same time (default auto: 2 on a CPU "
        "with 2 or more cores per xdist worker, 1 on a GPU)",
    ),
]
INI_ONLY = [
    ("actaudit_min_probability", "zero-code audits: min probability of every seed's image"),
    ("actaudit_min_logit", "zero-code audits: min logit of every seed's image"),
    ("actaudit_min_consistency", "zero-code audits: min cross-seed SSIM"),
    ("actaudit_focus_exclude", "zero-code audits: region for assert_focus, e.g. border:6"),
    ("actaudit_max_focus_share", "zero-code audits: max attribution share in that region"),
    ("actaudit_min_baseline_similarity", "zero-code audits: min SSIM with the baseline"),
    ("actaudit_max_flip_rate", "zero-code audits: max excess flip rate of the shortcut probe"),
    ("actaudit_unsafe_load", "load models with Keras safe mode off (only for files you trust)"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("actaudit", "activation audits (class maximization)")
    for flag, ini, kwargs, help_text in OPTIONS:
        options = dict(kwargs)
        dest = options.pop("dest", flag.lstrip("-").replace("-", "_"))
        group.addoption(flag, dest=dest, help=help_text, **options)
        if ini:
            parser.addini(ini, help_text, default=None)
    for ini, help_text in INI_ONLY:
        parser.addini(ini, help_text, default=None)


def _cli_and_ini(config: pytest.Config) -> tuple[dict[str, Any], dict[str, Any]]:
    cli: dict[str, Any] = {}
    ini: dict[str, Any] = {}
    for flag, ini_name, _, _ in OPTIONS:
        if flag == "--actaudit":
            continue
        name = flag.removeprefix("--actaudit-").replace("-", "_")
        if flag == "--actaudit-no-cache":
            name = "cache"
            cli[name] = config.getoption("actaudit_cache")
        else:
            cli[name] = config.getoption(flag.lstrip("-").replace("-", "_"))
        if ini_name:
            value = config.getini(ini_name)
            ini[name] = value if value not in (None, "", []) else None
    for ini_name, _ in INI_ONLY:
        value = config.getini(ini_name)
        ini[ini_name.removeprefix("actaudit_")] = value if value not in (None, "", []) else None
    if cli.get("self_contained") is False:
        cli["self_contained"] = None
    return cli, ini


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    cli, ini = _cli_and_ini(config)
    try:
        settings = settings_mod.resolve(cli, ini, enabled=bool(config.getoption("actaudit")))
    except ValueError as exc:
        raise pytest.UsageError(f"actaudit: {exc}") from None
    if settings.enabled and settings.model and not Path(settings.model).exists():
        raise pytest.UsageError(
            f"actaudit: model file not found: {settings.model!r} (from --actaudit-model or "
            f"ini actaudit_model, relative to {os.getcwd()!r})"
        )
    wants_baseline = settings.enabled and settings.baseline and not settings.generate_baseline
    if wants_baseline and not Path(str(settings.baseline)).is_dir():
        raise pytest.UsageError(
            f"actaudit: baseline folder not found: {settings.baseline!r}; make one with "
            f"pytest --actaudit --actaudit-generate-baseline {settings.baseline}"
        )
    if settings.enabled and settings.device.startswith("gpu"):
        # Checked before any test runs (this imports TensorFlow, only for gpu requests).
        from .engine.maximize import device_name

        try:
            device_name(settings.device)
        except ActauditError as exc:
            raise pytest.UsageError(f"actaudit: {exc}") from None
    config.stash[SETTINGS_KEY] = settings
    if settings.enabled:
        session = ActauditSession(config, settings)
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "actaudit-session")


def _is_audit(item: pytest.Item) -> bool:
    return item.get_closest_marker("actaudit") is not None or "actaudit" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SETTINGS_KEY].enabled:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _is_audit(item):
            item.add_marker(skip)


class ActauditSession:
    """The plugin object registered with ``--actaudit``: one runner per model, the
    audits of finished tests as report records, and the report at session end.

    Under xdist each worker turns its audits into records (images on disk) as tests
    finish and writes them as JSON pieces; the controller merges the pieces and
    renders once. A worker that dies loses only the test it was running.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        from .report.writer import ImageSink

        self.config = config
        self.settings = settings
        self.started = time.time()
        self.runners: dict[Any, Any] = {}
        self.pending: list[ClassAudit] = []
        self.records: list[dict[str, Any]] = []
        self.outcomes: dict[str, str] = {}
        self.planned: list[str | int] = []
        self.zero_code: list[str] = []
        self.report_path: Path | None = None
        workerinput = getattr(config, "workerinput", None)
        self.worker: str | None = workerinput["workerid"] if workerinput else None
        if workerinput and "actaudit_run" in workerinput:
            self.run_id = workerinput["actaudit_run"]
            self.report_dir = Path(workerinput["actaudit_report_dir"])
            self.report_error: str | None = None
        else:
            self.run_id = uuid.uuid4().hex[:12]
            self.report_dir, self.report_error = _writable_folder(Path(settings.report))
        self.sink = ImageSink(self.report_dir)
        self._model: Any = None
        self._pieces = 0
        self._references: dict[Any, Any] = {}
        self.started_nodes: list[str] = []
        self.finished_nodes: set[str] = set()

    # ------------------------------------------------------------ models, runners
    def configured_model(self) -> Any:
        """The model of --actaudit-model / ini actaudit_model, loaded once."""
        if self._model is None:
            if not self.settings.model:
                raise ActauditError(
                    "no model configured: pass --actaudit-model PATH, set actaudit_model in "
                    "the ini, or override the actaudit_model fixture in conftest.py"
                )
            self._model = load_model(self.settings.model, safe_mode=not self.settings.unsafe_load)
        return self._model

    def runner(self, model: Any) -> Any:
        # One runner per model file (a parametrized fixture may load it more than once),
        # else per model object.
        key: Any = source_path(model) or id(model)
        if key not in self.runners:
            from .engine.maximize import EngineSettings
            from .runner import AuditRunner

            verbose = self.config.getoption("verbose") > 0
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            progress = (lambda line: tr.write_line(line)) if verbose and tr else None
            cache_dir = None
            if self.settings.cache and getattr(self.config, "cache", None) is not None:
                cache_dir = str(self.config.cache.mkdir("actaudit"))

            def make(input_range: str | None, preprocess: str | None) -> Any:
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
                        device=self.settings.device,
                        parametrization=self.settings.parametrization,
                        max_batch=self.settings.max_batch,
                        lanes=self.settings.lanes,
                    ),
                    progress=progress,
                    cache_dir=cache_dir,
                )

            runner = make(self.settings.input_range, self.settings.preprocess)
            if self.settings.references and not (
                self.settings.input_range or self.settings.preprocess
            ):
                # No input setting but trusted references: read them the way that reads
                # them best (a model trained on caffe or [-1, 1] input says nothing itself).
                from .references import read_references
                from .runner import choose_input

                try:
                    refs = read_references(
                        self.settings.references, runner.labels, runner.spec.shape
                    )
                except ActauditError:
                    pass  # said where references are used (the probe), not here
                else:
                    runner = choose_input(runner, refs, make)
                    self._references[("references", id(model))] = refs
            self.runners[key] = (runner, model)  # keep the model alive: id() stays unique
        return self.runners[key][0]

    def references(self, model: Any) -> tuple[Any, Any]:
        """The default references: the folder of --actaudit-references, read once."""
        key = ("references", id(model))
        if key not in self._references:
            from .references import read_references

            if not self.settings.references:
                raise ActauditError(
                    "the shortcut probe needs reference images: pass --actaudit-references "
                    "DIR (ini actaudit_references; one subfolder per class name) or override "
                    "the actaudit_references fixture in conftest.py"
                )
            runner = self.runner(model)
            self._references[key] = read_references(
                self.settings.references, runner.labels, runner.spec.shape
            )
        images, labels = self._references[key]
        return images, labels

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
        from .runner import probe_context

        audit.probe_context = probe_context(runner, get_references)
        if settings.generate_baseline or settings.baseline:
            from .baseline import BaselineStore

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
        for item in items:
            marker = item.get_closest_marker("actaudit")
            if marker and marker.kwargs.get("classes"):
                self.planned.extend(settings_mod.class_list(marker.kwargs["classes"]))
            callspec = getattr(item, "callspec", None)
            # Under xdist a worker cannot know which items it will get: it batches
            # only what its tests ask for, so no class is optimized twice.
            if callspec is not None and _is_audit(item) and not self.worker:
                self.planned.extend(
                    v for v in callspec.params.values() if isinstance(v, str) and not v.isdigit()
                )
        if self.settings.model and not all("::" in arg for arg in config.args):
            zero_code = self._zero_code_items(session)
            items.extend(zero_code)
            if not self.worker:
                self.planned.extend(item.target for item in zero_code)
        self.planned = list(dict.fromkeys(self.planned))

    def _zero_code_items(self, session: pytest.Session) -> list[ZeroCodeItem]:
        # Load the model and resolve labels and classes now: a missing, corrupt or unsafe
        # file, mismatched labels or an unknown class is a usage error before any test.
        model_path = str(self.settings.model)
        try:
            runner = self.runner(self.configured_model())
            indices = [runner.resolve(c) for c in self.settings.classes] or range(
                len(runner.labels)
            )
        except ActauditError as exc:
            raise pytest.UsageError(f"actaudit: {exc}") from None
        if self.settings.focus_exclude:
            from .regions import region_mask

            height, width = runner.spec.shape[:2]
            try:
                region_mask(self.settings.focus_exclude, height, width)
            except ValueError as exc:
                raise pytest.UsageError(
                    f"actaudit: actaudit_focus_exclude: {exc} (the model's input is "
                    f"{height}×{width})"
                ) from None
        classes = [runner.labels[i] for i in indices]
        parent = AuditCollector.from_parent(session, name="actaudit", nodeid="actaudit")
        return [
            ZeroCodeItem.from_parent(parent, name=f"{model_path}::{name}", target=name)
            for name in classes
        ]

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
        yield

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Pre-record every audit that starts: if it never ends (Ctrl-C, a dead xdist
        # worker), the report still shows it, as an error.
        if _is_audit(item) or isinstance(item, ZeroCodeItem):
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
        from .report.writer import audit_record

        pending, self.pending = self.pending, []
        if not pending:
            return
        fresh = []
        for audit in pending:
            record = audit_record(audit, self.sink)
            record["test_outcome"] = self.outcomes.get(audit.nodeid, "unknown")
            fresh.append(record)
        self.records.extend(fresh)
        if self.worker:
            self._write_piece(fresh)

    def _pieces_dir(self) -> Path:
        return self.report_dir / ".pieces" / str(self.run_id)

    def _write_piece(self, records: list[dict[str, Any]], started: Sequence[str] = ()) -> None:
        import json

        from .report.writer import atomic_write

        folder = self._pieces_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self._pieces += 1
        piece = {
            "records": records,
            "started": list(started),
            "finished": sorted(self.finished_nodes),
            "models": self._models_meta(),
            "stats": self._stats(),
        }
        name = f"{self.worker}-{self._pieces:05d}.json"
        atomic_write(folder / name, json.dumps(piece).encode())

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["actaudit_run"] = self.run_id
        node.workerinput["actaudit_report_dir"] = str(self.report_dir)

    # ---------------------------------------------------------------------- report
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._flush()
        if self.worker:
            self._write_piece([])  # final stats of this worker
            return
        import json
        import shutil

        from .report.writer import write_report

        records = list(self.records)
        models = self._models_meta()
        stats = self._stats()
        pieces = sorted(self._pieces_dir().glob("*.json")) if self._pieces_dir().is_dir() else []
        latest: dict[str, dict[str, Any]] = {}
        started = list(self.started_nodes)
        finished = set(self.finished_nodes)
        for path in pieces:
            try:
                piece = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker died mid-write: atomic writes make this rare
            records.extend(piece["records"])
            started.extend(piece["started"])
            finished.update(piece["finished"])
            latest[path.name.split("-")[0]] = piece  # a worker's last piece has its totals
            for meta in piece["models"]:
                if meta["hash"] not in {m["hash"] for m in models}:
                    models.append(meta)
        for piece in latest.values():
            for key in stats:
                stats[key] += piece["stats"][key]
        with_record = {r["nodeid"] for r in records}
        for nodeid in dict.fromkeys(started):
            if nodeid not in with_record and nodeid not in finished:
                records.append(_unfinished_record(nodeid, self.outcomes.get(nodeid)))
        if not records:
            return
        records.sort(key=lambda r: (r["model"], r["index"], r["nodeid"]))
        run = self._run_meta(models, stats)
        self.report_path = write_report(
            self.report_dir,
            run=run,
            records=records,
            outcomes=self.outcomes,
            self_contained=self.settings.self_contained,
        )
        self.summary = (len(records), sum(1 for r in records if not r["passed"]))
        shutil.rmtree(self.report_dir / ".pieces", ignore_errors=True)

    def _models_meta(self) -> list[dict[str, Any]]:
        return [runner.meta for runner, _ in self.runners.values()]

    def _stats(self) -> dict[str, float]:
        runners = [r for r, _ in self.runners.values()]
        return {
            "optimized_images": sum(r.stats.images for r in runners),
            "optimize_seconds": sum(r.stats.seconds for r in runners),
            "cache_hits": sum(r.cache.hits for r in runners if r.cache),
        }

    def _run_meta(self, models: list[dict[str, Any]], stats: dict[str, float]) -> dict[str, Any]:
        return {
            "started": self.started,
            "wall_seconds": time.time() - self.started,
            "seeds": self.settings.seeds,
            "steps": self.settings.steps,
            "device_setting": self.settings.device,
            "models": models,
            **stats,
            "command": "pytest " + " ".join(self.config.invocation_params.args),
        }

    def pytest_report_header(self, config: pytest.Config) -> str:
        s = self.settings
        return (
            f"actaudit: model={s.model or '(actaudit_model fixture)'} seeds={s.seeds} "
            f"steps={s.steps} device={s.device} report={self.report_dir}"
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_error:
            terminalreporter.write_line(f"actaudit: {self.report_error}", red=True)
        if self.report_path:
            total, failed = self.summary
            terminalreporter.write_line(
                f"actaudit: report with {total} audits ({failed} failed checks) "
                f"written to {self.report_path}"
            )


def _unfinished_record(nodeid: str, outcome: str | None) -> dict[str, Any]:
    """The report's entry for an audit that started and never finished."""
    why = "its xdist worker died" if outcome in ("failed", "error") else "the run was interrupted"
    return {
        "label": nodeid.rsplit("::", 1)[-1],
        "index": -1,
        "model": "",
        "nodeid": nodeid,
        "seeds": [],
        "steps": 0,
        "images": [],
        "logits": [],
        "probabilities": [],
        "consistency": 0.0,
        "consistency_per_seed": [],
        "curves": [],
        "checks": [],
        "passed": False,
        "error": f"started but never finished: {why}; no images were kept",
        "test_outcome": outcome or "error",
    }


def _writable_folder(folder: Path) -> tuple[Path, str | None]:
    """The report folder, or a fresh temporary one (and why) if it cannot be written:
    decided before any optimization so no result waits on it."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
        return folder, None
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="actaudit-report-"))
        return fallback, (
            f"could not write the report to {str(folder)!r} ({exc}); "
            f"wrote it to {fallback} instead — choose a writable --actaudit-report DIR"
        )


class AuditCollector(pytest.Collector):
    """Parent of the zero-code audit items (node ids ``actaudit::MODEL::CLASS``)."""

    def collect(self) -> list[pytest.Item]:  # items are made by the session plugin
        return []


def _zero_code_audit(request: pytest.FixtureRequest) -> None:
    """The body of every zero-code item. A test function, so that its references come
    from the ``actaudit_references`` fixture, a conftest.py override included."""
    item = request.node
    session: ActauditSession = item.config.stash[SESSION_KEY]
    settings = session.settings
    audit = session.maximize(
        session.configured_model(),
        item.target,
        settings,
        item.nodeid,
        references=lambda: request.getfixturevalue("actaudit_references"),
    )
    run_threshold_checks(audit, settings)


class ZeroCodeItem(pytest.Function):
    """One class of the configured model, checked against the ini thresholds."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(callobj=_zero_code_audit, **kwargs)
        self.target = target

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AuditFailure | ActauditError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return Path(self.name.rsplit("::", 1)[0]), None, f"actaudit: {self.name}"


def run_threshold_checks(audit: ClassAudit, settings: Settings) -> None:
    """The checks whose thresholds the ini sets; every one runs, failures combined."""
    t = settings.thresholds
    checks: list[Callable[[], Any]] = []
    if "min_probability" in t or "min_logit" in t:
        checks.append(
            lambda: audit.assert_activation(
                min_probability=t.get("min_probability"), min_logit=t.get("min_logit")
            )
        )
    if "min_consistency" in t:
        checks.append(lambda: audit.assert_consistent(min_similarity=t["min_consistency"]))
    if settings.focus_exclude and "max_focus_share" in t:
        checks.append(
            lambda: audit.assert_focus(
                exclude=settings.focus_exclude, max_share=t["max_focus_share"]
            )
        )
    if "max_flip_rate" in t:
        checks.append(lambda: audit.assert_no_shortcut(max_flip_rate=t["max_flip_rate"]))
    if "min_baseline_similarity" in t:
        checks.append(
            lambda: audit.assert_matches_baseline(min_similarity=t["min_baseline_similarity"])
        )
    failures = []
    for check in checks:
        try:
            check()
        except AuditFailure as exc:
            failures.append(str(exc))
    if failures:
        raise AuditFailure("\n".join(failures))


def _session(request: pytest.FixtureRequest) -> ActauditSession:
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip(SKIP_REASON)
    return session


@pytest.fixture(scope="session")
def actaudit_model(request: pytest.FixtureRequest) -> Any:
    """The model named by ``--actaudit-model`` / ini ``actaudit_model``.

    Override this fixture in ``conftest.py`` to build or load a model any other way
    (use ``pytest_actaudit.load_model`` so the report can name the file).
    """
    try:
        return _session(request).configured_model()
    except ActauditError as exc:
        pytest.fail(f"actaudit: {exc}", pytrace=False)


class ActauditFixture:
    """What the ``actaudit`` fixture gives a test: ``maximize(target, seeds=, steps=)``."""

    def __init__(
        self,
        session: ActauditSession,
        model: Any,
        settings: Settings,
        nodeid: str,
        references: Callable[[], tuple[Any, Any]],
    ):
        self._session = session
        self._model = model
        self._settings = settings
        self._nodeid = nodeid
        self._references = references

    @property
    def labels(self) -> list[str]:
        return list(self._session.runner(self._model).labels)

    def maximize(
        self,
        target: str | int | None = None,
        *,
        seeds: int | None = None,
        steps: int | None = None,
        layer: str | None = None,
        filter: int | None = None,  # noqa: A002 (the contract's name)
    ) -> ClassAudit:
        """Class-maximization images of ``target`` (a class name or index), or with
        ``layer=`` and ``filter=``, of one unit/filter of that layer."""
        __tracebackhide__ = True
        try:
            settings = self._settings.with_overrides(
                **{k: v for k, v in {"seeds": seeds, "steps": steps}.items() if v is not None}
            )
            if layer is not None and filter is None:
                raise ValueError(f"maximize(layer={layer!r}) needs filter=<unit index>")
            if layer is None and target is None:
                raise ValueError("maximize() needs a class target, or layer= and filter=")
            return self._session.maximize(
                self._model,
                filter if layer is not None else target,  # type: ignore[arg-type]
                settings,
                self._nodeid,
                self._references,
                layer=layer,
            )
        except (ActauditError, ValueError) as exc:
            pytest.fail(f"actaudit: {exc}", pytrace=False)


@pytest.fixture
def actaudit(request: pytest.FixtureRequest, actaudit_model: Any) -> ActauditFixture:
    """Class-maximization audits of ``actaudit_model``; see ``ActauditFixture.maximize``."""
    session = _session(request)
    settings = session.settings
    marker = request.node.get_closest_marker("actaudit")
    if marker and marker.kwargs:
        try:
            settings = settings.with_overrides(**marker.kwargs)
        except ValueError as exc:
            pytest.fail(f"actaudit marker on {request.node.nodeid}: {exc}", pytrace=False)
    return ActauditFixture(
        session,
        actaudit_model,
        settings,
        request.node.nodeid,
        lambda: request.getfixturevalue("actaudit_references"),
    )


@pytest.fixture(scope="session")
def actaudit_references(request: pytest.FixtureRequest, actaudit_model: Any) -> tuple[Any, Any]:
    """Real sample images for the shortcut probe: ``(images, labels)``, uint8
    N × H × W × C and int N, read from --actaudit-references / ini
    actaudit_references (one subfolder per class name). Override it in conftest.py to
    supply images any other way. Use images you trust to be free of the artifact."""
    try:
        return _session(request).references(actaudit_model)
    except ActauditError as exc:
        pytest.fail(f"actaudit: {exc}", pytrace=False)
