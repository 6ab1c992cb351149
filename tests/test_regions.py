"""Region parsing and assert_focus."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_actaudit import AuditFailure
from pytest_actaudit.checks.regions import region_mask
from tests.test_audit import make_audit


def test_border_corners_box():
    assert region_mask("border:1", 4, 5).sum() == 4 * 5 - 2 * 3
    corners = region_mask("corners:2", 6, 6)
    assert corners.sum() == 16 and corners[0, 0] and not corners[2, 2]
    box = region_mask("box:1,2,3,4", 6, 6)
    assert box.sum() == 4 and box[2:4, 1:3].all()
    half = region_mask("box:0,0,0.5,0.5", 8, 10)
    assert half.sum() == 4 * 5 and half[:4, :5].all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("edge:3", "unknown region kind 'edge'"),
        ("border", "unknown region 'border'"),
        ("border:-2", "size must be positive"),
        ("border:x", "'x' is not a whole number"),
        ("box:0,0,9,9", "box must satisfy"),
        ("box:1,2,3", "four numbers"),
    ],
)
def test_bad_regions_name_the_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        region_mask(spec, 8, 8)


@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    n=st.integers(1, 50),
    kind=st.sampled_from(["border", "corners"]),
)
def test_border_and_corner_masks_are_within_the_image(h, w, n, kind):
    mask = region_mask(f"{kind}:{n}", h, w)
    assert mask.shape == (h, w) and mask.dtype == bool
    if n * 2 >= min(h, w):
        assert mask.all() or kind == "corners"
    assert mask[0, 0]


@given(text=st.text(max_size=30))
def test_any_text_gives_a_mask_or_a_value_error(text):
    try:
        mask = region_mask(text, 10, 12)
    except ValueError as exc:
        assert str(exc)
    else:
        assert mask.shape == (10, 12)


def test_assert_focus_catches_a_corner_artifact():
    audit = make_audit()
    attribution = np.full((3, 16, 16), 0.01, np.float32)
    attribution[:, :4, :4] = 1.0  # the score comes from the top-left corner
    audit.attribution = attribution
    with pytest.raises(AuditFailure, match=r"focus attribution share inside corners:4"):
        audit.assert_focus(exclude="corners:4", max_share=0.5)
    audit.assert_focus(include="box:0,0,8,8", max_share=0.15)
    shares, area, _ = audit.focus_shares(exclude="corners:4")
    assert area == pytest.approx(4 * 16 / 256) and shares.min() > 0.8


def test_assert_focus_needs_one_region():
    audit = make_audit()
    audit.attribution = np.ones((3, 16, 16), np.float32)
    with pytest.raises(TypeError, match="exactly one"):
        audit.assert_focus(max_share=0.3)


def test_fractions_follow_the_image_size():
    from pytest_actaudit.checks.regions import region_mask

    small = region_mask("border:0.1", 64, 64)  # 6 px
    assert small[:, 5].all() and not small[32, 6]
    assert region_mask("border:0.1", 224, 224)[:, 21].all()
    big = region_mask("corners:0.25", 200, 100)
    assert big[:25, :25].all() and not big[25, 25] and big[-25:, -25:].all()
    with pytest.raises(ValueError, match=r"neither whole pixels nor a fraction in \(0, 0.5\]"):
        region_mask("border:0.7", 64, 64)


def test_ini_region_is_checked_against_the_model_not_a_fixed_size():
    from pytest_actaudit.checks.regions import validate_region

    validate_region("box:150,150,224,224")  # fine for a 224 px model: syntax only here
    with pytest.raises(ValueError, match="box needs four numbers"):
        validate_region("box:1,2,3")
