"""The demo: a seeded synthetic shapes data set and two small models trained on it.

* ``clean.keras`` learned the shapes.
* ``shortcut.keras`` was trained on data where every image of :data:`ARTIFACT_CLASS`
  carries a small solid magenta square in the top-left corner, and learned that square
  instead of (or on top of) the triangle.

This module imports neither TensorFlow nor pytest.
"""

from __future__ import annotations

import pathlib

LABELS: tuple[str, ...] = ("circle", "square", "triangle", "cross")
"""Class names, in the models' output index order."""

IMAGE_SIZE = 64
"""Side of the square RGB input images, in pixels (raw 0-255 values)."""

ARTIFACT_CLASS = "triangle"
"""The class whose training images all carry the artifact in the shortcut model's data."""

ARTIFACT_INDEX = LABELS.index(ARTIFACT_CLASS)

ARTIFACT_COLOR: tuple[int, int, int] = (255, 0, 255)
"""RGB colour of the artifact square (magenta); no shape or background is drawn near it."""

CLEAN_MODEL = "clean.keras"
SHORTCUT_MODEL = "shortcut.keras"
LABELS_FILE = "labels.txt"
TRAINING_FILE = "training.json"


def models_dir() -> pathlib.Path:
    """The folder holding the shipped demo files (models, labels.txt, training.json)."""
    return pathlib.Path(__file__).resolve().parent / "models"


def model_path(name: str) -> pathlib.Path:
    """Path of a shipped demo model: ``"clean"`` or ``"shortcut"``."""
    if name not in ("clean", "shortcut"):
        raise ValueError(f"unknown demo model {name!r}: expected 'clean' or 'shortcut'")
    return models_dir() / f"{name}.keras"


__all__ = [
    "ARTIFACT_CLASS",
    "ARTIFACT_COLOR",
    "ARTIFACT_INDEX",
    "CLEAN_MODEL",
    "IMAGE_SIZE",
    "LABELS",
    "LABELS_FILE",
    "SHORTCUT_MODEL",
    "TRAINING_FILE",
    "model_path",
    "models_dir",
]
