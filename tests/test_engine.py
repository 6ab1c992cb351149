"""The engine on tiny models whose right answer is known."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import ActauditError, OptimizationError
from tests.conftest import COLORS, build_color_model

DEMO_MODELS = Path(pytest_actaudit.__file__).parent / "demo" / "models"

STEPS = 30


@pytest.fixture(scope="module")
def color_audits(color_model):
    # pixel parametrization: exact, saturated colours in few steps
    return pytest_actaudit.maximize(
        color_model, "all", seeds=3, steps=STEPS, labels=COLORS, parametrization="pixel"
    )


def test_each_colour_class_gives_an_image_of_that_colour(color_audits):
    for k, audit in enumerate(color_audits):
        assert audit.label == COLORS[k] and audit.index == k
        assert audit.images.shape == (3, 16, 12, 3) and audit.images.dtype == np.uint8
        means = audit.images.astype(float).mean(axis=(0, 1, 2))
        assert means[k] > 200 and np.delete(means, k).max() < 60, means


def test_scores_are_measured_on_the_final_images(color_audits, color_model):
    audit = color_audits[0]
    probs = color_model.predict(audit.images.astype("float32"), verbose=0)[:, 0]
    np.testing.assert_allclose(audit.probabilities, probs, rtol=1e-5)
    # logit of the hand-made model: 10·r − 5·g − 5·b on 0–1 channel means
    means = audit.images.astype("float64").mean(axis=(1, 2)) / 255.0
    np.testing.assert_allclose(
        audit.logits, 10 * means[:, 0] - 5 * means[:, 1] - 5 * means[:, 2], rtol=1e-4
    )


def test_curve_rises(color_audits):
    for audit in color_audits:
        assert audit.curves.shape == (3, STEPS)
        assert (audit.curves[:, -1] > audit.curves[:, 0]).all()


def test_deterministic_and_independent_of_batch_neighbours(color_model, color_audits):
    again = pytest_actaudit.maximize(
        color_model, ["blue"], seeds=3, steps=STEPS, labels=COLORS, parametrization="pixel"
    )
    np.testing.assert_array_equal(again[0].images, color_audits[2].images)


def test_user_model_is_not_modified(color_model):
    assert color_model.layers[-1].activation.__name__ == "softmax"


def test_logits_model_without_softmax():
    model = build_color_model(softmax=False)
    (audit,) = pytest_actaudit.maximize(
        model, 1, seeds=2, steps=STEPS, labels=COLORS, parametrization="pixel"
    )
    assert audit.probabilities.min() > 0.99 and audit.logits.min() > 9


def test_grayscale_non_square_and_unit_range():
    import keras

    inputs = keras.Input((10, 14, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[8.0, -8.0]], "float32"), np.zeros(2, "float32")])
    bright, dark = pytest_actaudit.maximize(
        model, [0, 1], seeds=2, steps=STEPS, parametrization="pixel"
    )
    assert bright.images.shape == (2, 10, 14, 1)
    assert bright.images.mean() > 200 and dark.images.mean() < 55
    assert bright.label == "0"  # no labels: indices as names


def test_model_file_and_labels_beside_it(color_model_file):
    (audit,) = pytest_actaudit.maximize(color_model_file, "green", seeds=1, steps=5)
    assert audit.label == "green" and audit.model_name == str(color_model_file)


def test_unknown_class_lists_close_matches(color_model):
    with pytest.raises(ActauditError, match=r"unknown class 'gren'; did you mean 'green'"):
        pytest_actaudit.maximize(color_model, "gren", seeds=1, steps=2, labels=COLORS)


def test_index_out_of_range(color_model):
    with pytest.raises(ActauditError, match=r"class index 7 is out of range.*0\.\.2"):
        pytest_actaudit.maximize(color_model, 7, seeds=1, steps=2, labels=COLORS)


def test_wrong_number_of_labels(color_model):
    with pytest.raises(ActauditError, match="name 2 classes but model 'color_model' has 3"):
        pytest_actaudit.maximize(color_model, 0, seeds=1, steps=2, labels=["a", "b"])


def test_not_an_image_classifier():
    import keras

    inputs = keras.Input((20,), dtype="int32")
    x = keras.layers.Embedding(50, 4)(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    with pytest.raises(ActauditError, match="not an image classifier"):
        pytest_actaudit.maximize(model, 0, seeds=1, steps=2)


def test_nan_during_optimization_names_class_seed_and_step():
    import keras

    class Unstable(keras.layers.Layer):
        def call(self, x):
            import tensorflow as tf

            # sqrt(mean − 0.45): finite at the grey start, NaN once the image darkens
            return tf.sqrt(tf.reduce_mean(x, axis=[1, 2]) - 0.45)

    inputs = keras.Input((8, 8, 1))
    x = Unstable()(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[-5.0, 5.0]], "float32"), np.zeros(2, "float32")])
    with pytest.raises(
        OptimizationError, match=r"class '0' \(index 0\), seed 0: .*NaN/Inf at step \d+"
    ):
        pytest_actaudit.maximize(model, 0, seeds=1, steps=40, parametrization="pixel")


def test_missing_model_file(tmp_path):
    with pytest.raises(ActauditError, match="model file not found.*nope.keras"):
        pytest_actaudit.load_model(tmp_path / "nope.keras")


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    with pytest.raises(ActauditError, match="could not load model .*broken.keras"):
        pytest_actaudit.load_model(bad)


def test_gpu_asked_for_where_none_is_visible(color_model):
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(ActauditError, match="asks for GPU 0 but TensorFlow sees none"):
        pytest_actaudit.maximize(color_model, 0, seeds=1, steps=2, labels=COLORS, device="gpu")


def test_feature_consistency_is_centred_so_it_discriminates(color_audits):
    from pytest_actaudit.checks.metrics import pairwise_cosine

    red, green, _ = color_audits
    # penultimate = pooled channel means, centred on grey: red ≈ (+, −, −)
    assert red.features.shape == (3, 3) and (np.sign(red.features[0]) == [1, -1, -1]).all()
    assert red.feature_similarity_per_seed.min() > 0.99
    red.assert_consistent(0.9, metric="features")
    across = pairwise_cosine(np.stack([red.features[0], green.features[0]]))
    assert across.max() < 0  # different classes point different ways


def test_fourier_parametrization_moves_towards_the_class(color_model):
    audits = pytest_actaudit.maximize(color_model, "all", seeds=2, steps=60, labels=COLORS)
    for k, audit in enumerate(audits):
        means = audit.images.astype(float).mean(axis=(0, 1, 2))
        assert np.argmax(means) == k and means[k] - np.delete(means, k).max() > 5, means
    same_plan = pytest_actaudit.maximize(color_model, "all", seeds=2, steps=60, labels=COLORS)
    for a, b in zip(audits, same_plan, strict=True):
        np.testing.assert_array_equal(a.images, b.images)
    # alone in its batch: the same images (the lanes' shapes do not change)
    alone = pytest_actaudit.maximize(color_model, "red", seeds=2, steps=60, labels=COLORS)
    np.testing.assert_array_equal(alone[0].images, audits[0].images)


def untrained_cnn(size: int = 24, classes: int = 5):
    """Random weights, layers of realistic widths: convolutions, batch norm, a hidden
    dense layer. Its kernels' float summation order depends on the batch."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D()(keras.layers.ReLU()(x))
    x = keras.layers.Dense(64, activation="relu")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


