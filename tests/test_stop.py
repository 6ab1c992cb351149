"""The stop rule (steps to quality, engine/lane.py) on tiny models: a stopped image is the
image of a run capped at its stop step, it does not depend on its lane-mates, the rule
off (or never firing) gives the same images as without it, and the stop is reported."""

from __future__ import annotations

import numpy as np
import pytest

import pytest_actaudit
from tests.conftest import COLORS
from tests.test_engine import darkening_nan_model, untrained_cnn

# No jitter, rotation or zoom: a run's transforms are then the same for any step count,
# so a run capped at step t is the first t steps of a longer one.
STILL = {"jitter": 0.0, "degrees": 0.0, "scale": 0.0}
RULE = {"stop_probability": 0.9, "stop_change": 0.3, "stop_every": 4}
OFF = {"stop_change": 0.0}  # the rule off: every step runs


def run(model, plan, steps, **settings):
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    engine = Engine(model, input_spec(model), EngineSettings(**settings))
    return {(r.target, r.seed): r for r in engine.run(plan, steps)}


@pytest.mark.parametrize(
    ("parametrization", "level"), [("pixel", 0.9), ("fourier", 0.5)]
)  # Fourier images of this model move slowly: p ≈ 0.5 by step 40
def test_a_stopped_image_is_the_image_of_a_run_capped_at_its_stop_step(
    color_model, parametrization, level
):
    plan = [(k, s) for k in range(3) for s in range(3)]
    rule = {**RULE, "stop_probability": level, "stop_change": 0.45}
    stopped = run(color_model, plan, 40, parametrization=parametrization, **STILL, **rule)
    steps = {r.stopped_step for r in stopped.values()}
    assert min(steps) < 40, steps  # the rule fired
    for cap in sorted(steps - {40}):
        capped = run(color_model, plan, cap, parametrization=parametrization, **STILL, **OFF)
        for pair, r in stopped.items():
            if r.stopped_step != cap:
                continue
            np.testing.assert_array_equal(r.image, capped[pair].image, err_msg=str(pair))
            assert (r.logit, r.probability) == (capped[pair].logit, capped[pair].probability)
            np.testing.assert_array_equal(r.curve[:cap], capped[pair].curve)
            # after its stop its curve holds the score of the frozen image
            assert (r.curve[cap:] == r.curve[cap]).all() and len(r.curve) == 40
            assert r.probability >= level - 0.01  # the check saw it before quantization


def test_an_image_does_not_depend_on_when_its_lane_mates_stop():
    """Seed 0 shares its lane with seeds 1 and 2, then with seeds 4 and 5 (seed s sits in
    row s % 3): the mates stop at other steps, seed 0's numbers stay the same."""
    model = untrained_cnn()
    # p ≈ 0.22 of 5 classes: the untrained model's images reach little
    rule = {"stop_probability": 0.2, "stop_change": 0.7, "stop_every": 4}
    one = run(model, [(1, 0), (1, 1), (1, 2)], 48, **rule)
    two = run(model, [(1, 0), (1, 4), (1, 5)], 48, **rule)
    mates = [r.stopped_step for r in one.values()], [r.stopped_step for r in two.values()]
    assert mates[0] != mates[1], mates  # the test means something: other mates, other stops
    a, b = one[(1, 0)], two[(1, 0)]
    assert a.stopped_step == b.stopped_step < 48
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.curve, b.curve)
    np.testing.assert_array_equal(a.attribution, b.attribution)


def test_a_rule_that_never_fires_gives_the_images_of_no_rule_bit_for_bit():
    """The frozen rows' masks and the checks change nothing until an image is done."""
    model = untrained_cnn()
    plan = [(k, s) for k in range(2) for s in range(3)]
    plain = run(model, plan, 40, **OFF)
    never = run(model, plan, 40, stop_probability=0.9, stop_change=1e-12, stop_every=4)
    for pair, r in plain.items():
        np.testing.assert_array_equal(never[pair].image, r.image)
        np.testing.assert_array_equal(never[pair].curve, r.curve)
        assert r.stopped_step == never[pair].stopped_step == 40


def test_outputs_without_a_probability_never_stop():
    from pytest_actaudit.engine import lane
    from pytest_actaudit.engine.loop import EngineSettings

    on = EngineSettings(stop_probability=0.9, stop_change=0.5)
    assert lane.stops(on, "softmax") and lane.stops(on, "log") and lane.stops(on, "sigmoid")
    assert not lane.stops(on, "unit")
    assert not lane.stops(
        EngineSettings(stop_probability=0.9, stop_change=0.5, direction=-1), "linear"
    )
    assert not lane.stops(EngineSettings(stop_probability=0.9, **OFF), "softmax")


def test_the_probability_level_is_computed_from_the_outputs_each_kind_gives():
    import tensorflow as tf

    from pytest_actaudit.engine.lane import reached

    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 0.1, 0.0], [5.0, 1.0, 1.0]])
    targets = tf.constant([0, 1, 0])
    probs = tf.nn.softmax(logits).numpy()[np.arange(3), targets.numpy()]
    for level in (0.3, 0.5, 0.9):
        got = reached(logits, targets, "softmax", level).numpy()
        np.testing.assert_array_equal(got, probs >= level)
        sig = tf.nn.sigmoid(logits).numpy()[np.arange(3), targets.numpy()]
        np.testing.assert_array_equal(
            reached(logits, targets, "sigmoid", level).numpy(), sig >= level
        )
        soft = tf.nn.softmax(logits)
        np.testing.assert_array_equal(reached(soft, targets, "log", level).numpy(), probs >= level)


