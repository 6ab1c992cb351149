"""Preprocessing done outside the model (keras.applications modes, mean/std, a function):
the engine optimizes RGB 0-255 and applies it inside the step; references go through it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import ActauditError
from pytest_actaudit.preprocess import IMAGENET_MEAN_BGR, TORCH_MEAN, TORCH_STD, parse_preprocess
from tests.conftest import COLORS


def doubled(x):
    """A user's preprocessing: RGB 0-255 to 0-2."""
    return x / 127.5


# mode -> (channel order the model reads, mean, std) in 0-255 units
ARITHMETIC = {
    "caffe": ((2, 1, 0), IMAGENET_MEAN_BGR, (1.0, 1.0, 1.0)),
    "tf": ((0, 1, 2), (127.5,) * 3, (127.5,) * 3),
    "torch": ((0, 1, 2), tuple(255 * m for m in TORCH_MEAN), tuple(255 * s for s in TORCH_STD)),
    "mean=120,110,100,std=60,50,40,bgr": ((2, 1, 0), (120, 110, 100), (60, 50, 40)),
    "tests.test_preprocess:doubled": ((0, 1, 2), (0.0,) * 3, (127.5,) * 3),
}


def preprocessed_color_model(mode: str):
    """The colour model (logit of a colour = 10 × its channel mean − 5 × the others', on
    0-1 RGB), rebuilt to read input prepared by ``mode``: the same logits exactly."""
    import keras

    order, mean, std = ARITHMETIC[mode]
    inputs = keras.Input((16, 12, 3))
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    colour = np.full((3, 3), -5.0)
    np.fill_diagonal(colour, 10.0)
    kernel = np.stack([colour[order[i]] * std[i] / 255.0 for i in range(3)])
    bias = sum(colour[order[i]] * mean[i] / 255.0 for i in range(3))
    dense.set_weights([kernel.astype(np.float32), np.asarray(bias, np.float32)])
    return model


def colour_references(n: int = 5):
    rng = np.random.default_rng(3)
    images, labels = [], []
    for k in range(3):
        for _ in range(n):
            image = rng.integers(0, 60, (16, 12, 3)).astype(np.uint8)
            image[..., k] = rng.integers(180, 256, (16, 12))
            images.append(image)
            labels.append(k)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("mode", list(ARITHMETIC))
def test_each_preprocessing_reaches_the_class(mode):
    model = preprocessed_color_model(mode)
    (audit,) = pytest_actaudit.maximize(
        model,
        "red",
        seeds=2,
        steps=40,
        labels=COLORS,
        parametrization="pixel",
        preprocess=mode,
        references=colour_references(),
    )
    assert audit.probabilities.min() >= 0.9
    red, blue = audit.images[..., 0].mean(), audit.images[..., 2].mean()
    assert red > blue + 50  # RGB images, whatever order the model reads
    result = audit.shortcut_probe()  # references through the same preprocessing
    assert result.class_accuracy == 1.0
    audit.assert_no_shortcut()


def test_a_wrong_setting_ends_in_an_error_that_ranks_the_known_settings():
    model = preprocessed_color_model("caffe")
    (audit,) = pytest_actaudit.maximize(
        model,
        "red",
        seeds=1,
        steps=10,
        labels=COLORS,
        references=colour_references(),
        input_range="0-1",
    )
    with pytest.raises(ActauditError, match=r"reads only \d+% of the 15 trusted references") as e:
        audit.assert_no_shortcut()
    # the known settings, ranked: caffe reads them all
    assert "read right: actaudit_preprocess = caffe 100%" in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vgg", "unknown preprocessing 'vgg'"),
        ("mean=1,x", "'x' in 'mean=1,x' is not a number"),
        ("mean=1,std=0", "std must not be 0"),
        ("mean=1,scale=2", "unknown key 'scale'"),
    ],
)
def test_bad_preprocessing_names_the_value(text, message):
    with pytest.raises(ValueError, match=message):
        parse_preprocess(text)


def test_preprocessing_errors_at_model_time(color_model):
    with pytest.raises(ActauditError, match="cannot import module 'no_such_module'"):
        pytest_actaudit.maximize(
            color_model, "red", seeds=1, steps=1, preprocess="no_such_module:f"
        )
    with pytest.raises(ActauditError, match="give one"):
        pytest_actaudit.maximize(
            color_model, "red", seeds=1, steps=1, preprocess="tf", input_range="0-1"
        )
    with pytest.raises(ActauditError, match="2 mean values for a model with 3"):
        pytest_actaudit.maximize(color_model, "red", seeds=1, steps=1, preprocess="mean=1,2")


@pytest.fixture
def caffe_project(pytester, tmp_path):
    """A zero-code project auditing a caffe-input model; ``.ini(extra)`` writes its ini."""
    path = tmp_path / "caffe.keras"
    preprocessed_color_model("caffe").save(path)
    (tmp_path / "labels.txt").write_text("\n".join(COLORS) + "\n")

    def ini(extra: str) -> None:
        pytester.makeini(
            f"[pytest]\nactaudit_model = {path}\nactaudit_seeds = 2\nactaudit_steps = 30\n"
            f"actaudit_parametrization = pixel\nactaudit_min_probability = 0.9\n{extra}\n"
        )

    pytester.ini = ini
    return pytester