@pytest.mark.parametrize("parametrization", ["fourier", "pixel"])
def test_an_image_does_not_depend_on_what_shares_its_batch(parametrization):
    """Issue 34: the same class and seed, optimized alone, with every other class, in
    another order (another place in the batch), in lanes of another count and chunks of
    another size, is the same image, bit for bit, with the same scores."""
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    model = untrained_cnn()
    spec = input_spec(model)

    def run(plan, **placement):
        settings = EngineSettings(parametrization=parametrization, **placement)
        found = Engine(model, spec, settings).run(plan, steps=24)
        return {(r.target, r.seed): r for r in found}

    alone = run([(1, 0), (1, 1)])
    every = [(k, s) for k in range(5) for s in range(3)]
    runs = [
        run(every),
        run(every[::-1]),
        run([(3, 2), (1, 1), (0, 0), (1, 0)], lanes=1),
        run(every[2:], max_batch=5, lanes=2),
    ]
    for found in runs:
        for pair, one in alone.items():
            other = found[pair]
            diff = np.abs(other.image.astype(int) - one.image).max()
            assert diff == 0, (pair, diff)
            assert (other.logit, other.probability) == (one.logit, one.probability)
            np.testing.assert_array_equal(other.curve, one.curve)
            np.testing.assert_array_equal(other.attribution, one.attribution)


