"""Object-free edits (the shortcut probe's fifth evidence): the bank, the margins, the
screening, and a partial shortcut that only they catch, on hand-made models."""

from __future__ import annotations

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import AuditFailure
from pytest_actaudit.checks import edits
from tests.conftest import COLORS, build_color_model
from tests.test_probe import references


@pytest.mark.parametrize("shape", [(20, 24, 3), (16, 16, 1)])
def test_every_edit_keeps_shape_and_type_and_is_repeatable(shape):
    images = np.random.default_rng(0).integers(0, 255, (3, *shape)).astype(np.uint8)
    bank = edits.bank(*shape[:2])
    kinds = {e.kind for e in bank}
    assert kinds == {"band", "frame", "dot", "mark", "colour cast", "background"}
    assert len({e.description for e in bank}) == len(bank)  # each says what it is
    for edit in bank:
        out = edit.apply(images, seed=1)
        assert out.shape == images.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, edit.apply(images, seed=1))
        assert not np.array_equal(out, images) or edit.kind == "background"


def test_a_band_touches_only_its_band():
    (band,) = [
        e
        for e in edits.bank(32, 32)
        if e.description == "a 2 px magenta band along the bottom edge"
    ]
    images = np.full((2, 32, 32, 3), 40, np.uint8)
    out = band.apply(images)
    np.testing.assert_array_equal(out[:, :30], images[:, :30])
    assert (out[:, 30:] == (255, 0, 255)).all()


def test_margins_are_log_ratios_to_the_strongest_other_class():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=7)
    every = edits.all_margins(p)
    for c in range(5):
        expected = np.log(p[:, c]) - np.log(np.delete(p, c, axis=1).max(axis=1))
        np.testing.assert_allclose(edits.margins(p, c), expected, rtol=1e-9)
        np.testing.assert_allclose(every[:, c], expected, rtol=1e-4, atol=1e-5)
    # the yardstick: right readings only
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert edits.typical_margin(probs, np.array([0, 0, 0])) == pytest.approx(
        np.median([np.log(9), np.log(4)])
    )


def band_shortcut_model(strength: float):
    """The colour model (it reads the whole image's colour) plus, with ``strength`` > 0,
    a detector of a magenta band along the bottom edge that adds to "blue": a partial
    shortcut — the model still reads every real image right."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    colour = keras.layers.GlobalAveragePooling2D()(x)
    colour_dense = keras.layers.Dense(3)
    logits = colour_dense(colour)
    bottom = keras.layers.Cropping2D(((14, 0), (0, 0)))(x)
    detector = keras.layers.Dense(1, activation="relu")
    magenta = detector(keras.layers.GlobalAveragePooling2D()(bottom))
    band = keras.layers.Dense(3, use_bias=False)
    logits = keras.layers.Add()([logits, band(magenta)])
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    kernel = np.full((3, 3), -5.0, np.float32)
    np.fill_diagonal(kernel, 10.0)
    colour_dense.set_weights([kernel, np.zeros(3, np.float32)])
    detector.set_weights(
        [np.array([[1.0], [-2.0], [1.0]], np.float32), np.array([-1.2], np.float32)]
    )
    band.set_weights([np.array([[0.0, 0.0, strength]], np.float32)])
    return model


def test_screen_names_the_band_the_model_learned():
    model = band_shortcut_model(100.0)
    images, labels = references()
    screen = edits.screen(images, labels, lambda x: model.predict(x, verbose=0))
    best = [screen.edits[e] for e in screen.best[2]]
    assert "magenta band along the bottom edge" in best[0].description
    assert screen.shares[screen.best[2][0], 2] == 1.0
    # other classes: no edit makes others read as them clearly
    assert screen.shares[:, 0].max() < 0.5 and screen.shares[:, 1].max() < 0.5


def test_the_edit_catches_a_partial_shortcut_and_passes_the_clean_model():
    def audit_of(model, label):
        (audit,) = pytest_actaudit.maximize(
            model, label, seeds=2, steps=30, labels=COLORS, parametrization="pixel",
            references=references(),
        )  # fmt: skip
        return audit

    shortcut = audit_of(band_shortcut_model(100.0), "blue")
    result = shortcut.shortcut_probe()
    assert result.class_accuracy == 1.0  # it reads every real blue image right
    edit = next(e for e in result.evidence if e.kind == "object-free edit")
    assert edit.score == 1.0 and "magenta band along the bottom edge" in edit.describe()
    assert edit.component is not None and (edit.component[-1] == (255, 0, 255)).all()
    with pytest.raises(AuditFailure, match=r"object-free edit.*magenta band along the bottom"):
        shortcut.assert_no_shortcut()
    for model in (band_shortcut_model(0.0), build_color_model(16, 16)):
        clean = audit_of(model, "blue")
        edit = next(e for e in clean.shortcut_probe().evidence if e.kind == "object-free edit")
        assert edit.score < 0.5
        clean.assert_no_shortcut()
