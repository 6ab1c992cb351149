"""Class-maximization audits of the demo shape classifiers."""

import pytest

SHAPES = ["circle", "square", "triangle", "cross"]


@pytest.mark.actaudit
@pytest.mark.parametrize("shape", SHAPES)
def test_model_has_a_typical_image_of(actaudit, shape):
    audit = actaudit.maximize(shape)
    # Every seed must reach a confident image of the class ...
    audit.assert_activation(min_probability=0.9)
    # ... and the seeds must roughly agree on what it looks like.
    audit.assert_consistent(min_similarity=0.05)


def test_not_an_audit():
    # Ordinary tests in the same repository are unaffected by the plugin.
    assert sum([1, 2]) == 3