def test_lane_layout_places_each_seed_by_itself():
    from pytest_actaudit.engine.device import lane_layout

    assert lane_layout([(2, 1), (0, 0), (2, 0), (0, 4)], 3) == [
        [(2, 0), (2, 1), (2, 2)],
        [(0, 0), (0, 1), (0, 2)],
        [(0, 3), (0, 4), (0, 5)],
    ]
    assert lane_layout([(1, 5)], 1) == [[(1, 5)]]


def test_batches_of_different_sizes_in_one_engine(color_model):
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    engine = Engine(color_model, input_spec(color_model), EngineSettings(max_batch=4))
    for plan in ([(0, 0)], [(0, 0), (1, 0), (2, 0)], [(k, s) for k in range(3) for s in range(3)]):
        results = engine.run(plan, steps=3)
        assert [(r.target, r.seed) for r in results] == plan


def test_conv_filter_and_dense_unit_targets():
    import keras

    inputs = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(2, 1, name="mix")
    x = conv(inputs)
    dense = keras.layers.Dense(3, name="head", activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)))
    # filter 0 = red − blue, filter 1 = blue − red
    conv.set_weights([np.array([[[[1, -1], [0, 0], [-1, 1]]]], "float32"), np.zeros(2, "float32")])
    red, blue = pytest_actaudit.maximize(
        model, [0, 1], layer="mix", seeds=2, steps=20, parametrization="pixel"
    )
    assert red.label == "mix[0]" and np.isnan(red.probabilities).all()
    assert red.images[..., 0].mean() > 200 and red.images[..., 2].mean() < 55
    assert blue.images[..., 2].mean() > 200 and blue.images[..., 0].mean() < 55
    (unit,) = pytest_actaudit.maximize(model, 1, layer="head", seeds=1, steps=3)
    assert unit.label == "head[1]"
    with pytest.raises(ActauditError, match="has no layer 'mixx'; did you mean 'mix'"):
        pytest_actaudit.maximize(model, 0, layer="mixx", seeds=1, steps=2)
    with pytest.raises(ActauditError, match="unit 5 is out of range: layer 'mix' has 2"):
        pytest_actaudit.maximize(model, 5, layer="mix", seeds=1, steps=2)


def test_decreasing_direction_for_a_regression_output():
    import keras

    inputs = keras.Input((8, 8, 1))
    head = keras.layers.Dense(1, name="brightness")
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(inputs)))
    head.set_weights([np.full((1, 1), 50.0, "float32"), np.zeros(1, "float32")])
    (low,) = pytest_actaudit.maximize(
        model, 0, seeds=1, steps=20, direction=-1, parametrization="pixel"
    )
    (high,) = pytest_actaudit.maximize(model, 0, seeds=1, steps=20, parametrization="pixel")
    assert low.images.mean() < 30 and high.images.mean() > 225