def test_nan_is_reported_the_same_with_the_rule_on():
    model = darkening_nan_model()
    plan = [(0, 0), (1, 0)]
    plain = run(model, plan, 40, lanes=2, lane_width=1, parametrization="pixel", **OFF)
    ruled = run(model, plan, 40, lanes=2, lane_width=1, parametrization="pixel", **RULE)
    assert plain[(0, 0)].failed_step >= 0
    assert ruled[(0, 0)].failed_step == plain[(0, 0)].failed_step
    assert ruled[(0, 0)].stopped_step == 40  # a failed image is never done
    assert np.isnan(ruled[(0, 0)].curve[plain[(0, 0)].failed_step :]).all()
    assert ruled[(1, 0)].failed_step < 0 and ruled[(1, 0)].probability > 0.9


def test_the_stop_steps_reach_the_audit_and_its_record(color_model):
    audits = pytest_actaudit.maximize(
        color_model, "all", seeds=3, steps=40, labels=COLORS, parametrization="pixel", **RULE
    )
    for audit in audits:
        assert len(audit.stopped_steps) == 3 and max(audit.stopped_steps) <= 40
        assert audit.to_record()["stopped_steps"] == audit.stopped_steps
    assert min(min(a.stopped_steps) for a in audits) < 40


def test_the_measured_rules_images_differ_from_the_rule_off_only_by_the_stop(monkeypatch):
    """The default rule on the demo model: each seed's image is the image of the
    defaults with the rule off run to the seed's stop step
    (every step's transform drawn as for the full run, so that the shorter run is the
    longer one's beginning)."""
    from pytest_actaudit import demo
    from pytest_actaudit.engine import transforms

    draw = transforms.draw_params
    monkeypatch.setattr(
        transforms, "draw_params", lambda seed, steps, **kw: draw(seed, 96, **kw)[:steps]
    )
    model = pytest_actaudit.load_model(demo.model_path("clean"))
    plan = [(1, s) for s in range(3)]
    default = run(model, plan, 96)
    stops = sorted({r.stopped_step for r in default.values()})
    assert stops[0] < 96, stops  # the rule fired on this model
    for cap in stops:
        off = run(model, plan, cap, **OFF)
        for pair, r in default.items():
            if r.stopped_step == cap:
                np.testing.assert_array_equal(r.image, off[pair].image, err_msg=str(pair))
                np.testing.assert_array_equal(r.curve[:cap], off[pair].curve)


def test_the_stop_option_reaches_every_audit_and_a_bad_value_names_it(pytester, color_model_file):
    import json

    pytester.makeini(
        f"""
        [pytest]
        actaudit_model = {color_model_file}
        actaudit_classes = all
        actaudit_seeds = 2
        actaudit_steps = 64
        actaudit_parametrization = pixel
        actaudit_min_probability = 0.5
        """
    )
    args = ("--actaudit", "-p", "no:cacheprovider", "--actaudit-no-cache")
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=3)  # on by default
    audits = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())["audits"]
    steps = [s for audit in audits for s in audit["stopped_steps"]]
    assert len(steps) == 6 and max(steps) <= 64 and min(steps) < 64

    pytester.runpytest_inprocess(*args, "--actaudit-stop", "0").assert_outcomes(passed=3)
    audits = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())["audits"]
    assert {s for audit in audits for s in audit["stopped_steps"]} == {64}  # every step

    bad = pytester.runpytest_inprocess(*args, "--actaudit-stop", "2")
    assert bad.ret != 0
    assert "--actaudit-stop must be 0 (off) or a share" in str(bad.stderr) + str(bad.stdout)


def test_the_plugin_and_the_engine_share_the_stop_rules_default():
    from pytest_actaudit.engine.loop import EngineSettings
    from pytest_actaudit.settings import (
        DEFAULT_LEARNING_RATE,
        DEFAULT_STOP,
        DEFAULT_STOP_EVERY,
        Settings,
    )

    engine = EngineSettings()
    assert Settings().stop == DEFAULT_STOP == engine.stop_change > 0
    assert Settings().learning_rate == DEFAULT_LEARNING_RATE == engine.learning_rate
    assert engine.stop_every == DEFAULT_STOP_EVERY


def test_the_learning_rate_option_reaches_the_engine_and_a_bad_value_names_it(
    pytester, color_model_file
):
    import json

    pytester.makeini(
        f"""
        [pytest]
        actaudit_model = {color_model_file}
        actaudit_classes = red
        actaudit_seeds = 1
        actaudit_steps = 8
        actaudit_learning_rate = 0.07
        actaudit_min_probability = 0
        """
    )
    args = ("--actaudit", "-p", "no:cacheprovider", "--actaudit-no-cache")

    def engine() -> dict:
        results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
        return results["run"]["models"][0]["engine"]

    pytester.runpytest_inprocess(*args).assert_outcomes(passed=1)
    assert engine()["learning_rate"] == 0.07  # the ini's
    result = pytester.runpytest_inprocess(*args, "--actaudit-learning-rate", "0.03")
    result.assert_outcomes(passed=1)
    assert engine()["learning_rate"] == 0.03  # the command line over the ini
    bad = pytester.runpytest_inprocess(*args, "--actaudit-learning-rate", "fast")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--actaudit-learning-rate must be a number above 0 and at most 1, got 'fast'" in str(
        bad.stderr
    )
