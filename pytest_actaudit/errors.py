"""Exceptions users see. No imports beyond the standard library."""

from __future__ import annotations


class ActauditError(Exception):
    """A problem with the model, the labels or the settings: the message names the bad
    value and the fix."""


class OptimizationError(ActauditError):
    """Scores or images became NaN/Inf during optimization."""


class ArtifactError(ActauditError, ValueError):
    """A named suspect that cannot be painted on the model's images (it does not fit):
    the message names its extent and the images' size."""


class CheckNotRun(ActauditError):
    """A check cannot run on the references given (none of the class's own, none of
    another class): not a verdict on the model. The plugin reports the test as skipped
    with this message; the message names what to add."""


class ActauditWarning(UserWarning):
    """Something was skipped or redone (a bad cache entry, ...): the run goes on."""
