"""The fixtures tests use: ``actaudit_model``, ``actaudit`` (an ``ActauditFixture``) and
``actaudit_references``; without ``--actaudit`` they skip the test."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from ..checks.audit import ClassAudit
from ..errors import ActauditError
from ..settings import Settings
from .options import SESSION_KEY, SKIP_REASON

if TYPE_CHECKING:
    from .session import ActauditSession


def _fail(exc: Exception) -> NoReturn:
    """The test fails with the error's message alone. Raised outside the ``except`` that
    caught it: pytest would print a chained error twice ("During handling of the above
    exception, another exception occurred")."""
    __tracebackhide__ = True
    pytest.fail(f"actaudit: {exc}", pytrace=False)


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
        error = exc
    _fail(error)


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
            error = exc
        _fail(error)


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
            message = f"actaudit marker on {request.node.nodeid}: {exc}"
        else:
            message = ""
        if message:  # outside the except: see _fail
            pytest.fail(message, pytrace=False)
    return ActauditFixture(
        session,
        actaudit_model,
        settings,
        request.node.nodeid,
        lambda: request.getfixturevalue("actaudit_references"),
    )


@pytest.fixture(scope="session")
def actaudit_references(request: pytest.FixtureRequest, actaudit_model: Any) -> Any:
    """Real sample images for the shortcut probe and named suspects: ``(images,
    labels)``, uint8 N × H × W × C and int N, read from --actaudit-references / ini
    actaudit_references — one subfolder per class name, or a flat folder of photos whose
    classes the model reads (then ``.read_by_model`` is True; a ``References``, with
    ``.folder``, ``.skipped`` and ``.conversions``). Override it in conftest.py to supply
    images any other way. Use images you trust to be free of the artifact."""
    try:
        return _session(request).references(actaudit_model)
    except ActauditError as exc:
        error = exc
    _fail(error)
