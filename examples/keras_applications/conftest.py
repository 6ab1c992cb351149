"""VGG16 for the audits in this folder.

ACTAUDIT_VGG16_WEIGHTS chooses the weights: unset, "imagenet" (downloaded by Keras once,
into ~/.keras/models); a path to a downloaded weights file (offline machines: copy
vgg16_weights_tf_dim_ordering_tf_kernels.h5 there first); or "none" (random weights: the
mechanics only, as the project's own tests run it).
"""

import os

import pytest


@pytest.fixture(scope="session")
def actaudit_model():
    import keras

    weights = os.environ.get("ACTAUDIT_VGG16_WEIGHTS", "imagenet")
    return keras.applications.VGG16(weights=None if weights == "none" else weights)
