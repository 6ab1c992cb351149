"""The shortcut probe on hand-made models: one that reads only a corner (a shortcut)
and one that reads the whole image (the colour model)."""

from __future__ import annotations

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import AuditFailure
from pytest_actaudit.probe import paste, salient_window

from .conftest import COLORS, build_color_model


def corner_model():
    """Classifies by the colour of the top-left 4×4 corner only: a planted shortcut."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Cropping2D(((0, 12), (0, 12)))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(x))
    kernel = np.full((3, 3), -5.0, np.float32)
    np.fill_diagonal(kernel, 10.0)
    dense.set_weights([kernel, np.zeros(3, np.float32)])
    return model


def references(n: int = 8):
    """Mostly-one-colour images per class, with a grey top-left corner."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for k in range(3):
        for _ in range(n):
            image = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
            image[..., k] = rng.integers(180, 255, (16, 16))
            image[:5, :5] = 128
            images.append(image)
            labels.append(k)
    return np.stack(images), np.array(labels)


def audit_with_probe(model, label):
    (audit,) = pytest_actaudit.maximize(
        model, label, seeds=2, steps=30, labels=COLORS, parametrization="pixel"
    )
    from pytest_actaudit.engine.maximize import Engine, EngineSettings
    from pytest_actaudit.model import input_spec

    engine = Engine(model, input_spec(model), EngineSettings())
    refs, labels = references()
    audit.probe_context = lambda: (
        refs,
        labels,
        lambda x: engine.predict(x)[1],
        engine.attribution,
        engine.detectors,
    )
    return audit


def test_salient_window_and_paste():
    attribution = np.zeros((8, 8), np.float32)
    attribution[5:7, 1:3] = 1.0
    assert salient_window(attribution, 2) == (1, 5)
    target = np.zeros((2, 8, 8, 1), np.uint8)
    source = np.full((8, 8, 1), 9, np.uint8)
    out = paste(target, source, (1, 5, 2))
    assert out[:, 5:7, 1:3].min() == 9 and out.sum() == 2 * 4 * 9 and target.sum() == 0


def test_probe_flags_the_corner_shortcut():
    audit = audit_with_probe(corner_model(), "red")
    result = audit.shortcut_probe()
    assert result.strongest.kind == "window"
    assert "at x=0, y=0" in result.strongest.describe()  # the corner is where it comes from
    assert result.flip_rates.min() == 1.0 and result.control_rate < 0.5
    assert result.class_accuracy < 0.5  # a grey corner: it barely reads real red images
    with pytest.raises(
        AuditFailure, match=r"shortcut excess flip rate \(window\) failed.*strongest evidence"
    ):
        audit.assert_no_shortcut()


def test_probe_passes_the_whole_image_model():
    audit = audit_with_probe(build_color_model(16, 16), "green")
    result = audit.shortcut_probe()
    assert result.class_accuracy == 1.0
    assert result.excess.max() <= 0.2
    audit.assert_no_shortcut()


def test_probe_without_references_says_how_to_give_them():
    (audit,) = pytest_actaudit.maximize(build_color_model(), "red", seeds=1, steps=2, labels=COLORS)
    with pytest.raises(ValueError, match="--actaudit-references DIR"):
        audit.assert_no_shortcut()


def test_report_shows_the_transplanted_examples(tmp_path):
    from pytest_actaudit.report.writer import ImageSink, audit_record

    audit = audit_with_probe(corner_model(), "red")
    with pytest.raises(AuditFailure):
        audit.assert_no_shortcut()
    record = audit_record(audit, ImageSink(tmp_path))
    probe = record["probe"]
    assert probe["flip_rates"] == [1.0, 1.0] and len(probe["examples"]) == 4
    assert probe["strongest"] == "window" and probe["component"]
    assert {e["kind"] for e in probe["evidence"]} == {
        "window",
        "unseen detail",
        "colour",
        "low frequencies",
    }
    assert all((tmp_path / p).is_file() for p in [*probe["examples"], probe["component"]])
