"""The shortcut probe on hand-made models: one that reads only a corner (a shortcut)
and one that reads the whole image (the colour model)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import AuditFailure
from pytest_actaudit.checks.probe.window import paste, salient_window
from tests.conftest import COLORS, build_color_model


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
    """Mostly-one-colour images per class; the red ones with a grey top-left corner."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for k in range(3):
        for _ in range(n):
            image = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
            image[..., k] = rng.integers(180, 255, (16, 16))
            if k == 0:  # real red images do not carry the corner the model reads
                image[:5, :5] = 128
            images.append(image)
            labels.append(k)
    return np.stack(images), np.array(labels)


def audit_with_probe(model, label):
    (audit,) = pytest_actaudit.maximize(
        model,
        label,
        seeds=2,
        steps=30,
        labels=COLORS,
        parametrization="pixel",
        references=references(),
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
    window = next(e for e in result.evidence if e.kind == "window")
    assert "at x=0, y=0" in window.describe()  # the corner is where it comes from
    assert window.flip_rates.min() == 1.0 and window.score > 0.5
    assert result.class_accuracy < 0.5  # a grey corner: it barely reads real red images
    # red over that corner is what the real red images need to be read right
    needed = next(e for e in result.evidence if e.kind == "edit the class needs")
    assert needed.describe().startswith("a 2 px red band along the top edge") and needed.score == 1
    with pytest.raises(AuditFailure, match=r"flip rate \(.*\), median over seeds failed"):
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
    # the red band the real red images need beats the window (its control is raised)
    assert probe["strongest"] == "edit the class needs" and probe["component"]
    assert {e["kind"] for e in probe["evidence"]} == {
        "window",
        "unseen detail",
        "colour",
        "low frequencies",
        "object-free edit",
        "edit the class needs",
    }
    assert all((tmp_path / p).is_file() for p in [*probe["examples"], probe["component"]])
    # the card says what this evidence counts: the class's own references, with the edit
    assert (
        probe["example_captions"]
        == ["this class, with the edit"] * 2 + ["another class, with the edit"] * 2
    )
    assert probe["flipped"].startswith("this class's") and "accuracy" in probe["control_what"]
    from pytest_actaudit.report.writer import write_report
    from tests.reportdata import RUN

    record.update(nodeid="t::red", passed=False)
    page = write_report(tmp_path / "r", run=RUN, records=[record], outcomes={}).read_text()
    assert "It makes the model read" in page and "this class, with the edit</figcaption>" in page
    assert "Carried into" not in page


def halves_model(extra: str, plain_bias: float = 2.0):
    """Classes 'left' / 'right' (which half is brighter) and 'plain' (bias), where
    'plain' also rises with a planted shortcut: ``extra="cast"`` the image's red minus
    blue; ``extra="tag"`` the strongest magenta pixel (a 1×1 conv detector that no
    grey, white or black reference fires). A negative ``plain_bias``: a plain image is
    read as 'plain' only with the shortcut (a total one)."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    halves = keras.layers.Flatten()(keras.layers.AveragePooling2D((16, 8))(x))
    if extra == "cast":
        cue = keras.layers.GlobalAveragePooling2D()(x)
    else:
        detector = keras.layers.Conv2D(1, 1, activation="relu", name="magenta")
        cue = keras.layers.GlobalMaxPooling2D()(detector(x))
    features = keras.layers.Concatenate()([halves, cue])
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(features))
    kernel = np.zeros((features.shape[-1], 3), np.float32)
    kernel[0:3, 0], kernel[3:6, 0] = 10 / 3, -10 / 3  # left brighter
    kernel[0:3, 1], kernel[3:6, 1] = -10 / 3, 10 / 3  # right brighter
    if extra == "cast":
        kernel[6, 2], kernel[8, 2] = 30.0, -30.0  # red minus blue
    else:
        kernel[6, 2] = 20.0
        detector.set_weights([np.array([[[[1.0], [-2.0], [1.0]]]], np.float32), np.array([0.05])])
    dense.set_weights([kernel, np.array([0.0, 0.0, plain_bias], np.float32)])
    return model


def halves_references(n: int = 6):
    """Grey-level images: left half bright, right half bright, or plain mid-grey."""
    rng = np.random.default_rng(1)
    images, labels = [], []
    for k in range(3):
        for _ in range(n):
            image = np.full((16, 16, 3), 128, np.int16) + rng.integers(-8, 9, (16, 16, 1))
            if k < 2:
                image[:, :8] = 210 if k == 0 else 40
                image[:, 8:] = 40 if k == 0 else 210
            images.append(np.clip(image, 0, 255).astype(np.uint8))
            labels.append(k)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize(("extra", "evidence"), [("cast", "colour"), ("tag", "unseen detail")])
def test_probe_names_a_shortcut_the_window_misses(extra, evidence):
    model = halves_model(extra)
    refs, labels = halves_references()
    (audit,) = pytest_actaudit.maximize(
        model,
        "plain",
        seeds=2,
        steps=60,
        labels=["left", "right", "plain"],
        parametrization="pixel",
        references=(refs, labels),
    )
    result = audit.shortcut_probe()
    assert result.class_accuracy == 1.0  # the real class is read right: no ceiling helps
    assert result.strongest.kind == evidence
    assert result.strongest.control_rate <= 0.1 and result.excess.min() >= 0.8
    with pytest.raises(AuditFailure, match=rf"rate \({evidence}\), median over seeds failed"):
        audit.assert_no_shortcut()
    clean = [e for e in result.evidence if e.kind == "window"]
    assert clean[0].score <= 0.0  # the window alone would have passed this model


def test_probe_names_the_edit_a_class_needs():
    # 'plain' is read only under a warm light: its own plain references are read wrong,
    # so no transfer from them is a control worth having; the warm cast both makes them
    # read right and makes the other classes' references read as 'plain'.
    refs, labels = halves_references()

    def needed_of(model):
        (audit,) = pytest_actaudit.maximize(
            model,
            "plain",
            seeds=2,
            steps=30,
            labels=["left", "right", "plain"],
            parametrization="pixel",
            references=(refs, labels),
            input_range="0-255",
        )  # fmt: skip (the range given: another one would read the plain references)
        result = audit.shortcut_probe()
        return audit, result, next(e for e in result.evidence if e.kind == "edit the class needs")

    audit, result, needed = needed_of(halves_model("cast", plain_bias=-2.0))
    assert result.class_accuracy == 0.0
    assert needed.control_rate == 0.0 and needed.score == 1.0
    # the model reads the mean red minus blue: a warm cast or a red frame both give it
    assert re.match(r"a (warm colour cast|\d px red (frame|band))", needed.describe())
    assert "0% without it, 100% with it" in needed.describe()
    assert needed.component is not None and len(needed.examples) == 4
    with pytest.raises(AuditFailure, match=r"edit the class needs \+1\.00"):
        audit.assert_no_shortcut()
    # the same cue on a class whose plain references are read right: nothing to raise
    _, result, needed = needed_of(halves_model("cast"))
    assert result.class_accuracy == 1.0 and needed.score <= 0.0


def test_probe_colour_that_is_the_object_passes():
    # The colour model's classes are colours: the class's own references carry the same
    # colour, so the control flips as much as the maximization image does.
    audit = audit_with_probe(build_color_model(16, 16), "blue")
    colour = [e for e in audit.shortcut_probe().evidence if e.kind == "colour"][0]
    assert colour.flip_rates.min() == 1.0 and colour.control_rate == 1.0
    audit.assert_no_shortcut()


def test_detectors_read_the_last_spatial_layer(color_model):
    import keras

    from pytest_actaudit.engine.loop import Engine, EngineSettings
    from pytest_actaudit.model import input_spec

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    engine = Engine(model, input_spec(model), EngineSettings())
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    maxima, places = engine.inference.detectors(images)
    assert maxima.shape == (3, 5) and places.shape == (3, 5, 2)
    assert places.min() >= 0 and places.max() < 8  # pixel centres of 4 × 4 map cells
    assert set(np.unique(places)) <= {1.0, 3.0, 5.0, 7.0}

    flat_in = keras.Input((6,))
    flat = keras.Model(flat_in, keras.layers.Dense(2)(flat_in))
    from pytest_actaudit.engine.targets import detector_model

    assert detector_model(flat) is None


def test_probe_refuses_references_the_model_cannot_read():
    from pytest_actaudit import ActauditError

    audit = audit_with_probe(build_color_model(16, 16), "green")
    refs, labels = references()
    inverted = 255 - refs  # as if fed in the wrong range: the colours swap
    context = audit.probe_context
    audit.probe_context = lambda: (inverted, labels, *context()[2:])
    with pytest.raises(ActauditError, match=r"reads only \d+% of the 24 trusted references"):
        audit.assert_no_shortcut()


def test_references_are_read_once_per_model_not_once_per_class(monkeypatch):
    from pytest_actaudit.engine.inference import Inference

    refs, labels = references()
    seen = []
    for name in ("predict", "detectors"):
        original = getattr(Inference, name)

        def counting(self, images, _original=original, _name=name):
            if len(images) == len(refs) and np.array_equal(images, refs):
                seen.append(_name)
            return _original(self, images)

        monkeypatch.setattr(Inference, name, counting)
    from pytest_actaudit.checks import edits

    screens = []
    original_screen = edits.screen

    def counting_screen(*args, **kwargs):
        screens.append(1)
        return original_screen(*args, **kwargs)

    monkeypatch.setattr(edits, "screen", counting_screen)
    audits = pytest_actaudit.maximize(
        corner_model(), "all", seeds=2, steps=10, labels=COLORS, references=(refs, labels)
    )
    for audit in audits:
        audit.shortcut_probe()
    assert sorted(seen) == ["detectors", "predict", "predict"]  # + choose_input's one read
    assert len(screens) == 1  # the object-free edits: screened once for the 3 classes


def _unseen(novelty: list[float], flips: list[float]):
    from pytest_actaudit.checks.probe import Evidence

    return Evidence(
        "unseen detail",
        [f"seed {i}" for i in range(len(flips))],
        np.array(flips),
        0.05,
        novelty=np.array(novelty),
    )


def test_a_decisive_unseen_detector_counts_in_one_seed() -> None:
    """A detector far beyond anything the trusted images fire is no odd seed: its
    seed's excess counts alone; below DECISIVE_NOVELTY the median decides."""
    from pytest_actaudit.checks.probe import DECISIVE_NOVELTY

    flips = [0.05, 0.9, 0.1]
    decisive = _unseen([5.0, DECISIVE_NOVELTY + 49, 4.0], flips)
    assert decisive.decisive_seed == 1 and decisive.score == pytest.approx(0.85)
    merely_novel = _unseen([5.0, DECISIVE_NOVELTY - 1, 4.0], flips)
    assert merely_novel.decisive_seed is None and merely_novel.score == pytest.approx(0.05)
    # several decisive seeds: the one with the largest excess
    assert _unseen([40.0, 35.0, 90.0], [0.3, 0.6, 0.2]).decisive_seed == 1


def test_shortcut_check_fails_on_a_decisive_seed_and_says_so() -> None:
    from pytest_actaudit.checks.audit import ClassAudit
    from pytest_actaudit.checks.probe import Evidence, ProbeResult

    def audit(novelty: list[float]) -> ClassAudit:
        a = ClassAudit(
            "cross", 3, np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3), np.zeros(3),
            [0, 1, 2], 4, np.zeros((3, 4)),
        )  # fmt: skip
        window = Evidence("window", "16 px window", np.array([0.3, 0.3, 0.3]), 0.2)
        a.probe_result = ProbeResult([window, _unseen(novelty, [0.0, 0.0, 0.87])], 20, 60, 1.0)
        return a

    failing = audit([5.0, 5.0, 79.0])
    with pytest.raises(AuditFailure, match=r"seed 2: a detector 79× beyond any trusted image"):
        failing.assert_no_shortcut()
    record = failing.checks[-1]
    assert not record.passed and record.metric.endswith("or a decisive seed")
    assert "strongest evidence: unseen detail, seed 2" in record.message
    # not decisive: the median (0.0) decides, and the strongest evidence is still named
    passed = audit([5.0, 5.0, 20.0]).assert_no_shortcut()
    message = passed.checks[-1].message
    assert passed.checks[-1].passed and "(median 0.1)" in message
    assert "counts alone" not in message and passed.checks[-1].metric.endswith("over seeds")