@pytest.mark.parametrize("norm_p", [6, 3])
def test_written_out_regularizer_gradient_equals_autodiff(norm_p):
    import tensorflow as tf
    from tf_keras_vis.activation_maximization.regularizers import Norm, TotalVariation2D

    from pytest_actaudit.engine.loop import EngineSettings
    from pytest_actaudit.engine.objective import norm_value, penalty, tv_value

    settings = EngineSettings(norm_p=norm_p)
    # tf-keras-vis's regularizers are the definition; the engine's own values equal them
    tv = TotalVariation2D(weight=settings.tv_weight)
    norm = Norm(weight=settings.norm_weight, p=norm_p)
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (3, 16, 12, 3)), tf.float32)
    np.testing.assert_allclose(tv_value(x, settings.tv_weight).numpy(), tv(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        norm_value(2.0 * x - 1.0, settings.norm_weight, norm_p).numpy(),
        norm(2.0 * x - 1.0).numpy(),
        rtol=1e-6,
    )
    upstream = tf.constant([1.0, 0.5, 2.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        written = tf.reduce_sum(upstream * penalty(x, settings))
        autodiff = tf.reduce_sum(upstream * (tv(x) + norm(2.0 * x - 1.0)))
    np.testing.assert_allclose(written.numpy(), autodiff.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(written, x).numpy(), tape.gradient(autodiff, x).numpy(), rtol=1e-4, atol=1e-7
    )


@pytest.mark.parametrize("shape", [(16, 16, 3), (15, 12, 1), (9, 10, 3)])
def test_fourier_written_out_adjoint_and_phase_shift_equal_autodiff(shape):
    """The Fourier image's gradient is written out (real FFT, colour transpose, phase
    back); it must equal autodiff through the plain formulation, odd sizes included."""
    import tensorflow as tf

    from pytest_actaudit.engine.params import FourierParam

    param = FourierParam(shape)
    x = tf.constant(np.stack([param.initial(i) for i in range(3)]) * 30.0)
    weights = tf.constant(np.random.default_rng(1).normal(size=(3, *shape)), tf.float32)
    shift = tf.constant(np.random.default_rng(2).uniform(-3, 3, (3, 2)), tf.float32)
    height, width, _ = shape
    for moved in (None, shift):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            written = tf.reduce_sum(param.to_unit(x, moved) * weights)
            spectrum = tf.complex(x[:, 0] * param.scale, x[:, 1] * param.scale)
            if moved is not None:
                angle = param.fy[None] * moved[:, 1, None, None]
                angle += param.fx[None] * moved[:, 0, None, None]
                spectrum *= tf.exp(tf.complex(0.0, angle))[:, None]
            raw = tf.signal.irfft2d(spectrum, fft_length=[height, width])
            raw = tf.transpose(raw, [0, 2, 3, 1])
            if param.color is not None:
                raw = tf.einsum("bhwc,dc->bhwd", raw, param.color)
            plain = tf.reduce_sum(tf.sigmoid(raw) * weights)
        np.testing.assert_allclose(written.numpy(), plain.numpy(), rtol=1e-5)
        np.testing.assert_allclose(
            tape.gradient(written, x).numpy(),
            tape.gradient(plain, x).numpy(),
            rtol=1e-4,
            atol=1e-6,
        )
    # an integer shift is a roll: image(p) → image(p − d)
    rolled = param.to_unit(x, tf.constant([[2.0, -1.0]] * 3))
    np.testing.assert_allclose(
        rolled.numpy(), tf.roll(param.to_unit(x), [-1, 2], [1, 2]).numpy(), atol=1e-5
    )


def test_one_trace_per_batch_size_whatever_the_step_count(color_model):
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    engine = Engine(color_model, input_spec(color_model), EngineSettings(lanes=2))
    for steps in (2, 3, 5):
        engine.run([(0, 0), (1, 1)], steps=steps)
    assert engine._optimize.experimental_get_tracing_count() == 1
    engine.run([(0, 0)], steps=4)
    assert engine._optimize.experimental_get_tracing_count() == 2
    # the loop itself (most of the tracing) once for every lane and batch size: lanes
    # of 1 and 1, a lone image, lanes of 3 and 2
    engine.run([(0, 0), (1, 1), (2, 2), (0, 3), (1, 4)], steps=4)
    assert engine._lane_fn.experimental_get_tracing_count() == 1
    # the evaluation once for everything: every batch size, and the probe's attribution
    engine.inference.attribution(np.zeros((7, *engine.spec.shape), np.uint8), 1)
    assert engine.inference.evaluate.experimental_get_tracing_count() == 1


def test_the_evaluation_traced_aside_hands_its_error_to_the_caller(color_model, monkeypatch):
    """The first chunk traces the evaluation on a helper thread while the loop runs;
    an error there is raised in the caller's thread, and the next call traces again."""
    from pytest_actaudit.engine.inference import Inference
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    engine = Engine(color_model, input_spec(color_model), EngineSettings())
    threads = []

    def broken(self):
        threads.append(threading.current_thread().name)
        raise RuntimeError("tracing failed aside")

    monkeypatch.setattr(Inference, "_warm_evaluation", broken)
    with pytest.raises(RuntimeError, match="tracing failed aside"):
        engine.run([(0, 0)], steps=2)
    assert threads == ["actaudit-trace"]
    monkeypatch.undo()
    (result,) = engine.run([(0, 0)], steps=2)
    assert np.isfinite(result.logit)
    assert engine.inference.evaluate.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("parametrization", ["fourier", "pixel"])
def test_quantized_on_the_device_and_evaluated_aside_gives_the_same_images_and_scores(
    parametrization,
):
    """The loop's images are quantized inside the compiled call and evaluated by their
    own function, traced on a helper thread during the first run (no host round trip):
    bit for bit what quantizing on the host gives, and the scores of evaluating those
    images step by step (eagerly), on the demo models."""
    import tensorflow as tf

    from pytest_actaudit.engine import transforms
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    for name in ("clean", "shortcut"):
        model = pytest_actaudit.load_model(DEMO_MODELS / f"{name}.keras")
        settings = EngineSettings(parametrization=parametrization)
        engine = Engine(model, input_spec(model), settings)
        plan, steps = [(t, s) for t in range(4) for s in range(3)], 24  # whole lanes
        results = engine.run(plan, steps)
        side = min(engine.spec.height, engine.spec.width)
        init = np.stack([engine._initial(seed) for _, seed in plan])
        params = np.stack(
            [
                transforms.draw_params(
                    seed,
                    steps,
                    jitter=settings.jitter * side,
                    degrees=settings.degrees,
                    scale=settings.scale,
                )
                for _, seed in plan
            ]
        )
        targets = tf.constant([t for t, _ in plan], tf.int32)
        unit, _, _, _ = tf.function(engine._optimize_graph, autograph=False)(
            tf.constant(init), targets, tf.constant(params), tf.constant(steps)
        )
        host = np.round(np.nan_to_num(unit.numpy()) * 255.0).astype(np.uint8)
        logits, probs, attribution, _ = engine.inference._evaluate_graph(tf.constant(host), targets)
        np.testing.assert_array_equal(np.stack([r.image for r in results]), host)
        np.testing.assert_allclose([r.logit for r in results], logits.numpy(), rtol=1e-6)
        np.testing.assert_allclose([r.probability for r in results], probs.numpy(), atol=1e-6)
        np.testing.assert_allclose(
            np.stack([r.attribution for r in results]), attribution.numpy(), rtol=1e-5, atol=1e-7
        )


def test_a_second_maximize_on_the_same_model_reuses_the_traced_engine(color_model):
    from pytest_actaudit.engine import registry

    registry.clear_engines()
    first = pytest_actaudit.maximize(color_model, "all", seeds=2, steps=6)
    (engine,) = registry._engines.values()
    second = pytest_actaudit.maximize(color_model, "all", seeds=2, steps=6)
    assert list(registry._engines.values()) == [engine]
    assert engine._optimize.experimental_get_tracing_count() == 1
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.stack(a.images), np.stack(b.images))
    # the same model trained further in place: its weights' hash changes, a new engine
    model = build_color_model()
    pytest_actaudit.maximize(model, 0, seeds=1, steps=2)
    model.layers[-1].set_weights([w + 1.0 for w in model.layers[-1].get_weights()])
    pytest_actaudit.maximize(model, 0, seeds=1, steps=2)
    assert len(registry._engines) == 3
    for _ in range(registry.KEEP_ENGINES):  # bounded: the oldest go first
        pytest_actaudit.maximize(build_color_model(), 0, seeds=1, steps=2)
    assert len(registry._engines) == registry.KEEP_ENGINES
    assert engine not in registry._engines.values()
    registry.clear_engines()
    assert not registry._engines


def test_automatic_batch_bound_from_layer_outputs_and_memory(color_model, monkeypatch):
    import keras

    from pytest_actaudit.engine import device
    from pytest_actaudit.engine.device import bytes_per_image
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 256 floats
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(hidden))  # 4 + 2
    model = keras.Model(inputs, outputs)
    # input 192 + conv 256 + pool 4 + dense 2, twice, and 12 images of 192
    assert bytes_per_image(model, (8, 8, 3)) == 4 * (2 * (192 + 256 + 4 + 2) + 12 * 192)
    nested = keras.Sequential([keras.Input((8, 8, 3)), model])
    assert bytes_per_image(nested, (8, 8, 3)) >= bytes_per_image(model, (8, 8, 3))

    budget, source = device.memory_budget("/device:CPU:0")
    assert budget > 0 and "available" in source
    assert device.memory_budget("/device:GPU:0")[0] == device.GPU_BUDGET
    monkeypatch.setattr(device, "memory_budget", lambda device: (10 * 6_000, "test"))
    engine = Engine(color_model, input_spec(color_model), EngineSettings())
    per_image = bytes_per_image(color_model, (16, 12, 3))
    assert engine.max_batch == max(1, 60_000 // per_image)
    assert engine.batch_source.startswith("auto: ") and engine.batch_source.endswith("test")
    results = engine.run([(k, s) for k in range(3) for s in range(3)], steps=2)
    assert len(results) == 9
    fixed = Engine(color_model, input_spec(color_model), EngineSettings(max_batch=5))
    assert (fixed.max_batch, fixed.batch_source) == (5, "set")


def test_max_batch_option_parses_auto_and_names_bad_values():
    from pytest_actaudit.settings import PARSERS, auto_or_positive

    assert auto_or_positive("auto", "--actaudit-max-batch") == 0
    assert auto_or_positive("32", "--actaudit-max-batch") == 32
    for bad in ("0", "-3", "many"):
        with pytest.raises(ValueError, match="--actaudit-max-batch must be 'auto' or a positive"):
            auto_or_positive(bad, "--actaudit-max-batch")
    with pytest.raises(ValueError, match=r"got 'x' \(for example actaudit_lanes = 2\)"):
        PARSERS["lanes"]("x", "actaudit_lanes")


def test_multi_output_model_picks_the_classifier_output_by_name(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    colour = keras.layers.Dense(3, activation="softmax", name="colour")
    age = keras.layers.Dense(1, name="age")
    model = keras.Model(inputs, [age(pooled), colour(pooled)])
    colour.set_weights([np.eye(3, dtype="float32") * 10.0, np.zeros(3, "float32")])
    with pytest.raises(
        ActauditError, match=r"has 2 outputs \('age', 'colour'\).*--actaudit-output"
    ):
        pytest_actaudit.maximize(model, 0, seeds=1, steps=2)
    with pytest.raises(
        ActauditError, match="has no output 'color'; its outputs are 'age', 'colour'"
    ):
        pytest_actaudit.maximize(model, 0, seeds=1, steps=2, output="color")
    (red,) = pytest_actaudit.maximize(
        model, 0, seeds=1, steps=20, output="colour", parametrization="pixel"
    )
    assert red.probabilities[0] > 0.99 and red.images[..., 0].mean() > 200
    assert len(model.outputs) == 2  # the user's model is untouched


def test_mixed_precision_model_float32_images_and_loss_scale():
    import keras

    from pytest_actaudit.engine.device import FLOAT16_LOSS_SCALE
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 3))
        head = keras.layers.Dense(3)
        logits = head(keras.layers.GlobalAveragePooling2D()(inputs))
        model = keras.Model(inputs, keras.layers.Activation("softmax", dtype="float32")(logits))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    head.set_weights([np.eye(3, dtype="float32") * 10.0, np.zeros(3, "float32")])
    assert head.compute_dtype == "float16"
    engine = Engine(model, input_spec(model), EngineSettings())
    assert engine.loss_scale == FLOAT16_LOSS_SCALE
    (red,) = pytest_actaudit.maximize(model, 0, seeds=2, steps=20, parametrization="pixel")
    assert red.images.dtype == np.uint8 and np.isfinite(red.curves).all()
    assert red.probabilities.min() > 0.99 and red.images[..., 0].mean() > 200


def test_automatic_batch_bound_of_an_opaque_savedmodel_layer():
    import keras

    from pytest_actaudit.engine.device import OPAQUE_BATCH, auto_batch

    class TFSMLayer(keras.layers.Layer):  # stands in for keras.layers.TFSMLayer
        def call(self, x):
            return keras.ops.mean(x, axis=[1, 2])

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, TFSMLayer()(inputs))
    batch, source = auto_batch(model, (8, 8, 3), "/device:CPU:0")
    assert batch == OPAQUE_BATCH and "opaque" in source


