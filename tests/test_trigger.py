"""The trigger search: the outlier score (``checks.trigger``, numpy) on hand-made sizes,
and the batched search (``engine.trigger``) on a tiny model with a planted band."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from pytest_actaudit.checks import trigger as judge


def test_the_anomaly_index_is_neural_cleanses_on_the_small_side():
    sizes = {0: 0.01, 1: 0.10, 2: 0.11, 3: 0.12, 4: 0.13}
    # median 0.11, deviations (0.10, 0.01, 0, 0.01, 0.02): MAD 0.01
    assert judge.anomaly_index(sizes, 0) == pytest.approx(0.10 / (1.4826 * 0.01))
    assert judge.anomaly_index(sizes, 4) == 0.0  # larger than the median: no trigger
    assert judge.anomaly_index(sizes, 2) == 0.0


def test_equal_sizes_flag_no_class():
    assert judge.anomaly_index({0: 0.2, 1: 0.2, 2: 0.2}, 1) == 0.0


def test_a_reading_takes_the_stronger_kind_and_places_the_class():
    masks = {0: 0.02, 1: 0.10, 2: 0.11, 3: 0.12}
    colours = {0: 0.30, 1: 0.31, 2: 0.29, 3: 0.30}
    reading = judge.read(masks, colours, 0)
    assert reading.kind == "mask" and reading.rank == 1 and reading.compared == 4
    assert reading.anomaly == reading.mask_anomaly > judge.DEFAULT_MAX_ANOMALY
    assert "1 of 4 classes" in reading.describe()
    assert set(reading.to_dict()) >= {"anomaly", "kind", "rank", "compared"}


def test_a_kind_is_judged_among_the_classes_it_reached():
    masks = {0: 0.2, 1: 0.21, 2: 0.22, 3: 0.2}
    # one class reached by a colour change, the others never: no null to compare with
    colours = {0: 1.0, 1: 0.4, 2: 1.0, 3: 1.0}
    assert judge.read(masks, colours, 1).colour_anomaly == 0.0
    # three reached: the smallest is judged among them; an unreached class is no outlier
    colours = {0: 0.40, 1: 0.05, 2: 0.41, 3: 1.0}
    assert judge.read(masks, colours, 1).colour_anomaly > 2
    assert judge.read(masks, colours, 3).colour_anomaly == 0.0


def test_an_unreached_class_is_described_as_such():
    reading = judge.read({0: 1.0, 1: 0.2, 2: 0.3}, {0: 1.0, 1: 1.0, 2: 1.0}, 0)
    assert reading.describe() == (
        "no mask edit turned enough of the other classes' references into it, anomaly index 0.00"
    )


def test_a_reading_needs_three_classes_and_the_same_ones_in_both_kinds():
    with pytest.raises(ValueError, match="at least 3 classes"):
        judge.read({0: 0.1, 1: 0.2}, {0: 0.1, 1: 0.2}, 0)
    with pytest.raises(ValueError, match="same classes"):
        judge.read({0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.1, 1: 0.2, 3: 0.3}, 0)
    with pytest.raises(ValueError, match="class 7 has no trigger size"):
        judge.anomaly_index({0: 0.1}, 7)


def test_the_null_is_every_class_of_a_small_model_and_a_fixed_sample_of_a_large_one():
    assert judge.null_classes(4, [2]) == [2, 0, 1, 3]
    big = judge.null_classes(1000, [478, 3])
    assert big[:2] == [478, 3] and len(big) == 2 + judge.NULL_CLASSES
    assert len(set(big)) == len(big)
    assert judge.null_classes(1000, [478, 3]) == big  # the same null every run
    with pytest.raises(ValueError, match="outside the model's 4 classes"):
        judge.null_classes(4, [4])


def test_roc_auc_counts_ties_half():
    assert judge.roc_auc([3.0, 2.0], [1.0, 0.0]) == 1.0
    assert judge.roc_auc([1.0], [1.0]) == 0.5
    assert np.isnan(judge.roc_auc([], [1.0]))


COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]], np.float32)
NAMES = ["red", "green", "blue", "yellow", "cyan"]


def band_model(strength: float):
    """Five colour classes read by the nearest mean colour (a linear head, exact), plus,
    with ``strength`` > 0, a magenta band along the bottom two rows that adds to "blue":
    a small trigger for blue, where every other class needs much of the image."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    head = keras.layers.Dense(5)
    logits = head(keras.layers.GlobalAveragePooling2D()(x))
    bottom = keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(((14, 0), (0, 0)))(x))
    band = keras.layers.Dense(5, use_bias=False)
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Add()([logits, band(bottom)])))
    centres = (40 + 160 * COLOURS) / 255.0
    head.set_weights([40 * centres.T, -20 * (centres**2).sum(1)])
    kernel = np.zeros((3, 5), np.float32)
    kernel[:, 2] = strength * np.array([1, -2, 1])
    band.set_weights([kernel])
    return model


def colour_references() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = [np.clip(40 + 160 * c + rng.normal(0, 20, (6, 16, 16, 3)), 0, 255) for c in COLOURS]
    return np.concatenate(images).astype(np.uint8), np.repeat(np.arange(5), 6)


def search(strength: float):
    from pytest_actaudit.engine.trigger import TriggerSearch, TriggerSettings
    from pytest_actaudit.model import inputs as model_mod

    model = band_model(strength)
    images, labels = colour_references()
    found = TriggerSearch(model, model_mod.input_spec(model), TriggerSettings()).run(
        images, labels, range(5)
    )
    return found, images, labels


