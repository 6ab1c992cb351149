"""Traced engines kept per process for reuse: tracing the compiled loop is most of a first
call, and a second ``pytest_actaudit.maximize`` on the same model in a notebook, or a
second test module's runner, finds its loop already traced."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..model import InputSpec
from .loop import Engine, EngineSettings

KEEP_ENGINES = 4  # traced engines a process keeps for reuse (each holds its model)
_engines: OrderedDict[tuple[int, str, InputSpec, EngineSettings, str | None], Engine] = (
    OrderedDict()
)


def engine_for(
    model: Any, spec: InputSpec, settings: EngineSettings, *, weights: str, layer: str | None = None
) -> Engine:
    """The engine of this model object, input, settings and layer, traced once per
    process. ``weights`` (the weights' hash) is part of the key: the engine holds copies
    of the last layer's weights, so a model trained further in place gets a new engine.
    The last ``KEEP_ENGINES`` are kept (they keep their models alive);
    ``clear_engines()`` lets them go."""
    key = (id(model), weights, spec, settings, layer)
    engine = _engines.get(key)
    if engine is None or engine.model is not model:
        engine = _engines[key] = Engine(model, spec, settings, layer)
        while len(_engines) > KEEP_ENGINES:
            _engines.popitem(last=False)
    _engines.move_to_end(key)
    return engine


def clear_engines() -> None:
    """Drop every engine kept for reuse (and the models they hold)."""
    _engines.clear()