def test_lanes_give_the_same_images_as_one_loop(color_model):
    from pytest_actaudit.engine.device import lane_sizes
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    assert lane_sizes(7, 3) == [3, 2, 2] and lane_sizes(4, 2) == [2, 2]
    plan = [(k, s) for k in range(3) for s in range(2)]
    runs = {}
    for lanes in (1, 2, 4):
        engine = Engine(
            color_model,
            input_spec(color_model),
            EngineSettings(lanes=lanes, parametrization="pixel"),
        )
        assert (engine.lanes, engine.lanes_source) == (lanes, "set")
        assert (engine.lane_width, engine.chunk_lanes()) == (3, min(lanes, engine.max_batch // 3))
        runs[lanes] = engine.run(plan, steps=12)
    for lanes in (2, 4):
        for one, laned in zip(runs[1], runs[lanes], strict=True):
            assert (laned.target, laned.seed) == (one.target, one.seed)
            np.testing.assert_array_equal(laned.image, one.image)
            np.testing.assert_array_equal(laned.curve, one.curve)


def darkening_nan_model():
    """8×8 grey, 2 classes: raising class 0 darkens the image until its score is NaN
    (a square root of a negative mean); class 1 brightens it and stays finite."""
    import keras
    import tensorflow as tf

    class Unstable(keras.layers.Layer):
        def call(self, x):
            return tf.sqrt(tf.reduce_mean(x, axis=[1, 2]) - 0.45)  # NaN once it darkens

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(2, activation="softmax")(Unstable()(inputs))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[-5.0, 5.0]], "float32"), np.zeros(2, "float32")])
    return model


