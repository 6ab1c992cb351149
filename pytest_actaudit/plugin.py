"""pytest wiring only: options, ini keys, the marker, fixtures, skipping, report
hooks. The work is done by ``runner`` (engine), ``audit`` (checks) and ``report``.

Importing this module must not import TensorFlow: every pytest run in a model
repository loads it, with or without ``--actaudit``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import settings as settings_mod
from .audit import ClassAudit
from .errors import ActauditError
from .model import load_model, source_path
from .settings import Settings

SKIP_REASON = "pass --actaudit to run activation audits"
SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey["ActauditSession"]()
MARKER_HELP = (
    "actaudit(**settings): an activation audit; keyword arguments override the command line "
    "and ini for this test (seeds=, steps=, device=, classes=)"
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
        "'all', or class names/indices, comma separated (zero-code audits: planned, see README)",
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
        "disable the result cache (persistent cache: planned; ini actaudit_cache = false)",
    ),
    (
        "--actaudit-references",
        "actaudit_references",
        {"metavar": "DIR"},
        "sample images per class (one subfolder per class) for the shortcut probe",
    ),
    (
        "--actaudit-input-range",
        "actaudit_input_range",
        {"metavar": "0-255|0-1|-1-1|LOW,HIGH"},
        "the model's input value range (default: 0-255 after a leading Rescaling/Normalization "
        "layer, else 0-1)",
    ),
]
INI_ONLY = [
    ("actaudit_min_probability", "zero-code audits: min probability of every seed's image"),
    ("actaudit_min_logit", "zero-code audits: min logit of every seed's image"),
    ("actaudit_min_consistency", "zero-code audits: min cross-seed SSIM"),
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
    audits recorded so far, and the report at session end."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.started = time.time()
        self.runners: dict[int, Any] = {}
        self.audits: list[ClassAudit] = []
        self.outcomes: dict[str, str] = {}
        self.report_path: Path | None = None
        self.report_error: str | None = None

    def runner(self, model: Any, model_path: str | None) -> Any:
        key = id(model)
        if key not in self.runners:
            from .engine.maximize import EngineSettings
            from .runner import AuditRunner

            verbose = self.config.getoption("verbose") > 0
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            progress = (lambda line: tr.write_line(line)) if verbose and tr else None
            self.runners[key] = (
                AuditRunner(
                    model,
                    labels=self.settings.labels,
                    model_path=model_path,
                    input_range=_ini_or_cli_range(self.config),
                    engine_settings=EngineSettings(device=self.settings.device),
                    progress=progress,
                ),
                model,  # keep the model alive so id() stays unique
            )
        return self.runners[key][0]

    def pytest_report_header(self, config: pytest.Config) -> str:
        s = self.settings
        return (
            f"actaudit: model={s.model or '(actaudit_model fixture)'} seeds={s.seeds} "
            f"steps={s.steps} device={s.device} report={s.report}"
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcomes.get(report.nodeid)
            if previous in (None, "passed"):
                self.outcomes[report.nodeid] = (
                    "error" if report.when != "call" and report.failed else report.outcome
                )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.audits or hasattr(self.config, "workerinput"):
            return
        import tempfile

        from .report import write_report

        def write(folder: Path) -> Path:
            return write_report(
                folder,
                run=self._run_meta(),
                audits=self.audits,
                outcomes=self.outcomes,
                self_contained=self.settings.self_contained,
            )

        try:
            self.report_path = write(Path(self.settings.report))
        except OSError as exc:
            # Never lose a finished run's results: fall back to a fresh temporary folder.
            fallback = Path(tempfile.mkdtemp(prefix="actaudit-report-"))
            self.report_error = (
                f"could not write the report to {self.settings.report!r} ({exc}); "
                f"wrote it to {fallback} instead — choose a writable --actaudit-report DIR"
            )
            self.report_path = write(fallback)

    def _run_meta(self) -> dict[str, Any]:
        models = [runner.meta for runner, _ in self.runners.values()]
        return {
            "started": self.started,
            "wall_seconds": time.time() - self.started,
            "seeds": self.settings.seeds,
            "steps": self.settings.steps,
            "device_setting": self.settings.device,
            "models": models,
            "optimized_images": sum(r.stats.images for r, _ in self.runners.values()),
            "optimize_seconds": sum(r.stats.seconds for r, _ in self.runners.values()),
            "cache_hits": 0,
            "command": "pytest " + " ".join(self.config.invocation_params.args),
        }

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_error:
            terminalreporter.write_line(f"actaudit: {self.report_error}", red=True)
        if self.report_path:
            failed = sum(1 for a in self.audits if not a.passed)
            terminalreporter.write_line(
                f"actaudit: report with {len(self.audits)} audits ({failed} failed checks) "
                f"written to {self.report_path}"
            )


def _ini_or_cli_range(config: pytest.Config) -> str | None:
    value = config.getoption("actaudit_input_range") or config.getini("actaudit_input_range")
    return str(value) if value else None


class ActauditFixture:
    """What the ``actaudit`` fixture gives a test: ``maximize(target, seeds=, steps=)``."""

    def __init__(
        self, runner: Any, settings: Settings, nodeid: str, record: Callable[[ClassAudit], None]
    ) -> None:
        self._runner = runner
        self._settings = settings
        self._nodeid = nodeid
        self._record = record
        self._baseline: Any = None
        if settings.generate_baseline or settings.baseline:
            from .baseline import BaselineStore

            self._baseline = BaselineStore(
                settings.generate_baseline or settings.baseline or "",
                generate=bool(settings.generate_baseline),
            )

    @property
    def labels(self) -> list[str]:
        return list(self._runner.labels)

    def maximize(
        self, target: str | int, *, seeds: int | None = None, steps: int | None = None
    ) -> ClassAudit:
        __tracebackhide__ = True
        n_seeds = settings_mod.positive_int(seeds or self._settings.seeds, "seeds")
        n_steps = settings_mod.positive_int(steps or self._settings.steps, "steps")
        try:
            audit: ClassAudit = self._runner.maximize(target, seeds=n_seeds, steps=n_steps)
        except ActauditError as exc:
            pytest.fail(f"actaudit: {exc}", pytrace=False)
        audit.nodeid = self._nodeid
        audit.baseline_store = self._baseline
        if self._baseline is not None and self._baseline.generate:
            self._baseline.write(audit)
        self._record(audit)
        return audit


def _session(request: pytest.FixtureRequest) -> ActauditSession:
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip(SKIP_REASON)
    return session


@pytest.fixture(scope="session")
def actaudit_model(request: pytest.FixtureRequest) -> Any:
    """The model named by ``--actaudit-model`` / ini ``actaudit_model``.

    Override this fixture in ``conftest.py`` to build or load a model any other way.
    """
    session = _session(request)
    path = session.settings.model
    if not path:
        pytest.fail(
            "actaudit: no model configured: pass --actaudit-model PATH, set actaudit_model in "
            "the ini, or override the actaudit_model fixture in conftest.py",
            pytrace=False,
        )
    try:
        model = load_model(path, safe_mode=not session.settings.unsafe_load)
    except ActauditError as exc:
        pytest.fail(f"actaudit: {exc}", pytrace=False)
    return model


@pytest.fixture
def actaudit(request: pytest.FixtureRequest, actaudit_model: Any) -> Iterator[ActauditFixture]:
    """Class-maximization audits of ``actaudit_model``; see ``ActauditFixture.maximize``."""
    session = _session(request)
    settings = session.settings
    marker = request.node.get_closest_marker("actaudit")
    if marker and marker.kwargs:
        try:
            settings = settings.with_overrides(**marker.kwargs)
        except ValueError as exc:
            pytest.fail(f"actaudit marker on {request.node.nodeid}: {exc}", pytrace=False)
    try:
        runner = session.runner(actaudit_model, source_path(actaudit_model))
    except ActauditError as exc:
        pytest.fail(f"actaudit: {exc}", pytrace=False)
    yield ActauditFixture(runner, settings, request.node.nodeid, session.audits.append)
