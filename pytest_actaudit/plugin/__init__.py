"""The pytest plugin (entry point ``pytest11: actaudit = "pytest_actaudit.plugin"``): the
module-level hooks here, the fixtures re-exported so pytest finds them. Only wiring; the work
is done by ``runner`` (engine), ``audit`` (checks) and ``report``.

- ``options``   command-line options, ini keys, help texts, the marker's help, stash keys
- ``session``   ``ActauditSession``, the plugin object registered with ``--actaudit``
- ``items``     zero-code audit items and ``run_threshold_checks`` (the ini thresholds)
- ``fixtures``  ``actaudit_model``, ``actaudit`` (``ActauditFixture``), ``actaudit_references``
- ``xdist``     worker pieces written as tests finish, merged by the controller
- ``records``   unfinished-audit records, the run's header, the report folder

Importing this package must not import TensorFlow: every pytest run in a model
repository loads it, with or without ``--actaudit``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .. import settings as settings_mod
from ..errors import ActauditError
from .fixtures import ActauditFixture, actaudit, actaudit_model, actaudit_references
from .items import AuditCollector, ZeroCodeItem, is_audit, run_threshold_checks
from .options import (
    INI_ONLY,
    MARKER_HELP,
    OPTIONS,
    SESSION_KEY,
    SETTINGS_KEY,
    SKIP_REASON,
    add_options,
    cli_and_ini,
    unknown_ini_key,
)
from .session import ActauditSession

__all__ = [
    "INI_ONLY",
    "MARKER_HELP",
    "OPTIONS",
    "SESSION_KEY",
    "SETTINGS_KEY",
    "SKIP_REASON",
    "ActauditFixture",
    "ActauditSession",
    "AuditCollector",
    "ZeroCodeItem",
    "actaudit",
    "actaudit_model",
    "actaudit_references",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "run_threshold_checks",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    # not for --help: it is where the real keys are listed
    unknown = None if config.getoption("help", False) else unknown_ini_key(config)
    if unknown:
        raise pytest.UsageError(f"actaudit: {unknown}")
    cli, ini = cli_and_ini(config)
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
        from ..engine.device import device_name

        try:
            device_name(settings.device)
        except ActauditError as exc:
            raise pytest.UsageError(f"actaudit: {exc}") from None
    config.stash[SETTINGS_KEY] = settings
    if settings.enabled:
        session = ActauditSession(config, settings)
        config.stash[SESSION_KEY] = session
        config.pluginmanager.register(session, "actaudit-session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SETTINGS_KEY].enabled:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if is_audit(item):
            item.add_marker(skip)
