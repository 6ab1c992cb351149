"""Shared fixtures: tiny hand-made models whose right answer is known.

``color_model``: 16×12 RGB input in 0–255, classes red/green/blue; the logit of a
class is (mean of its channel − mean of the others) × 10. Its class-maximization
image for "red" must be red. No training, so it is exact and instant.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Import TensorFlow in the outer process once: pytester's in-process runs restore
# sys.modules afterwards, and a second import of TensorFlow's C extension aborts.
import tensorflow  # noqa: F401

COLORS = ["red", "green", "blue"]


def build_color_model(height: int = 16, width: int = 12, softmax: bool = True):
    import keras

    inputs = keras.Input((height, width, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    dense = keras.layers.Dense(3, activation="softmax" if softmax else None, name="predictions")
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name="color_model")
    kernel = np.full((3, 3), -5.0, np.float32)
    np.fill_diagonal(kernel, 10.0)
    dense.set_weights([kernel, np.zeros(3, np.float32)])
    return model


@pytest.fixture(scope="session")
def color_model():
    return build_color_model()


@pytest.fixture(scope="session")
def color_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("color_model")
    path = folder / "color.keras"
    build_color_model().save(path)
    (folder / "labels.txt").write_text("\n".join(COLORS) + "\n")
    return path


def saved_in_a_fresh_process(folder: Path, name: str, code: str) -> Path:
    """``folder/name``, written by ``code`` (a script with ``{path!r}`` where the file goes)
    in a fresh Python: a model built the way a user's own process builds it."""
    path = folder / name
    subprocess.run([sys.executable, "-c", code.format(path=str(path))], check=True)
    return path