def test_where_and_pictures_follow_the_deciding_seed() -> None:
    """With more seeds the largest flip rate may be another seed's: the description is
    the deciding seed's."""
    e = _unseen([15.0, 5.0, 5.0, 5.0, 40.0], [0.95, 0.0, 0.0, 0.0, 0.9])
    assert e.deciding_seed == 4 and e.describe() == "seed 4"
    assert e.score == pytest.approx(0.85)
    assert _unseen([15.0, 5.0, 5.0], [0.95, 0.0, 0.0]).describe() == "seed 0"


def test_a_detector_that_is_not_finite_hides_no_other() -> None:
    from pytest_actaudit.checks.probe import DECISIVE_NOVELTY
    from pytest_actaudit.checks.probe.unseen import detector_novelty

    trusted = np.array([[1.0, 2.0, 1.0], [0.5, np.nan, 1.0]], np.float32)
    fired = np.array([[80.0, 5.0, np.nan], [0.5, 1.0, 1.0]], np.float32)
    novelty = detector_novelty(trusted, fired)
    assert np.all(np.isfinite(novelty))
    # a NaN on a trusted image voids the detector; a NaN on a seed's image, that seed's
    assert np.allclose(novelty[:, 1:], [[0.0, 0.0], [0.0, 1.0 / 1.01]])
    # the first seed's first detector is still decisive beside the NaN ones
    assert novelty.max(axis=1)[0] >= DECISIVE_NOVELTY
    # finite responses: the same ratio as before (peak over the trusted maximum + floor)
    clean = detector_novelty(trusted[:1], fired[1:])
    assert np.allclose(clean, fired[1:] / (trusted[:1] + 0.01))