def test_plugin_applies_the_preprocessing_and_says_so(caffe_project):
    pytester = caffe_project
    pytester.ini("actaudit_preprocess = caffe")
    pytester.runpytest_inprocess("--actaudit").assert_outcomes(passed=3)
    report = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    (model,) = report["run"]["models"]
    assert "preprocessing 'caffe'" in model["input_range_source"]
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-preprocess", "vgg")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--actaudit-preprocess: unknown preprocessing 'vgg'*"])


def binary_model():
    """One sigmoid unit: logit 10 × (mean red − mean blue), on 0-255 RGB."""
    import keras

    inputs = keras.Input((16, 12, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.array([[10.0], [0.0], [-10.0]], np.float32), np.zeros(1, np.float32)])
    return model


def test_binary_head_audits_the_class_and_its_negation(tmp_path):
    model = binary_model()
    path = tmp_path / "binary.keras"
    model.save(path)
    (tmp_path / "labels.txt").write_text("red\n")
    refs, labels = colour_references()
    keep = labels != 1  # red and blue references: blue is "not red" (index 0)
    refs, labels = refs[keep], np.where(labels[keep] == 0, 1, 0)
    audits = pytest_actaudit.maximize(
        str(path), "all", seeds=2, steps=40, parametrization="pixel", references=(refs, labels)
    )
    assert [a.label for a in audits] == ["not red", "red"]
    negative, positive = audits
    assert positive.images[..., 0].mean() > positive.images[..., 2].mean() + 50
    assert negative.images[..., 2].mean() > negative.images[..., 0].mean() + 50
    for audit in audits:
        assert audit.probabilities.min() >= 0.9
        assert audit.shortcut_probe().class_accuracy == 1.0
        audit.assert_no_shortcut()
    probs = model.predict(positive.images.astype(np.float32), verbose=0)[:, 0]
    assert np.allclose(probs, positive.probabilities, atol=1e-5)  # the model's own sigmoid


def test_without_a_setting_the_references_choose_the_preprocessing():
    from pytest_actaudit.runner import AuditRunner, choose_input

    model = preprocessed_color_model("caffe")
    refs = colour_references()
    (audit,) = pytest_actaudit.maximize(
        model, "red", seeds=2, steps=40, labels=COLORS, parametrization="pixel", references=refs
    )
    assert audit.probabilities.min() >= 0.9  # optimized through caffe preprocessing
    assert audit.images[..., 0].mean() > audit.images[..., 2].mean() + 50
    audit.assert_no_shortcut()

    def make(input_range, preprocess, weights=None):
        return AuditRunner(
            model, labels=COLORS, input_range=input_range, preprocess=preprocess, weights=weights
        )

    default = make(None, None)
    chosen = choose_input(default, refs, make)
    assert chosen.spec.preprocess.text == "caffe"
    assert chosen.weights == default.weights  # the same model, hashed once
    assert "chosen from the trusted references: it reads 100%" in chosen.meta["input_range_source"]
    plain = preprocessed_color_model("tf")  # a model whose default already reads them
    kept = AuditRunner(plain, labels=COLORS, input_range="-1-1")
    assert choose_input(kept, refs, make) is kept


def test_plugin_chooses_the_preprocessing_from_the_references(caffe_project):
    import cv2

    pytester = caffe_project
    images, labels = colour_references()
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = pytester.path / "refs" / COLORS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    pytester.ini("actaudit_references = refs\nactaudit_max_flip_rate = 0.5")
    pytester.runpytest_inprocess("--actaudit").assert_outcomes(passed=3)
    report = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    (model,) = report["run"]["models"]
    assert model["input_range_source"].startswith("actaudit_preprocess = caffe, chosen from")
    html = (pytester.path / "actaudit-report" / "index.html").read_text()
    assert "chosen from the trusted references" in html


@pytest.fixture(scope="module")
def trained_caffe_model():
    """A small CNN trained on demo shapes fed the caffe way (BGR, ImageNet means off)."""
    import keras

    from pytest_actaudit.demo.shapes import make_shapes

    images, labels = make_shapes(2400, seed=11, size=32)
    caffe = images[..., ::-1].astype(np.float32) - np.array(IMAGENET_MEAN_BGR, np.float32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 128.0)(inputs)  # a leading Rescaling: it looks 0-255
    for filters in (16, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(caffe, labels, epochs=10, batch_size=64, verbose=0)
    return model


def test_a_model_trained_on_caffe_input_is_audited_through_caffe(trained_caffe_model):
    from pytest_actaudit.demo import LABELS
    from pytest_actaudit.demo.shapes import make_shapes

    refs = make_shapes(80, seed=12, size=32)
    audits = pytest_actaudit.maximize(
        trained_caffe_model, "all", seeds=2, steps=64, labels=list(LABELS), references=refs
    )
    for audit in audits:  # no setting given: the references chose caffe over 0-255
        assert audit.probabilities.min() >= 0.9, audit.label
        assert audit.shortcut_probe().class_accuracy >= 0.6, audit.label
    explicit = pytest_actaudit.maximize(
        trained_caffe_model, "all", seeds=2, steps=64, labels=list(LABELS), preprocess="caffe"
    )
    for chosen, given in zip(audits, explicit, strict=True):  # the same as setting it
        assert np.array_equal(chosen.images, given.images)
