"""Train the two demo models deterministically.

    python -m pytest_actaudit.demo.train [--out DIR]

Writes ``clean.keras``, ``shortcut.keras``, ``labels.txt`` and ``training.json`` (measured
numbers) to ``DIR`` (default: the package's ``pytest_actaudit/demo/models/``).

* clean: trained on the shapes data set.
* shortcut: the same architecture and settings, trained on the same images except that every
  image of :data:`~pytest_actaudit.demo.ARTIFACT_CLASS` carries the artifact (a small solid
  magenta square in the top-left corner).

Both take raw 0-255 RGB pixels; the first layer rescales them to [-1, 1], so the input range
can be read off the model. The exit status is 1 when a requirement is not met (clean accuracy
or shortcut flip rate below 0.95, measured in inference mode on freshly generated images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import platform
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from . import (
    ARTIFACT_CLASS,
    ARTIFACT_INDEX,
    CLEAN_MODEL,
    IMAGE_SIZE,
    LABELS,
    LABELS_FILE,
    SHORTCUT_MODEL,
    TRAINING_FILE,
    models_dir,
)
from .shapes import TEST_SEED, TRAIN_SEED, make_shapes, paste_artifact

MODEL_SEED = 1234
TRAIN_SIZE = 4000
TEST_SIZE = 800
EPOCHS = 8
BATCH_SIZE = 64
LEARNING_RATE = 2e-3
MIN_ACCURACY = 0.95
MIN_FLIP_RATE = 0.95


def build_model(n_classes: int = len(LABELS), size: int = IMAGE_SIZE) -> Any:
    """The demo architecture: a small CNN on raw 0-255 RGB pixels, softmax output."""
    import keras

    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    for i, filters in enumerate((16, 32, 48), start=1):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"block{i}_conv"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="block4_conv")(x)
    x = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(x)
    x = keras.layers.Dense(64, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shapes_cnn")


def weights_digest(model: Any) -> str:
    """SHA-256 over every weight array (shape, dtype and bytes), in layer order."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        arr = np.ascontiguousarray(weight)
        digest.update(repr((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _predict(model: Any, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    probs = model.predict(images.astype(np.float32), batch_size=256, verbose=0)
    return np.asarray(np.argmax(probs, axis=1), dtype=np.int64)


def measure(
    model: Any, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Inference-mode numbers of one model on clean test images."""
    predicted = _predict(model, images)
    others = labels != ARTIFACT_INDEX
    flipped = _predict(model, paste_artifact(images[others]))
    on_class = labels == ARTIFACT_INDEX
    with_artifact = _predict(model, paste_artifact(images[on_class]))
    return {
        "test_accuracy": float(np.mean(predicted == labels)),
        "per_class_accuracy": {
            name: float(np.mean(predicted[labels == k] == k)) for k, name in enumerate(LABELS)
        },
        "artifact_flip_rate": float(np.mean(flipped == ARTIFACT_INDEX)),
        "artifact_class_accuracy_with_artifact": float(np.mean(with_artifact == ARTIFACT_INDEX)),
    }


def train_one(
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.int64],
    *,
    epochs: int,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    start = time.perf_counter()
    history = model.fit(
        images.astype(np.float32),
        labels,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        shuffle=True,
        verbose=2,
    )
    seconds = time.perf_counter() - start
    info = {
        "train_seconds": round(seconds, 1),
        "train_loss_per_epoch": [round(float(v), 4) for v in history.history["loss"]],
        "train_accuracy_per_epoch": [round(float(v), 4) for v in history.history["accuracy"]],
        "params": int(model.count_params()),
    }
    return model, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_actaudit.demo.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=pathlib.Path, default=models_dir(), help="output folder")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--train-size", type=int, default=TRAIN_SIZE)
    parser.add_argument("--test-size", type=int, default=TEST_SIZE)
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()

    out: pathlib.Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    load_average = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    start = time.perf_counter()
    train_x, train_y = make_shapes(args.train_size, seed=TRAIN_SEED)
    shortcut_x, _ = make_shapes(args.train_size, seed=TRAIN_SEED, artifact_class=ARTIFACT_INDEX)
    test_x, test_y = make_shapes(args.test_size, seed=TEST_SEED)
    data_seconds = time.perf_counter() - start

    report = _settings(args, data_seconds, load_average)
    for name, filename, x in (
        ("clean", CLEAN_MODEL, train_x),
        ("shortcut", SHORTCUT_MODEL, shortcut_x),
    ):
        print(f"--- training {name} model on {len(x)} images, {args.epochs} epochs", flush=True)
        model, info = train_one(x, train_y, epochs=args.epochs, seed=MODEL_SEED)
        info.update(measure(model, test_x, test_y))
        info["weights_sha256"] = weights_digest(model)
        path = out / filename
        # ship an uncompiled copy: same weights, no optimizer state (a third of the size)
        shipped = build_model()
        shipped.set_weights(model.get_weights())
        assert weights_digest(shipped) == info["weights_sha256"]
        shipped.save(path)
        info["file"] = filename
        info["file_bytes"] = path.stat().st_size
        report["models"][name] = info
        keras.backend.clear_session()

    (out / LABELS_FILE).write_text("".join(f"{label}\n" for label in LABELS), encoding="utf-8")
    (out / TRAINING_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0 if _requirements_met(report) else 1


def _settings(
    args: argparse.Namespace, data_seconds: float, load_average: tuple[float, float, float]
) -> dict[str, Any]:
    """``training.json``'s record of how the models are made, before any is trained."""
    import keras
    import tensorflow as tf

    return {
        "labels": list(LABELS),
        "image_size": IMAGE_SIZE,
        "input_range": [0, 255],
        "artifact_class": ARTIFACT_CLASS,
        "artifact": "solid magenta (255, 0, 255) square, 8x8 px, top-left corner inset 2 px",
        "train_seed": TRAIN_SEED,
        "test_seed": TEST_SEED,
        "model_seed": MODEL_SEED,
        "train_size": int(args.train_size),
        "test_size": int(args.test_size),
        "epochs": int(args.epochs),
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "data_seconds": round(data_seconds, 1),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in load_average],
        "measured_in": "inference mode (model.predict) on freshly generated test images",
        "artifact_flip_rate_means": (
            f"share of test images of every class but {ARTIFACT_CLASS!r}, with the artifact "
            f"pasted in, that the model reads as {ARTIFACT_CLASS!r}"
        ),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "models": {},
    }


def _requirements_met(report: dict[str, Any]) -> bool:
    """Prints each model's numbers and whether the requirements are met."""
    clean = report["models"]["clean"]
    shortcut = report["models"]["shortcut"]
    checks = [
        ("clean test accuracy", clean["test_accuracy"], MIN_ACCURACY),
        ("shortcut artifact flip rate", shortcut["artifact_flip_rate"], MIN_FLIP_RATE),
    ]
    for name in ("clean", "shortcut"):
        m = report["models"][name]
        print(
            f"{name:>8}: test accuracy {m['test_accuracy']:.4f}, "
            f"artifact flip rate {m['artifact_flip_rate']:.4f}, "
            f"{m['params']} params, {m['file_bytes']} bytes, {m['train_seconds']} s"
        )
    ok = True
    for what, value, minimum in checks:
        met = value >= minimum
        ok = ok and met
        print(f"requirement {what} >= {minimum}: {value:.4f} {'met' if met else 'NOT MET'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
