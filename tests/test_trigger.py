"""The trigger search: the outlier score (``checks.trigger``, numpy) on hand-made sizes,
and the batched search (``engine.trigger``) on a tiny model with a planted band."""

from __future__ import annotations

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
