"""Exceptions users see. No imports beyond the standard library."""

from __future__ import annotations


class ActauditError(Exception):
    """A problem with the model, the labels or the settings: the message names the bad
    value and the fix."""


class OptimizationError(ActauditError):
    """Scores or images became NaN/Inf during optimization."""


class ActauditWarning(UserWarning):
    """Something was skipped or redone (a bad cache entry, ...): the run goes on."""
