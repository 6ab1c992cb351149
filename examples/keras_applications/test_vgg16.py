"""What VGG16 finds most typical of a few ImageNet classes (seed tutorial: class 20,
"water ouzel"; here a fish, a bird and a dog)."""

import pytest


@pytest.mark.parametrize("name", ["tench", "water ouzel", "Border collie"])
def test_typical_image_of(actaudit, name):
    audit = actaudit.maximize(name)
    audit.assert_activation(min_probability=0.5)
