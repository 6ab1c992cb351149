"""What EfficientNet-Lite0 finds most typical of eight ImageNet classes: each class's
synthesized images must be read as that class with probability >= 0.9."""

import pytest

CLASSES = [
    "goldfish",
    "carton",
    "espresso",
    "tabby",
    "monarch",
    "strawberry",
    "jellyfish",
    "tripod",
]


@pytest.mark.parametrize("name", CLASSES)
def test_typical_image_of(actaudit, name):
    audit = actaudit.maximize(name)
    audit.assert_activation(min_probability=0.9)
