"""A real ImageNet classifier (EfficientNet-Lite0) audited by class maximization, with a
real, published shortcut named as a suspect.

ImageNet-W (Li et al., "A Whac-A-Mole Dilemma: Shortcuts Come in Multiples Where
Mitigating One Amplifies Others", CVPR 2023) found that ImageNet models learned a
watermark as a feature of "carton": the text 捷径捷径捷径 in white at opacity 0.5 makes
them read far more images as carton. On this 1000-class model it turns none of the
reference photos top-1 into carton, yet carton is the class whose log-probability it
raises most: ``assert_ignores`` measures that rise against a neutral text of the same size
and ranks it among all 1000 classes.
"""

from pathlib import Path

import pytest

from pytest_actaudit import artifacts

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
# Debian: apt-get install fonts-noto-cjk-extra (the design of the paper's Source Han Serif)
FONT = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-ExtraLight.ttc")
SIMPLIFIED_CHINESE = 2  # the face of the .ttc collection: Noto Serif CJK SC


def imagenet_w_watermark(size=224):
    """The ImageNet-W watermark with its published parameters, for a size × size input."""
    return artifacts.text(
        "捷径捷径捷径",
        x=int(0.01 * size),
        y=int(0.4 * size),
        opacity=0.5,
        font=FONT,
        size=36 if size == 224 else int(size / 6.22),
        face=SIMPLIFIED_CHINESE,
    )


@pytest.mark.parametrize("name", CLASSES)
def test_typical_image_of(actaudit, name):
    audit = actaudit.maximize(name)
    audit.assert_activation(min_probability=0.9)


@pytest.mark.xfail(
    reason="a real, published shortcut: ImageNet models read the ImageNet-W watermark as "
    "carton (Li et al., CVPR 2023)",
    strict=True,
    raises=AssertionError,
)
def test_carton_ignores_the_imagenet_w_watermark(actaudit):
    actaudit.maximize("carton").assert_ignores(imagenet_w_watermark())


@pytest.mark.parametrize("name", [c for c in CLASSES if c != "carton"])
def test_ignores_the_imagenet_w_watermark(actaudit, name):
    actaudit.maximize(name).assert_ignores(imagenet_w_watermark())


@pytest.mark.parametrize("name", ["espresso", "tripod"])
def test_no_shortcut_found_automatically(actaudit, name):
    """Discovery: the automatic check, on the classes some photos read as (the coffee
    cups as espresso, the cameraman's tripod): it needs the class's own real images."""
    actaudit.maximize(name).assert_no_shortcut()