def test_a_failing_image_does_not_touch_its_lane_or_the_other_lane():
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec

    model = darkening_nan_model()
    engine = Engine(model, input_spec(model), EngineSettings(lanes=2, parametrization="pixel"))
    results = engine.run([(0, 0), (1, 0), (0, 1), (1, 1)], steps=40)  # lanes: 0,1 | 0,1
    assert [r.failed_step >= 0 for r in results] == [True, False, True, False]
    for good in results[1::2]:
        assert np.isfinite(good.curve).all() and good.probability > 0.9


def test_automatic_lanes(monkeypatch):
    from pytest_actaudit.engine import device

    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    many = device.AUTO_LANES
    assert device.auto_lanes("/device:GPU:0") == (many, "auto: GPU")
    monkeypatch.setattr(device, "usable_cores", lambda: 1)
    assert device.auto_lanes("/device:CPU:0") == (1, "auto: 1 CPU core")
    monkeypatch.setattr(device, "usable_cores", lambda: 8)
    assert device.auto_lanes("/device:CPU:0") == (many, "auto: 8 CPU cores")
    # pytest-xdist workers share the cores: 2 workers on 2 cores run one lane each.
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setattr(device, "usable_cores", lambda: 2)
    assert device.auto_lanes("/device:CPU:0") == (
        1,
        "auto: 2 CPU cores shared by 2 xdist workers",
    )
    monkeypatch.setattr(device, "usable_cores", lambda: 4)
    assert device.auto_lanes("/device:CPU:0")[0] == many
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "not a number")
    assert device.auto_lanes("/device:CPU:0") == (many, "auto: 4 CPU cores")
    # the width of a lane is the same everywhere: it decides the images
    assert device.auto_lane_width()[0] == device.LANE_WIDTH


