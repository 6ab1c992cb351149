"""Audit both demo models: `actaudit_model` is overridden to load each in turn.

In your own repository, set `actaudit_model = path/to/model.keras` in the ini
instead, or override this fixture to build or load your model.
"""

import pytest

import pytest_actaudit
from pytest_actaudit.demo import models_dir


@pytest.fixture(scope="session", params=["clean", "shortcut"])
def actaudit_model(request):
    return pytest_actaudit.load_model(models_dir() / f"{request.param}.keras")
