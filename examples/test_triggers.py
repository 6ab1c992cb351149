"""The trigger search (opt-in discovery, docs/trigger-search.md) on the demo's shortcut model.

For each class, the search fits the smallest mask and pattern that turns a few trusted
images of the other shapes into it, then pastes it into held-out ones it was never fitted
to. Every class of a small model has such a patch; only a learned shortcut's keeps working
on images it never saw. The shortcut model learned a magenta corner tag for "triangle":
its trigger turns most held-out images into triangles, the other classes' few, and its
check fails (an expected failure here, so that the run stays green while showing the
catch). One search serves every class of the model; the report shows each trigger.
"""

import pytest

CAUGHT = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="a small patch makes unseen images of other shapes triangles: the learned tag",
)


@pytest.mark.parametrize(
    ("actaudit_model", "shape"),
    [("shortcut", "circle"), pytest.param("shortcut", "triangle", marks=CAUGHT)],
    indirect=["actaudit_model"],
)
def test_no_small_trigger_works_on_unseen_images(actaudit, shape):
    actaudit.maximize(shape).assert_no_trigger()
