"""The example model repository's fixtures.

`actaudit_model` loads each demo model in turn (indirect parametrization in the tests).
In your own repository, set `actaudit_model = path/to/model.keras` in the ini instead,
or override this fixture to build or load your model.

`actaudit_references` gives the shortcut probe real, trusted images of every class.
Here they are drawn by the demo's generator (artifact-free); in your repository point
`--actaudit-references` / `actaudit_references` at a folder with one subfolder per class.
"""

import functools

import numpy as np
import pytest

import pytest_actaudit
from pytest_actaudit.demo import LABELS, models_dir
from pytest_actaudit.demo.shapes import references


# Each parametrized case sets up the session fixtures anew (its parameters differ): each
# model is loaded, and the references drawn, once all the same. The same references
# array also lets the plugin reuse the model's readings of it from one class to the next.
@functools.cache
def load(name):
    return pytest_actaudit.load_model(models_dir() / f"{name}.keras")


@functools.cache
def trusted_images():
    per_class = references(20)
    images = np.concatenate([per_class[name] for name in LABELS])
    labels = np.repeat(np.arange(len(LABELS)), [len(per_class[name]) for name in LABELS])
    return images, labels


@pytest.fixture(scope="session")
def actaudit_model(request):
    return load(request.param)


@pytest.fixture(scope="session")
def actaudit_references():
    return trusted_images()
