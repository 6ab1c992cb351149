"""The trigger search: the outlier score (``checks.trigger``, numpy) on hand-made sizes,
and the batched search (``engine.trigger``) on a tiny model with a planted band."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from pytest_actaudit.checks import trigger as judge


def edits(sizes, held):
    return {k: judge.Edit(sizes[k], held[k]) for k in sizes}


def test_the_lift_is_held_out_success_over_the_median_of_the_other_classes():
    held = {0: 0.9, 1: 0.3, 2: 0.4, 3: 0.5, 4: 0.2}
    assert judge.lift(held, 0) == pytest.approx(0.9 - 0.35)
    assert judge.lift(held, 4) == pytest.approx(0.2 - 0.45)  # below the null: negative
    with pytest.raises(ValueError, match="class 7 has no trigger"):
        judge.lift(held, 7)


def test_a_small_trigger_that_does_not_generalize_is_not_flagged():
    # class 0's mask is ten times smaller than the others' (Neural Cleanse's outlier),
    # but it turns held-out images no more than theirs do: an adversarial patch
    sizes = {0: 0.01, 1: 0.10, 2: 0.11, 3: 0.12}
    reading = judge.read(edits(sizes, {0: 0.4, 1: 0.35, 2: 0.45, 3: 0.4}), 0)
    assert reading.lift <= judge.DEFAULT_MAX_LIFT
    # a larger trigger that turns nearly every held-out image is
    reading = judge.read(edits(sizes, {0: 0.4, 1: 0.95, 2: 0.45, 3: 0.4}), 1)
    assert reading.rank == 1 and reading.compared == 4
    assert reading.lift == pytest.approx(0.55) and reading.lift > judge.DEFAULT_MAX_LIFT
    assert reading.null_held_out == pytest.approx(0.4)
    assert "covering 10.0% of the image, turns 95% of held-out" in reading.describe()
    assert "1 of 4 classes" in reading.describe()
    assert set(reading.to_dict()) >= {"lift", "size", "held_out", "rank", "null_held_out"}


def test_an_unreached_class_is_described_as_such():
    reading = judge.read(edits({0: 1.0, 1: 0.2, 2: 0.3}, {0: 0.0, 1: 0.5, 2: 0.4}), 0)
    assert reading.describe().startswith(
        "no trigger turned enough of the images it was fitted to; the last turns 0%"
    )


def test_a_reading_needs_three_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        judge.read(edits({0: 0.1, 1: 0.2}, {0: 0.1, 1: 0.2}), 0)


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


def test_the_search_finds_the_band_and_tests_it_on_held_out_images():
    found, images, labels = search(20.0)
    blue = found[2]
    assert blue.mask_size < 0.2 < min(t.mask_size for t in found if t.target != 2)
    rows = blue.mask.mean(axis=1)
    assert rows[14:].mean() > 5 * rows[:14].mean()  # the mask lies on the band
    # the kept trigger does what the search says: it turns blue most other classes' images
    others = images[labels != 2]
    read = band_model(20.0).predict(blue.stamped(others), verbose=0).argmax(1)
    assert np.mean(read == 2) >= 0.75
    # the band is the model's: it works on the held-out images too, as the engine counts
    assert blue.held_out >= 0.75 and abs(blue.held_out - np.mean(read == 2)) < 0.3
    # each target's images are other classes', the same count for every target
    assert all(len(t.images) == 8 for t in found)


def test_the_held_out_rise_is_the_mean_change_of_log_p_on_the_held_out_images():
    from pytest_actaudit.engine.trigger import TriggerSettings, images_for_targets

    found, images, labels = search(20.0)
    s = TriggerSettings()
    chosen = images_for_targets(labels, range(5), s.images_per_class + s.held_out, s.seed)
    model = band_model(20.0)
    for t in (found[2], found[0]):
        held = images[chosen[t.target, s.images_per_class :]]
        log_p = [np.log(model.predict(x, verbose=0)[:, t.target]) for x in (t.stamped(held), held)]
        assert t.held_out_rise == pytest.approx(np.mean(log_p[0] - log_p[1]), abs=0.05)
    assert found[2].held_out_rise > 1.0  # the band raises blue on images it never saw


def test_a_class_never_turned_keeps_its_last_trigger_and_that_triggers_success():
    import tensorflow as tf

    from pytest_actaudit.engine.trigger import TriggerSearch, TriggerSettings
    from pytest_actaudit.model import inputs as model_mod

    model = band_model(0.0)
    images, labels = colour_references()
    search = TriggerSearch(model, model_mod.input_spec(model), TriggerSettings(steps=3))
    found = search.run(images, labels, range(5))
    never = [t for t in found if t.mask_size >= 1.0]
    assert never, "3 steps from a 2% mask turn no class: the case under test"
    for t in never:
        start = tf.image.resize(tf.sigmoid(search._initial([t.target])[0]), [16, 16])
        assert np.abs(t.mask - np.asarray(start)[0, :, :, 0]).max() > 1e-3  # not the start
        read = model.predict(t.stamped(t.images), verbose=0).argmax(1)
        assert t.success == pytest.approx(np.mean(read == t.target), abs=0.13)


def read_all(found, index):
    return judge.read({t.target: judge.Edit(t.mask_size, t.held_out) for t in found}, index)


def test_a_clean_model_has_no_outlier():
    found, _, _ = search(0.0)
    assert max(read_all(found, k).lift for k in range(5)) <= judge.DEFAULT_MAX_LIFT


def test_a_trigger_does_not_depend_on_what_else_is_searched():
    from pytest_actaudit.engine.trigger import TriggerSearch, TriggerSettings
    from pytest_actaudit.model import inputs as model_mod

    model = band_model(20.0)
    images, labels = colour_references()
    search = TriggerSearch(model, model_mod.input_spec(model), TriggerSettings(steps=8))
    (alone,) = search.run(images, labels, [2])
    together = search.run(images, labels, [0, 2, 4])[1]
    # the same up to float rounding: a batch's size changes how its sums are blocked, and
    # 8 Adam steps carry the difference into the third decimal of a mask in [0, 1]
    np.testing.assert_allclose(alone.mask, together.mask, atol=0.03)
    assert abs(alone.mask_size - together.mask_size) < 0.01


def test_images_for_targets_are_other_classes_round_robin():
    from pytest_actaudit.engine.trigger import images_for_targets

    labels = np.repeat(np.arange(3), 4)
    chosen = images_for_targets(labels, [0, 1], per_class=6)
    assert (labels[chosen[0]] != 0).all() and (labels[chosen[1]] != 1).all()
    assert sorted(np.bincount(labels[chosen[0]], minlength=3)[1:]) == [3, 3]
    with pytest.raises(ValueError, match="every reference given is of this class"):
        images_for_targets(np.zeros(4, np.int64), [0], per_class=2)


def demo_references():
    from pytest_actaudit.demo import LABELS
    from pytest_actaudit.demo.shapes import references

    per_class = references(20)
    images = np.concatenate([per_class[name] for name in LABELS])
    return images, np.repeat(np.arange(len(LABELS)), [len(per_class[n]) for n in LABELS])


def test_assert_no_trigger_fails_the_demo_shortcut_and_passes_the_others_in_one_search():
    # the demo's shortcut model learned a magenta corner tag for "triangle": its trigger
    # works on held-out images of the other shapes, where theirs mostly do not
    import pytest_actaudit
    from pytest_actaudit import AuditFailure
    from pytest_actaudit.demo import LABELS, models_dir
    from pytest_actaudit.report.writer import ImageSink, audit_record

    model = pytest_actaudit.load_model(models_dir() / "shortcut.keras")
    audits = pytest_actaudit.maximize(
        model, "all", seeds=1, steps=4, labels=list(LABELS), references=demo_references()
    )
    with pytest.raises(AuditFailure, match=r"'triangle'.*trigger.*held-out.*1 of 4 classes"):
        audits[2].assert_no_trigger()
    searched = audits[2].trigger_evidence.seconds
    audits[0].assert_no_trigger()  # judged from the same search: nothing searched again
    assert audits[0].trigger_evidence.seconds == searched
    assert [c.passed for c in audits[0].checks] == [True]
    record = audit_record(audits[2], ImageSink(Path(tempfile.mkdtemp())))
    assert record["trigger"]["rank"] == 1 and record["trigger"]["held_out"] > 0.75
    assert len(record["trigger"]["examples"]) == 3


def test_assert_no_trigger_needs_references():
    import pytest_actaudit

    (audit,) = pytest_actaudit.maximize(band_model(0.0), ["red"], seeds=1, steps=2, labels=NAMES)
    with pytest.raises(ValueError, match="assert_no_trigger needs reference images"):
        audit.assert_no_trigger()


class RecordingSearch:
    """A trigger search that records the classes each call asks for and gives class k's
    trigger the held-out success ``held(k)`` (its mask 0.1 × k everywhere)."""

    def __init__(self, held):
        self.held = held
        self.searched: list[list[int]] = []

    def run(self, images, labels, classes):
        from pytest_actaudit.engine.trigger import Trigger

        self.searched.append(list(classes))
        return [
            Trigger(
                target=k,
                mask=np.full((4, 4), 0.1 * k, np.float32),
                pattern=np.zeros((4, 4, 3), np.uint8),
                mask_size=0.05,
                success=0.9,
                held_out=self.held(k),
                held_out_rise=0.5,
                images=np.zeros((2, 4, 4, 3), np.uint8),
                seconds=0.1,
            )
            for k in classes
        ]


def test_a_class_asked_later_is_searched_alone_and_judged_against_the_same_null():
    from pytest_actaudit.run.triggers import TriggerMemo

    general: set[int] = set()  # classes whose trigger generalizes, chosen below

    def held(k: int) -> float:  # every class's trigger turns about 30% of held-out images
        return 0.95 if k in general else 0.3 + 0.001 * k

    search = RecordingSearch(held)
    searched = search.searched
    memo = TriggerMemo(search, np.zeros((8, 4, 4, 3)), np.repeat(np.arange(4), 2), 40)
    first = memo.evidence(0, audited=[1])
    # one batch: the class, the audited one and a sample of 20 of the 38 others
    assert searched[0][:2] == [0, 1] and len(searched[0]) == 2 + judge.NULL_CLASSES
    late, outlier = [k for k in range(40) if k not in searched[0]][:2]
    memo.evidence(late, audited=[])
    assert searched[1] == [late]  # alone
    assert memo.evidence(late, audited=[]).reading.compared == first.reading.compared + 1
    assert len(searched) == 2  # asked again: nothing searched
    general.add(outlier)
    reading = memo.evidence(outlier, audited=[]).reading
    assert reading.rank == 1 and reading.lift > 0.6 and reading.compared == 23


def test_a_rerun_with_the_cache_searches_nothing(tmp_path):
    from types import SimpleNamespace

    from pytest_actaudit.engine.trigger import TriggerSettings
    from pytest_actaudit.run.triggers import TriggerCache, TriggerMemo

    search = RecordingSearch(lambda k: 0.9 if k == 2 else 0.2)
    searched = search.searched
    images, labels = np.zeros((8, 4, 4, 3), np.uint8), np.repeat(np.arange(4), 2)
    results = SimpleNamespace(folder=tmp_path, prefix="model-a")

    def memo(prefix: str = "model-a", settings=None):
        results.prefix = prefix
        cache = TriggerCache(results, settings or TriggerSettings(), images, labels)
        return TriggerMemo(search, images, labels, 4, cache)

    first = memo().evidence(2, audited=[])
    again = memo().evidence(2, audited=[])
    assert searched == [[2, 0, 1, 3]]  # the rerun searched nothing
    assert again.reading == first.reading and again.reading.lift > judge.DEFAULT_MAX_LIFT
    np.testing.assert_array_equal(again.mask, first.mask)
    memo(settings=TriggerSettings(steps=8)).evidence(2, audited=[])  # other settings
    memo("model-b").evidence(2, audited=[])  # another model
    assert len(searched) == 3