def test_written_out_contrast_is_tensorflows_logsumexp_bit_for_bit():
    """The step's objective z_c − λ·logsumexp_{j≠c} z_j and its gradient, written out to
    keep the first call's graph small, are TensorFlow's own numbers exactly."""
    import tensorflow as tf

    from pytest_actaudit.engine.objective import logsumexp_others

    rng = np.random.default_rng(3)
    logits = tf.constant(rng.normal(0, 4, (9, 7)), tf.float32)
    targets = tf.constant(rng.integers(0, 7, 9), tf.int32)
    upstream = tf.constant(rng.normal(size=9), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        hot = tf.one_hot(targets, 7)
        score = tf.reduce_sum(logits * hot, axis=1)
        written = tf.reduce_sum(upstream * (score - 0.5 * logsumexp_others(logits, hot)))
        ref_score = tf.gather(logits, targets, axis=1, batch_dims=1)
        others = tf.where(hot > 0, -1e9, logits)
        reference = tf.reduce_sum(
            upstream * (ref_score - 0.5 * tf.reduce_logsumexp(others, axis=-1))
        )
    np.testing.assert_array_equal(score.numpy(), ref_score.numpy())
    np.testing.assert_array_equal(written.numpy(), reference.numpy())
    np.testing.assert_array_equal(
        tape.gradient(written, logits).numpy(), tape.gradient(reference, logits).numpy()
    )


def test_penalty_without_its_value_has_the_same_gradient():
    import tensorflow as tf

    from pytest_actaudit.engine.loop import EngineSettings
    from pytest_actaudit.engine.objective import penalty

    settings = EngineSettings()
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (3, 16, 12, 3)), tf.float32)
    grads = []
    for value in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(penalty(x, settings, value=value))
        grads.append(tape.gradient(total, x).numpy())
        assert (total.numpy() > 0) == value
    np.testing.assert_array_equal(grads[0], grads[1])


