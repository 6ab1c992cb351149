"""pytest-actaudit: audit Keras image classifiers by class maximization.

Importing this package does not import TensorFlow; ``maximize`` and
``load_model`` import it when called.
"""

from __future__ import annotations

from typing import Any

from .checks import artifacts
from .checks.audit import AuditFailure, CheckRecord, ClassAudit
from .checks.references import References
from .errors import ActauditError, CheckNotRun, OptimizationError
from .version import __version__

__all__ = [
    "ActauditError",
    "AuditFailure",
    "CheckNotRun",
    "CheckRecord",
    "ClassAudit",
    "OptimizationError",
    "References",
    "__version__",
    "artifacts",
    "load_model",
    "maximize",
]


def load_model(
    path: Any, *, safe_mode: bool = True, custom_objects: dict[str, Any] | None = None
) -> Any:
    """Load a Keras model file (``.keras``, ``.h5``, SavedModel folder); safe mode on.
    ``custom_objects``: Keras's, the classes of custom layers by registered name."""
    from .model.load import load_model as _load

    return _load(path, safe_mode=safe_mode, custom_objects=custom_objects)


def maximize(model: Any, targets: Any, **kwargs: Any) -> list[ClassAudit]:
    """Class-maximization images per target; see :func:`pytest_actaudit.api.maximize`."""
    from .api import maximize as _maximize

    return _maximize(model, targets, **kwargs)


maximize.__doc__ = (
    "maximize(model, targets, *, seeds=3, steps=None, labels=None, **settings)\n\n"
    "Class-maximization images per target, without pytest: one ClassAudit per target."
)
