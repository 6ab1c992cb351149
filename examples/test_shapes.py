"""Class-maximization audits of the two demo shape classifiers.

The clean model passes every check. The shortcut model was trained on data where every
triangle carried a small magenta square near the top-left corner, and learned it: pasted
there into images of other shapes, the square makes them triangles. Its class-maximization
images of "triangle" draw that magenta along the top edge, not always in its corner (the images start
from noise; where they put the evidence need not be where training did). Its triangle audit
fails at the shortcut check (`assert_no_shortcut`), so the focus check after it never runs;
the audit is marked as an expected failure here so that this example run stays green while
showing the catch. Open actaudit-report/index.html to see it.
"""

import pytest

from pytest_actaudit import artifacts

SHAPES = ["circle", "square", "triangle", "cross"]
CAUGHT = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the shortcut model reads the magenta corner tag, not the triangle",
)
CASES = [
    pytest.param(model, shape, marks=CAUGHT if (model, shape) == ("shortcut", "triangle") else ())
    for model in ["clean", "shortcut"]
    for shape in SHAPES
]


@pytest.mark.parametrize(("actaudit_model", "shape"), CASES, indirect=["actaudit_model"])
def test_typical_image_of(actaudit, shape):
    audit = actaudit.maximize(shape)
    # Every seed reaches a confident image of the class ...
    audit.assert_activation(min_probability=0.9)
    # ... the seeds roughly agree on what it looks like ...
    audit.assert_consistent(min_similarity=0.05)
    # ... no small part of it does more than the real object does ...
    audit.assert_no_shortcut()
    # ... and the class's evidence is not parked in the corners of the image.
    audit.assert_focus(exclude="corners:12", max_share=0.5)


@pytest.mark.parametrize(
    "actaudit_model",
    ["clean", pytest.param("shortcut", marks=CAUGHT)],
    indirect=True,
)
def test_unchanged_by_a_corner_tag(actaudit):
    # A suspect the team knows of, named: a magenta tag near the top-left corner, where the
    # training triangles carried it. Pasted into real images of the other shapes, it must
    # not turn them into triangles.
    tag = artifacts.square(x=2, y=2, size=8, colour=(255, 0, 255))
    actaudit.maximize("triangle").assert_ignores(tag)


def test_not_an_audit():
    # Ordinary tests in the same repository are unaffected by the plugin.
    assert sum([1, 2]) == 3
