"""Zero-code audits: one collected item per class of the configured model
(``actaudit::MODEL::CLASS``), checked against the ini thresholds by ``run_threshold_checks``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..checks.audit import AuditFailure, ClassAudit
from ..errors import ActauditError, CheckNotRun
from ..settings import Settings
from .options import SESSION_KEY

if TYPE_CHECKING:
    from .session import ActauditSession


def is_audit(item: pytest.Item) -> bool:
    """A test that audits: it has the ``actaudit`` marker or uses the ``actaudit`` fixture."""
    return item.get_closest_marker("actaudit") is not None or "actaudit" in getattr(
        item, "fixturenames", ()
    )


class AuditCollector(pytest.Collector):
    """Parent of the zero-code audit items (node ids ``actaudit::MODEL::CLASS``)."""

    def collect(self) -> list[pytest.Item]:  # items are made by the session plugin
        return []


# The ini keys that give zero-code items something to check (configuration.md lists them).
CHECK_KEYS = (
    "actaudit_min_probability, actaudit_min_logit, actaudit_min_consistency, "
    "actaudit_max_flip_rate, actaudit_suspects, actaudit_focus_exclude + "
    "actaudit_max_focus_share, actaudit_min_baseline_similarity"
)
NO_CHECK_REASON = (
    "actaudit: no zero-code check is set, so this class's images (in the report) were "
    f"checked against nothing; set one of {CHECK_KEYS}"
)


def zero_code_checks(settings: Settings) -> list[str]:
    """The checks ``run_threshold_checks`` runs with these settings (empty: none)."""
    t = settings.thresholds
    checks = []
    if "min_probability" in t or "min_logit" in t:
        checks.append("activation")
    if "min_consistency" in t:
        checks.append("consistency")
    if settings.focus_exclude and "max_focus_share" in t:
        checks.append("focus")
    if "max_flip_rate" in t:
        checks.append("shortcut")
    if settings.suspects:
        checks.append("ignores")
    if "min_baseline_similarity" in t:
        checks.append("baseline")
    return checks


def classes_named(config: pytest.Config) -> bool:
    """``--actaudit-classes`` / ``actaudit_classes`` is set (``all`` included)."""
    return config.getoption("actaudit_classes", None) is not None or config.getini(
        "actaudit_classes"
    ) not in (None, "", [])


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
    if not zero_code_checks(settings):
        # The images are made (the report shows them), but an item that asserts nothing
        # must not read as a pass.
        pytest.skip(NO_CHECK_REASON)
    run_threshold_checks(audit, settings)


class ZeroCodeItem(pytest.Function):
    """One class of the configured model, checked against the ini thresholds."""

    def __init__(self, *, target: str, index: int = -1, **kwargs: Any) -> None:
        super().__init__(callobj=_zero_code_audit, **kwargs)
        self.target = target
        self.index = index  # the class index (for --actaudit-shard)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, AuditFailure | ActauditError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return Path(self.name.rsplit("::", 1)[0]), None, f"actaudit: {self.name}"


def zero_code_items(
    actaudit_session: ActauditSession, session: pytest.Session
) -> list[ZeroCodeItem]:
    """One item per class of ``--actaudit-classes`` (default all) of the configured model,
    when there is something to check or the classes are named; else none: a model set in
    the ini for written tests must not have every class optimized for nothing."""
    settings = actaudit_session.settings
    # Load the model and resolve labels and classes now, items or not: a missing, corrupt
    # or unsafe file, mismatched labels or an unknown class is a usage error before any
    # test.
    model_path = str(settings.model)
    try:
        with actaudit_session.quiet():
            runner = actaudit_session.runner(actaudit_session.configured_model())
        indices = [runner.resolve(c) for c in settings.classes] or range(len(runner.labels))
    except ActauditError as exc:
        raise pytest.UsageError(f"actaudit: {exc}") from None
    if settings.focus_exclude:
        from ..checks.regions import region_mask

        height, width = runner.spec.shape[:2]
        try:
            region_mask(settings.focus_exclude, height, width)
        except ValueError as exc:
            raise pytest.UsageError(
                f"actaudit: actaudit_focus_exclude: {exc} (the model's input is {height}×{width})"
            ) from None
    if not zero_code_checks(settings) and not classes_named(session.config):
        return []
    parent = AuditCollector.from_parent(session, name="actaudit", nodeid="actaudit")
    items = [
        ZeroCodeItem.from_parent(
            parent, name=f"{model_path}::{runner.labels[i]}", target=runner.labels[i], index=i
        )
        for i in indices
    ]
    # Made after collection proper: reported like collected items, so that the terminal's
    # "collected N items" counts them.
    report = pytest.CollectReport(parent.nodeid, "passed", None, list(items))
    session.config.hook.pytest_collectreport(report=report)
    return items


def run_threshold_checks(audit: ClassAudit, settings: Settings) -> None:
    """The checks whose thresholds the ini sets; every one runs, failures combined."""
    t = settings.thresholds
    pull = {key: t[key] for key in ("max_pull", "max_rise") if key in t}
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
    for suspect in settings.suspects:
        checks.append(functools.partial(audit.assert_ignores, suspect, **pull))
    if "min_baseline_similarity" in t:
        checks.append(
            lambda: audit.assert_matches_baseline(min_similarity=t["min_baseline_similarity"])
        )
    failures = []
    not_run: list[CheckNotRun] = []
    for check in checks:
        try:
            check()
        except AuditFailure as exc:
            failures.append(str(exc))
        except CheckNotRun as exc:  # the other checks still run
            not_run.append(exc)
    if failures:
        raise AuditFailure("\n".join(failures + [f"not run: {e}" for e in not_run]))
    if not_run:
        raise CheckNotRun("; ".join(map(str, not_run)))
