"""ClassAudit checks on hand-made results: messages, records, SSIM."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_actaudit import ActauditError, AuditFailure, ClassAudit
from pytest_actaudit.checks.metrics import pairwise_ssim


def make_audit(images=None, probabilities=(0.95, 0.4, 0.99), logits=(5.0, 1.0, 6.0)):
    rng = np.random.default_rng(0)
    if images is None:
        images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    n = len(images)
    return ClassAudit(
        label="circle",
        index=2,
        images=images,
        logits=np.array(logits[:n], float),
        probabilities=np.array(probabilities[:n], float),
        seeds=list(range(n)),
        steps=10,
        curves=np.zeros((n, 10)),
    )


def test_failure_message_names_class_metric_each_seed_and_threshold():
    audit = make_audit()
    with pytest.raises(AuditFailure) as info:
        audit.assert_activation(min_probability=0.9)
    text = str(info.value)
    assert "'circle'" in text and "index 2" in text and "probability" in text
    assert "seed 0: 0.95" in text and "seed 1: 0.4 ✗" in text and "seed 2: 0.99" in text
    assert ">= 0.9" in text and "1 of 3 seeds" in text
    assert isinstance(info.value, AssertionError)


def test_every_check_is_recorded_passed_or_failed():
    audit = make_audit()
    audit.assert_activation(min_logit=0.5)
    with pytest.raises(AuditFailure):
        audit.assert_activation(min_logit=2.0)
    assert [c.passed for c in audit.checks] == [True, False]
    assert audit.checks[1].values == [5.0, 1.0, 6.0]
    assert not audit.passed
    record = audit.to_record()
    assert record["checks"][1]["threshold"] == 2.0 and record["passed"] is False


def test_assert_activation_needs_a_threshold():
    with pytest.raises(TypeError, match="min_probability"):
        make_audit().assert_activation()


def test_consistency_is_one_for_identical_images_and_low_for_noise():
    same = np.repeat(np.full((1, 16, 16, 3), 120, np.uint8), 3, axis=0)
    same[:, 4:8, 4:8] = 250
    assert make_audit(same).consistency == pytest.approx(1.0)
    noisy = make_audit()
    assert noisy.consistency < 0.2
    with pytest.raises(AuditFailure, match="consistency ssim"):
        noisy.assert_consistent(min_similarity=0.5)


def test_pairwise_ssim_one_value_per_seed_and_single_image():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 12, 10, 1), dtype=np.uint8)
    assert pairwise_ssim(images).shape == (4,)
    assert np.isnan(pairwise_ssim(images[:1])).all()  # undefined, not a perfect 1


def test_consistency_with_one_seed_is_undefined_not_a_pass():
    """One seed has nothing to compare with: the check says so instead of passing on
    "SSIM 1", and the report's record holds no number."""
    audit = make_audit(np.full((1, 16, 16, 3), 120, np.uint8))
    with pytest.raises(ActauditError, match="with 1 seed it is undefined"):
        audit.assert_consistent(min_similarity=0.5)
    with pytest.raises(ActauditError, match="undefined"):
        audit.assert_consistent(min_similarity=0.5, metric="features")
    record = audit.to_record()
    assert record["consistency"] is None and record["consistency_per_seed"] == []


def test_unknown_consistency_metric():
    with pytest.raises(ValueError, match="'colour'"):
        make_audit().assert_consistent(0.5, metric="colour")