def test_the_search_finds_the_band_and_judges_blue_an_outlier():
    found, images, labels = search(20.0)
    blue = found[2]
    assert blue.mask_size < 0.2 < min(t.mask_size for t in found if t.target != 2)
    rows = blue.mask.mean(axis=1)
    assert rows[14:].mean() > 5 * rows[:14].mean()  # the mask lies on the band
    reading = judge.read(
        {t.target: t.mask_size for t in found}, {t.target: t.colour_size for t in found}, 2
    )
    assert reading.anomaly > judge.DEFAULT_MAX_ANOMALY and reading.rank == 1
    # the kept trigger does what the search says: it turns blue most other classes' images
    others = images[labels != 2]
    read = band_model(20.0).predict(blue.stamped(others), verbose=0).argmax(1)
    assert np.mean(read == 2) >= 0.75
    # each target's images are other classes', the same count for every target
    assert all(len(t.images) == 8 for t in found)


def test_a_clean_model_has_no_outlier():
    found, _, _ = search(0.0)
    masks = {t.target: t.mask_size for t in found}
    colours = {t.target: t.colour_size for t in found}
    assert max(judge.read(masks, colours, k).anomaly for k in range(5)) < 2.0


def test_a_trigger_does_not_depend_on_what_else_is_searched():
    from pytest_actaudit.engine.trigger import TriggerSearch, TriggerSettings
    from pytest_actaudit.model import inputs as model_mod

    model = band_model(20.0)
    images, labels = colour_references()
    search = TriggerSearch(model, model_mod.input_spec(model), TriggerSettings(steps=8))
    (alone,) = search.run(images, labels, [2])
    together = search.run(images, labels, [0, 2, 4])[1]
    np.testing.assert_allclose(alone.mask, together.mask, atol=1e-5)


def test_images_for_targets_are_other_classes_round_robin():
    from pytest_actaudit.engine.trigger import images_for_targets

    labels = np.repeat(np.arange(3), 4)
    chosen = images_for_targets(labels, [0, 1], per_class=6)
    assert (labels[chosen[0]] != 0).all() and (labels[chosen[1]] != 1).all()
    assert sorted(np.bincount(labels[chosen[0]], minlength=3)[1:]) == [3, 3]
    with pytest.raises(ValueError, match="every reference given is of this class"):
        images_for_targets(np.zeros(4, np.int64), [0], per_class=2)


def test_assert_no_trigger_fails_blue_and_passes_the_others_in_one_search():
    import pytest_actaudit
    from pytest_actaudit import AuditFailure
    from pytest_actaudit.report.writer import ImageSink, audit_record

    audits = pytest_actaudit.maximize(
        band_model(20.0), "all", seeds=1, steps=4, labels=NAMES, references=colour_references()
    )
    with pytest.raises(AuditFailure, match=r"'blue'.*trigger.*1 of 5 classes by size"):
        audits[2].assert_no_trigger()
    searched = audits[2].trigger_evidence.seconds
    audits[0].assert_no_trigger()  # judged from the same search: nothing searched again
    assert audits[0].trigger_evidence.seconds == searched
    assert [c.passed for c in audits[0].checks] == [True]
    record = audit_record(audits[2], ImageSink(Path(tempfile.mkdtemp())))
    assert record["trigger"]["rank"] == 1 and record["trigger"]["kind"] == "mask"
    assert len(record["trigger"]["examples"]) == 3


def test_assert_no_trigger_needs_references():
    import pytest_actaudit

    (audit,) = pytest_actaudit.maximize(band_model(0.0), ["red"], seeds=1, steps=2, labels=NAMES)
    with pytest.raises(ValueError, match="assert_no_trigger needs reference images"):
        audit.assert_no_trigger()


def test_a_class_asked_later_is_searched_alone_and_judged_against_the_same_null():
    from types import SimpleNamespace

    from pytest_actaudit.run.triggers import TriggerMemo

    searched: list[list[int]] = []

    small: set[int] = set()  # classes with a small trigger, chosen below

    def size(k: int) -> float:  # every class about 0.2 of the image, the small ones 0.02
        return 0.02 if k in small else 0.2 + 0.001 * k

    class Search:
        def run(self, images, labels, classes):
            searched.append(list(classes))
            return [
                SimpleNamespace(
                    target=k,
                    mask_size=size(k),
                    colour_size=1.0,
                    mask=np.zeros((4, 4)),
                    pattern=np.zeros((4, 4, 3), np.uint8),
                    mask_success=0.9,
                    colour_success=0.0,
                    seconds=0.1,
                    images=np.zeros((2, 4, 4, 3), np.uint8),
                    stamped=lambda x: x,
                    recoloured=lambda x: x,
                )
                for k in classes
            ]

    memo = TriggerMemo(Search(), np.zeros((8, 4, 4, 3)), np.repeat(np.arange(4), 2), 40)
    first = memo.evidence(0, audited=[1])
    # one batch: the class, the audited one and a sample of 20 of the 38 others
    assert searched[0][:2] == [0, 1] and len(searched[0]) == 2 + judge.NULL_CLASSES
    late, outlier = [k for k in range(40) if k not in searched[0]][:2]
    memo.evidence(late, audited=[])
    assert searched[1] == [late]  # alone
    assert memo.evidence(late, audited=[]).reading.compared == first.reading.compared + 1
    assert len(searched) == 2  # asked again: nothing searched
    small.add(outlier)
    reading = memo.evidence(outlier, audited=[]).reading
    assert reading.rank == 1 and reading.anomaly > 2 and reading.compared == 23