def test_the_engine_ranks_the_input_settings_as_data_and_the_runner_names_them(color_model):
    """The engine ranks the known input ranges and preprocessings by what it reads right,
    as (kind, name, accuracy); the settings' ini keys are the runner's words (issue 35)."""
    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model.inputs import input_spec
    from pytest_actaudit.run.runner import ranked_settings

    engine = Engine(color_model, input_spec(color_model), EngineSettings())
    images = np.zeros((3, 16, 12, 3), np.uint8)
    for colour in range(3):
        images[colour, ..., colour] = 255
    labels = np.arange(3)
    readings = engine.inference.rank_inputs(images, labels)
    assert {(r.kind, r.name) for r in readings} == {
        ("range", "0-255"),
        ("range", "0-1"),
        ("range", "-1-1"),
        ("preprocess", "caffe"),
        ("preprocess", "torch"),
    }
    accuracies = [r.accuracy for r in readings]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[0] == 1.0
    caffe = next(r for r in readings if r.name == "caffe")
    assert caffe.accuracy < 1.0  # blue and red swap places
    named = ranked_settings(engine.inference)(images, labels)
    assert named == [
        (
            {"range": "actaudit_input_range", "preprocess": "actaudit_preprocess"}[r.kind],
            r.name,
            r.accuracy,
        )
        for r in readings
    ]
    assert ("actaudit_preprocess", "caffe", caffe.accuracy) in named
