"""``maximize``: class-maximization images without pytest, from a model or its file —
the same images the ``actaudit`` fixture gives for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .checks.audit import ClassAudit
from .model.load import load_model
from .run.reference_calls import GivenReferences, as_references


def maximize(
    model: Any,
    targets: str | int | Sequence[str | int],
    *,
    seeds: int = 3,
    steps: int | None = None,
    labels: str | list[str] | None = None,
    **settings: Any,
) -> list[ClassAudit]:
    """Class-maximization images of each target, without pytest.

    ``model`` is a Keras model or a path to one; ``targets`` class names or indices
    (or ``"all"``); with ``layer="name"``, unit/filter indices of that layer instead.
    ``references=(images, class indices)``: trusted real images (uint8 N × H × W × C)
    for ``assert_no_shortcut`` and ``assert_ignores``; or the images alone (one array,
    photos of anything), whose classes the model then reads itself
    (``references.References`` with ``read_by_model``).
    Other keyword arguments are ``EngineSettings`` fields (``learning_rate``,
    ``device``, ``max_batch``, ``lanes``, ``lane_width``, ``parametrization``,
    ``direction=-1`` to lower a regression output, …), ``input_range``, ``preprocess``
    (``"caffe"``, ``"tf"``, ``"torch"``, ``"mean=...,std=...[,bgr]"``,
    ``"module:function"``), ``input_size=(H, W)`` (the size to optimize at when the
    model's is not fixed) and ``output`` (the name of the classifier output of a
    multi-output model).
    Returns one ``ClassAudit`` per target, the same images the ``actaudit`` fixture
    gives for the same settings.
    """
    from .engine.loop import EngineSettings
    from .run.build import RunnerRecipe, build_runner
    from .run.runner import AuditLinks
    from .settings import DEFAULT_STEPS, positive_int

    model_path = None
    if isinstance(model, str | bytes) or hasattr(model, "__fspath__"):
        model_path = str(model)
        model = load_model(model_path, safe_mode=not settings.pop("unsafe_load", False))
    input_range = settings.pop("input_range", None)
    preprocess = settings.pop("preprocess", None)
    given: GivenReferences | None = settings.pop("references", None)
    layer = settings.pop("layer", None)
    input_size, output = settings.pop("input_size", None), settings.pop("output", None)
    # a lane holds the call's seeds of one class, as the plugin's does with its seeds
    settings.setdefault("lane_width", positive_int(seeds, "seeds"))
    recipe = RunnerRecipe(
        model,
        labels=labels,
        model_path=model_path,
        input_size=input_size,
        output=output,
        engine_settings=EngineSettings(**settings),  # the rest are the engine's settings
    )
    # references read the way that reads them best, when no input setting is given
    runner, references = build_runner(
        recipe,
        input_range,
        preprocess,
        None if given is None else (lambda runner: as_references(given, runner.classify)),
    )
    if given is not None and references is None:
        references = as_references(given, runner.classify)
    seeds, steps = positive_int(seeds, "seeds"), positive_int(steps or DEFAULT_STEPS, "steps")
    if layer is not None:
        units = [targets] if isinstance(targets, int) else list(targets)
        return runner.unit_audits(layer, [int(u) for u in units], seeds=seeds, steps=steps)
    if isinstance(targets, str | int):
        targets = list(range(len(runner.labels))) if targets == "all" else [targets]
    trusted = references  # the shortcut probe's trusted images
    links = None if trusted is None else AuditLinks(references=lambda: trusted)
    return runner.class_audits(targets, seeds=seeds, steps=steps, links=links)
