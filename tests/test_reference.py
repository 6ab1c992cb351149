"""The tf-keras-vis reference path (``benchmarks/tfkv_reference.py``) against the compiled
engine, and a smoke run of the benchmark's logic.

Parity: with the transforms off (``jitter = degrees = scale = 0``) both paths optimize
the same objective (target logit − TV − norm, in the same units) with the same Adam
step from the same start, clip after every update and blur every ``blur_every``
updates. They differ only in execution (one graph loop vs tf-keras-vis's eager Python
step) and in float rounding: Keras's Adam updates its moments as m += (g − m)(1 − β1)
and adds ε to the uncorrected √v, the engine as m = β1·m + (1 − β1)·g with ε on the
corrected one. Measured on these models: logits agree to ~1e-6 at 10 steps; over
longer runs Adam's normalization magnifies the rounding on pixels whose gradient is
near zero and uint8 quantization turns it into whole grey levels (30 steps: up to 5
levels on ~12% of a conv net's pixels, logits still within 6e-4). The tolerance,
|Δlogit| ≤ 1e-3 + 1e-2·|logit| and mean |Δpixel| ≤ 1 grey level, allows that and
nothing more: a wrong unit for a regularizer, a missing clip or blur, a shifted step
size or another start moves the logits by far more (a 10× weaker TV, or Adam's ε in
input units, already fails it).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import COLORS, build_color_model

STEPS = 8  # blurs after updates 4 and 8: the last one through the post-hoc path
NO_TRANSFORMS = {"jitter": 0.0, "degrees": 0.0, "scale": 0.0}
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_engine.py"


def _conv_softmax_layer():
    """Non-square RGB conv net ending in a separate Softmax layer (−1–1 input)."""
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input((12, 10, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", kernel_initializer=init(seed=1))(inputs)
    x = keras.layers.Conv2D(6, 3, activation="tanh", kernel_initializer=init(seed=2))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, kernel_initializer=init(seed=3))(x)
    return keras.Model(inputs, keras.layers.Softmax()(x), name="conv_softmax"), "-1-1"


def _gray_sigmoid():
    """Grayscale non-square input in 0–1, sigmoid outputs."""
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input((9, 11, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=init(seed=4))(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="sigmoid", kernel_initializer=init(seed=5))(x)
    return keras.Model(inputs, outputs, name="gray_sigmoid"), None


MODELS = {
    "rgb-0-255-dense-softmax": lambda: (build_color_model(), None),
    "rgb-minus1-1-softmax-layer": _conv_softmax_layer,
    "gray-0-1-sigmoid": _gray_sigmoid,
}


def _pixel(**settings):
    """Engine settings with the pixel parametrization (the one tf-keras-vis has)."""
    from pytest_actaudit.engine.loop import EngineSettings

    if "parametrization" in EngineSettings.__dataclass_fields__:
        settings.setdefault("parametrization", "pixel")
    if "stop_change" in EngineSettings.__dataclass_fields__:
        settings.setdefault("stop_change", 0.0)  # tf-keras-vis runs every step
    return EngineSettings(**settings)


def _setup(name: str, **settings):
    from pytest_actaudit.model.inputs import input_spec

    model, input_range = MODELS[name]()
    spec = input_spec(model, input_range)
    last = int(model.outputs[0].shape[-1]) - 1
    plan = [(t, s) for t in (0, last) for s in range(2)]
    return model, spec, plan, _pixel(**settings)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_reaches_the_engines_logits(name):
    from benchmarks.tfkv_reference import Reference
    from pytest_actaudit.engine.loop import Engine

    model, spec, plan, settings = _setup(name, **NO_TRANSFORMS)
    engine = Engine(model, spec, settings).run(plan, STEPS)
    reference = Reference(model, spec, settings)
    # per_item is the same optimization one call at a time (slow, eager): one model is enough
    modes = ("batched", "per_item") if name == "rgb-minus1-1-softmax-layer" else ("batched",)
    for mode in modes:
        got = reference.run(plan, STEPS, mode)
        assert len(got) == len(plan)
        for result, (image, logit) in zip(engine, got, strict=True):
            assert isinstance(image, np.ndarray) and image.dtype == np.uint8
            assert image.shape == spec.shape
            assert abs(logit - result.logit) <= 1e-3 + 1e-2 * abs(result.logit), (
                mode,
                result.target,
                result.seed,
                logit,
                result.logit,
            )
            diff = np.abs(image.astype(int) - result.image.astype(int))
            assert diff.mean() <= 1.0, (mode, result.target, result.seed, diff.max())
    # The logits moved: the comparison is not between two untouched starts.
    assert np.mean([r.logit for r in engine]) > np.mean([r.curve[0] for r in engine])


def test_regularizer_units_matter():
    """The parity above is not vacuous: the same run with the TV in raw input units
    (what tf-keras-vis does without the adapter: × 255 here) lands elsewhere."""
    from benchmarks.tfkv_reference import reference_maximize
    from pytest_actaudit.engine.loop import Engine

    model, spec, plan, settings = _setup("rgb-0-255-dense-softmax", **NO_TRANSFORMS)
    engine = Engine(model, spec, settings).run(plan, STEPS)
    import dataclasses

    raw_units = dataclasses.replace(settings, tv_weight=settings.tv_weight * 255.0)
    got = reference_maximize(model, spec, plan, STEPS, raw_units)
    assert max(abs(g[1] - e.logit) for g, e in zip(got, engine, strict=True)) > 0.1


def test_with_transforms_it_still_maximizes_and_is_deterministic(color_model):
    from benchmarks.tfkv_reference import reference_maximize
    from pytest_actaudit.model.inputs import input_spec

    spec = input_spec(color_model)
    plan = [(0, 0), (2, 1)]
    state = np.random.get_state()
    first = reference_maximize(color_model, spec, plan, 20, _pixel())
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # global numpy untouched
    again = reference_maximize(color_model, spec, plan, 20, _pixel(), mode="per_item")
    batched_again = reference_maximize(color_model, spec, plan, 20, _pixel())
    for (a, la), (b, lb) in zip(first, batched_again, strict=True):
        np.testing.assert_array_equal(a, b)
        assert la == lb
    for (image, logit), (target, _) in zip(first + again, plan + plan, strict=True):
        means = image.astype(float).mean(axis=(0, 1))
        assert logit > 9.0 and means[target] > 200, (COLORS[target], logit, means)


def test_the_users_model_is_untouched(color_model):
    from benchmarks.tfkv_reference import Reference
    from pytest_actaudit.model.inputs import input_spec

    probe = np.full((1, 16, 12, 3), 128.0, np.float32)
    before = color_model.predict(probe, verbose=0)
    reference = Reference(color_model, input_spec(color_model), _pixel())
    assert reference.model is not color_model
    assert color_model.layers[-1].activation.__name__ == "softmax"
    np.testing.assert_allclose(color_model.predict(probe, verbose=0), before)
    assert abs(before.sum() - 1.0) < 1e-5  # still probabilities


def test_bad_mode_and_unsupported_parametrization(color_model):
    from benchmarks.tfkv_reference import Reference
    from pytest_actaudit.engine.loop import EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    spec = input_spec(color_model)
    with pytest.raises(ValueError, match="mode must be one of"):
        Reference(color_model, spec, _pixel()).run([(0, 0)], 1, mode="loop")
    if "parametrization" in EngineSettings.__dataclass_fields__:
        with pytest.raises(ValueError, match="optimizes pixels"):
            Reference(color_model, spec, EngineSettings(parametrization="fourier"))


def test_benchmark_quick_logic_in_process(tmp_path):
    """``bench_engine.py --quick`` on a tiny model, in this process (the real --quick
    run, with fresh subprocesses and MobileNetV2, takes about a minute: CI runs it)."""
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    code = bench.main(
        ["--quick", "--models", "tiny", "--inline", "--no-chunk-check", "--json", str(out)]
    )
    assert code == 0
    data = json.loads(out.read_text())
    rows = {r["contender"]: r for r in data["results"]}
    expected = {c for c in bench.CONTENDERS if not bench.redundant(c)}
    assert set(rows) == expected
    for row in rows.values():
        assert "error" not in row, row
        assert row["seconds"] > 0 and row["cpu_seconds"] >= 0 and row["peak_rss_mb"] > 0
        assert row["plan"] == 4 and row["steps"] == data["config"]["steps"]
    # The same plan from the same starts, in pixels: the achieved logits are comparable.
    pixel = rows.get("project_pixel", rows["project"])
    assert pixel["mean_logit"] == pytest.approx(rows["tkv_batched"]["mean_logit"], abs=0.5)


def test_cold_start_benchmark_worker_in_process():
    """``cold_start.py``'s project worker on a tiny model: a cold call, warm calls that
    find the traced engine (one trace in all), and the split of the cold call."""
    import sys

    sys.path.insert(0, str(BENCH.parent))
    try:
        import cold_start
    finally:
        sys.path.remove(str(BENCH.parent))
    row = cold_start.measure({"model": "tiny", "contender": "project", "steps": 4})
    assert row["traces"] == 1 and row["images"] == 9
    assert row["cold"] > row["warm"] > 0
    parts = row["profile"]
    assert set(parts) == {"runner", "trace", "first execution", "steps (a warm run)", "audits"}
    assert parts["trace"] > 0 and sum(parts.values()) == pytest.approx(row["cold"], rel=0.05)
    bare = cold_start.measure({"model": "tiny", "contender": "bare", "steps": 4})
    assert bare["cold"] > bare["warm"] > 0
