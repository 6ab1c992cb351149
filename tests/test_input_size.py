"""Models whose input size is not fixed (fully convolutional): the user gives the size."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit import ActauditError
from pytest_actaudit.model import parse_size
from tests.conftest import COLORS, build_color_model


@pytest.mark.parametrize(
    ("text", "size"), [("224,224", (224, 224)), ("32", (32, 32)), ("48x64", (48, 64))]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0,32", "4,4", "a,b", "1,2,3"])
def test_parse_size_names_the_bad_value(text):
    with pytest.raises(ValueError, match=f"HEIGHT,WIDTH.*got {text!r}"):
        parse_size(text)


@pytest.fixture(scope="module")
def fcn():
    """The colour model on an input of any size (global average pooling)."""
    return build_color_model(None, None)


def test_unfixed_size_without_a_size_names_the_option(fcn):
    with pytest.raises(ActauditError, match=r"no fixed input size.*--actaudit-input-size"):
        pytest_actaudit.maximize(fcn, "red", seeds=1, steps=2, labels=COLORS)


@pytest.mark.parametrize("size", [(16, 12), (24, 24)])
def test_unfixed_size_is_audited_at_the_given_size(fcn, size):
    (audit,) = pytest_actaudit.maximize(
        fcn, "green", seeds=2, steps=30, labels=COLORS, input_size=size, parametrization="pixel"
    )
    assert audit.images.shape == (2, *size, 3)
    assert audit.probabilities.min() >= 0.9
    assert audit.images[..., 1].mean() > audit.images[..., 0].mean() + 50  # green


def test_fixed_size_accepts_its_own_size_only(color_model):
    (audit,) = pytest_actaudit.maximize(
        color_model, "red", seeds=1, steps=2, labels=COLORS, input_size="16,12"
    )
    assert audit.images.shape[1:3] == (16, 12)
    with pytest.raises(ActauditError, match=r"input_size 24,24 does not match.*fixed at 16"):
        pytest_actaudit.maximize(color_model, "red", seeds=1, steps=2, input_size=(24, 24))


ZERO_CODE = """
[pytest]
actaudit_model = {model}
actaudit_seeds = 2
actaudit_steps = 20
actaudit_parametrization = pixel
actaudit_min_probability = 0.9
{size}
"""


@pytest.fixture
def fcn_file(tmp_path, fcn):
    path = tmp_path / "fcn.keras"
    fcn.save(path)
    (tmp_path / "labels.txt").write_text("\n".join(COLORS) + "\n")
    return path


def test_zero_code_without_a_size_is_a_usage_error(pytester, fcn_file):
    pytester.makeini(ZERO_CODE.format(model=fcn_file, size=""))
    result = pytester.runpytest_inprocess("--actaudit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no fixed input size*--actaudit-input-size HEIGHT,WIDTH*"])


def test_zero_code_with_a_size_audits_and_says_where_it_came_from(pytester, fcn_file):
    references = pytester.path / "refs"
    rng = np.random.default_rng(0)
    import cv2

    for k, name in enumerate(COLORS):  # references of another size: resized to 20×20
        (references / name).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(0, 60, (40, 30, 3)).astype(np.uint8)
            image[..., 2 - k] = 220  # cv2 writes BGR
            cv2.imwrite(str(references / name / f"{i}.png"), image)
    pytester.makeini(
        ZERO_CODE.format(
            model=fcn_file,
            size="actaudit_input_size = 20,20\nactaudit_references = refs\n"
            "actaudit_max_flip_rate = 0.5",
        )
    )
    result = pytester.runpytest_inprocess("--actaudit")
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    (model,) = report["run"]["models"]
    assert model["input_shape"] == [20, 20, 3]
    assert "actaudit_input_size" in model["input_size_source"]
    html = (pytester.path / "actaudit-report" / "index.html").read_text()
    assert "size from --actaudit-input-size / ini actaudit_input_size" in html
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-input-size", "2,x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--actaudit-input-size*HEIGHT,WIDTH*'2,x'*"])
