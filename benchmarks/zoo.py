"""The shortcut zoo: small models trained on the demo shapes with a planted artifact on a
share of one class's training images, of several kinds, plus clean models (one of them
under-trained). It is what the shortcut check is calibrated and measured on
(``benchmarks/shortcut_zoo.py``); numpy here (marks, casts and frames painted by
:mod:`pytest_actaudit.checks.artifacts`), TensorFlow only inside :func:`train`.

Artifact kinds (sizes relative to the image side ``S``):

=========== ==============================================================================
tag         a watermark: the text "wm", white at 70% opacity, near the bottom-right corner
patch       a soft magenta dot (Gaussian, sigma 3/64 S) at a random place in each image
fixed-patch a solid orange square (6/64 S) at the same place near the bottom-left corner
strip       a thin magenta strip (3/64 S high) along the bottom edge
frame       a thin grey frame (3/64 S wide) around the image
cast        a warm colour cast over the whole image (red +50, green x0.85 +15, blue x0.6)
background  the background replaced by a smooth sky-to-grass gradient
texture     the background replaced by low-contrast diagonal stripes (period S/8)
=========== ==============================================================================

Each alone pulls at most about 10% of other classes' images to any class of a clean model
(measured; shape-like artifacts, a white square logo or a checker, pulled up to 99%: a
clean model reads them as a small square or triangle, which is no learned shortcut). The
artifact never appears on other classes' images. A model of share 0.6 saw it on 60%
of its planted class's training images: it still reads most clean images of the class, and
the artifact alone still pulls other classes' images to it (a partial shortcut).

Every model above is one architecture, the demo's CNN; :func:`architecture_specs` trains
every kind on two others (:func:`build_model`), to see whether what was calibrated on
the CNN holds on models of another build.

Models are cached by the SHA-256 of everything that defines them (spec, data and
training settings, this file's ``VERSION``), so a second run trains nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_actaudit.checks import artifacts
from pytest_actaudit.demo import LABELS
from pytest_actaudit.demo.shapes import make_shapes_with_masks

VERSION = 1  # bump when artifacts or training change: old cached models are not reused
KINDS: tuple[str, ...] = (
    "tag",
    "patch",
    "fixed-patch",
    "strip",
    "frame",
    "cast",
    "background",
    "texture",
)
# The same kinds drawn otherwise (other colours, places, shapes and sizes): models the
# defaults were never chosen on, to see whether the check holds beyond the zoo's artifacts.
NOVEL_KINDS: tuple[str, ...] = (
    "logo",  # a white "(c)" mark near the top-left corner (a watermark)
    "square-patch",  # a solid green 5/64-side square at a fixed place, top right
    "side-strip",  # a 2/64-side yellow strip along the left edge
    "blue-frame",  # a 2/64-side blue frame
    "cool-cast",  # cold light: blue lifted, red damped
    "checker",  # the background replaced by a low-contrast checkerboard
)
ALL_KINDS = KINDS + NOVEL_KINDS
# Kinds added after the novel ones, in the order they were added. The planted class
# follows _PLANT_ORDER: it is not in a model's digest, so a cached model keeps its class
# only if no kind's place there ever moves; a new kind goes at the end of ADDED_KINDS.
ADDED_KINDS: tuple[str, ...] = ("fixed-patch",)
_PLANT_ORDER = tuple(k for k in KINDS if k not in ADDED_KINDS) + NOVEL_KINDS + ADDED_KINDS
# Artifacts a clean model reads as a shape of the data set (a solid square pulls clean
# models 11-39%): a clean model's "pull" leaves them out and reports them apart.
SHAPE_LIKE_KINDS: tuple[str, ...] = ("fixed-patch",)
SHARES: tuple[float, ...] = (0.5, 0.75, 1.0)
SIZE = 64
TRAIN_SIZE = 2400
EPOCHS = 8
UNDERTRAINED_EPOCHS = 4
TRAIN_SEED = 101  # data of every zoo model (the artifact shares draw from the model seed)
TEST_SEED = 102
REFERENCE_SEED = 3  # the demo's references: trusted, artifact-free
MIN_ACCURACY = 0.5  # below: the run collapsed (4 classes), train again
MAX_ATTEMPTS = 3

Images = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class ZooSpec:
    """One zoo model: ``kind`` None is a clean model."""

    kind: str | None
    share: float
    seed: int
    epochs: int = EPOCHS
    size: int = SIZE
    train_size: int = TRAIN_SIZE
    arch: str = "cnn"  # one of ARCHS

    @property
    def artifact_class(self) -> int | None:
        """The planted class: varies with kind and seed, so no class is special."""
        if self.kind is None:
            return None
        return (_PLANT_ORDER.index(self.kind) + self.seed) % len(LABELS)

    @property
    def name(self) -> str:
        if self.kind is None:
            full = ARCH_EPOCHS[self.arch][0] if self.arch in ARCH_EPOCHS else EPOCHS
            tag = "clean" if self.epochs == full else f"clean-{self.epochs}ep"
            name = f"{tag}-s{self.seed}"
        else:
            name = f"{self.kind}-{self.share:g}-s{self.seed}"
        return name if self.arch == "cnn" else f"{name}@{self.arch}{self.size}"

    def digest(self) -> str:
        fields: dict[str, Any] = asdict(self)
        if self.arch == "cnn":  # the zoo's first architecture: its cached models keep their keys
            del fields["arch"]
        else:  # a change to one architecture's build retrains its models only
            fields["arch_version"] = ARCH_VERSIONS.get(self.arch, 0)
        blob = json.dumps({**fields, "version": VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def specs(*, seeds: tuple[int, ...] = (1, 2), shares: tuple[float, ...] = SHARES) -> list[ZooSpec]:
    """The whole zoo: every kind × share × seed, three clean models and two under-trained
    ones (about 85-90% accuracy)."""
    out = [ZooSpec(kind, share, seed) for kind in KINDS for share in shares for seed in seeds]
    out += [ZooSpec(None, 0.0, seed) for seed in (1, 2, 3)]
    out += [ZooSpec(None, 0.0, seed, epochs=UNDERTRAINED_EPOCHS) for seed in (4, 5)]
    return out


def held_out_specs() -> list[ZooSpec]:
    """Models the defaults were never chosen on: training seed 3, every kind at share 0.6
    (between the zoo's shares), a clean model (seed 6) and an under-trained one (seed 7).
    ``benchmarks/shortcut_zoo.py --held-out`` audits them."""
    out = [ZooSpec(kind, 0.6, 3) for kind in KINDS]
    out += [ZooSpec(None, 0.0, 6), ZooSpec(None, 0.0, 7, epochs=UNDERTRAINED_EPOCHS)]
    return out


def novel_specs() -> list[ZooSpec]:
    """The novel kinds at share 0.75 (learned partially in the zoo) and the casts at 1.0
    (the zoo's casts were learned only there), training seed 4.
    ``benchmarks/shortcut_zoo.py --novel`` audits them."""
    return [ZooSpec(kind, 1.0 if kind == "cool-cast" else 0.75, 4) for kind in NOVEL_KINDS]


# ------------------------------------------------------------------ artifacts
def _gradient(size: int) -> npt.NDArray[np.float32]:
    top = np.array([110, 170, 235], np.float32)
    bottom = np.array([80, 150, 60], np.float32)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()


def _text_mark(
    images: Images, text: str, origin: tuple[float, float], scale: float, opacity: float
) -> Images:
    """White ``text`` blended in at ``origin`` (x, y as fractions of the side), its font
    ``scale`` at 64 px following the side."""
    size = images.shape[1]
    x, y = round(size * origin[0]), round(size * origin[1])
    return artifacts.text(text, x, y, scale=scale * size / 64, opacity=opacity)(images)


def _checker(size: int) -> npt.NDArray[np.float32]:
    cell = max(2, size // 10)
    y, x = np.mgrid[0:size, 0:size]
    on = ((x // cell + y // cell) % 2) == 0
    light = np.array([150, 175, 160], np.float32)
    return np.where(on[..., None], light, light - 35).astype(np.float32)


def _stripes(size: int) -> npt.NDArray[np.float32]:
    period = max(4, size // 8)
    y, x = np.mgrid[0:size, 0:size]
    on = ((x + y) % period) < period // 2
    light = np.array([170, 160, 140], np.float32)
    dark = light - 40
    return np.where(on[..., None], light, dark).astype(np.float32)


def apply_artifact(
    kind: str,
    images: npt.ArrayLike,
    masks: npt.ArrayLike | None = None,
    *,
    rng: np.random.Generator | None = None,
) -> Images:
    """Copies of ``images`` (N × S × S × 3 uint8) carrying the artifact ``kind``.

    ``background`` and ``texture`` need ``masks`` (the shapes' coverage, N × S × S) to
    keep the object; ``patch`` draws its places from ``rng`` (default seed 0)."""
    out = np.array(images, dtype=np.uint8, copy=True)
    n, size = len(out), out.shape[1]
    if kind == "tag":
        out = _text_mark(out, "wm", (0.62, 0.9), 0.35, 0.7)
    elif kind == "patch":
        rng = rng or np.random.default_rng(0)
        sigma = size * 3 / 64
        yy, xx = np.mgrid[0:size, 0:size]
        mixed = out.astype(np.float32)
        for i in range(n):
            cy, cx = rng.uniform(3 * sigma, size - 3 * sigma, size=2)
            alpha = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))[..., None]
            mixed[i] = mixed[i] * (1 - alpha) + alpha * np.array((255, 0, 255), np.float32)
        out = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    elif kind == "fixed-patch":  # a solid orange square, always at the same place
        w = max(3, round(size * 6 / 64))
        y0, x0 = round(size * 0.78), round(size * 0.08)
        out[:, y0 : y0 + w, x0 : x0 + w] = (255, 140, 0)
    elif kind == "strip":
        out[:, size - max(2, round(size * 3 / 64)) :, :] = (255, 0, 255)
    elif kind == "frame":
        out = artifacts.frame(max(1, round(size * 3 / 64)), 128)(out)
    elif kind == "cast":  # warm light: blue damped, red and green lifted
        out = artifacts.cast((1.0, 0.85, 0.6), (50.0, 15.0, 0.0))(out)
    elif kind == "logo":
        out = _text_mark(out, "(c)", (0.06, 0.16), 0.3, 0.75)
    elif kind == "square-patch":
        w = max(3, round(size * 5 / 64))
        y0, x0 = round(size * 0.12), round(size * 0.75)
        out[:, y0 : y0 + w, x0 : x0 + w] = (0, 200, 0)
    elif kind == "side-strip":
        out[:, :, : max(2, round(size * 2 / 64))] = (255, 230, 0)
    elif kind == "blue-frame":
        out = artifacts.frame(max(1, round(size * 2 / 64)), (30, 60, 255))(out)
    elif kind == "cool-cast":  # cold light: blue lifted, red damped
        out = artifacts.cast((0.7, 0.9, 1.0), (0.0, 10.0, 45.0))(out)
    elif kind in ("background", "texture", "checker"):
        if masks is None:
            raise ValueError(f"the {kind!r} artifact needs the shapes' masks")
        cover = np.asarray(masks, np.float32)[..., None]
        scene = {"background": _gradient, "texture": _stripes, "checker": _checker}[kind](size)
        noise = np.random.default_rng(1).normal(0.0, 5.0, out.shape).astype(np.float32)
        mixed = cover * out.astype(np.float32) + (1 - cover) * (scene + noise)
        out = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {ALL_KINDS}")
    return out


def dataset(
    spec: ZooSpec, n: int, seed: int
) -> tuple[Images, npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """``n`` shapes images of ``spec``'s size with its artifact on ``spec.share`` of the
    planted class's images (chosen with the model seed); also the labels and masks."""
    images, labels, masks = make_shapes_with_masks(n, seed=seed, size=spec.size)
    if spec.kind is not None:
        rng = np.random.default_rng(1000 + spec.seed)
        chosen = np.flatnonzero(labels == spec.artifact_class)
        chosen = chosen[rng.random(len(chosen)) < spec.share]
        images[chosen] = apply_artifact(spec.kind, images[chosen], masks[chosen], rng=rng)
    return images, labels, masks


def cache_dir() -> pathlib.Path:
    """``$ACTAUDIT_ZOO_CACHE``, else ``~/.cache/pytest-actaudit/zoo``."""
    env = os.environ.get("ACTAUDIT_ZOO_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "pytest-actaudit" / "zoo"


def model_path(spec: ZooSpec, folder: pathlib.Path | None = None) -> pathlib.Path:
    """Where ``spec``'s model is cached."""
    return (folder or cache_dir()) / f"{spec.name}-{spec.digest()}.keras"


def is_cached(spec: ZooSpec, folder: pathlib.Path | None = None) -> bool:
    path = model_path(spec, folder)
    return path.exists() and path.with_suffix(".json").exists()


# Architectures. The zoo was calibrated on "cnn" alone; the others are models the
# defaults were never chosen on, of other build: another input range, batch norm, raw
# logits, VGG-style double convolutions, dropout. They learn the shapes more slowly than
# the zoo's CNN: epochs per architecture (trained fully; under-trained, about 85%).
ARCHS: tuple[str, ...] = ("cnn", "bn", "vgg")
ARCH_SIZES = {"bn": 48, "vgg": 40}
ARCH_EPOCHS = {"bn": (12, 9), "vgg": (10, 7)}
ARCH_VERSIONS = {"bn": 1, "vgg": 1}  # bump one when its build_model branch changes


def build_model(arch: str = "cnn", size: int = SIZE) -> Any:
    """A fresh, untrained model of architecture ``arch`` for ``size`` px RGB (0-255).

    ``cnn``: the demo's CNN (three conv + max-pool blocks, a fourth convolution, global
    max pooling, a 64-unit hidden dense layer, softmax).
    ``bn``: conv + batch-norm blocks on [0, 1] inputs, raw logits (no softmax).
    ``vgg``: VGG-style blocks of two convolutions, dropout, no hidden dense layer."""
    if arch == "cnn":
        from pytest_actaudit.demo.train import build_model as demo_cnn

        return demo_cnn(size=size)
    import keras

    layers = keras.layers
    inputs = keras.Input(shape=(size, size, 3), name="image")
    if arch == "bn":
        x = layers.Rescaling(1.0 / 255.0, name="to_unit")(inputs)
        for i, filters in enumerate((16, 32, 64), start=1):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = layers.ReLU(name=f"relu{i}")(x)
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = layers.Conv2D(96, 3, padding="same", activation="relu", name="conv4")(x)
        x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)
        outputs = layers.Dense(len(LABELS), name="logits")(x)
    elif arch == "vgg":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
        for i, filters in enumerate((16, 32, 48), start=1):
            for j in (1, 2):
                x = layers.Conv2D(
                    filters, 3, padding="same", activation="relu", name=f"block{i}_conv{j}"
                )(x)
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.GlobalMaxPooling2D(name="global_max_pool")(x)
        x = layers.Dropout(0.3, name="dropout")(x)
        outputs = layers.Dense(len(LABELS), activation="softmax", name="predictions")(x)
    else:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
    return keras.Model(inputs, outputs, name=f"zoo_{arch.replace('-', '_')}")


def outputs_logits(model: Any) -> bool:
    """Whether the model's last layer gives raw logits (no softmax): ``bn``'s does."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "linear"


def architecture_specs(seeds: tuple[int, ...] = (5, 6)) -> list[ZooSpec]:
    """Every kind (the zoo's and the novel ones) at share 0.75 on each architecture
    other than the zoo's, per training seed, and two clean models per architecture and
    seed (one under-trained; their seeds follow: 8 and 9 for seed 5).
    ``benchmarks/shortcut_zoo.py --architectures`` audits them."""
    out = []
    for arch in ARCHS[1:]:
        size, (full, under) = ARCH_SIZES[arch], ARCH_EPOCHS[arch]
        for seed in seeds:
            out += [ZooSpec(kind, 0.75, seed, full, size, arch=arch) for kind in ALL_KINDS]
            out += [ZooSpec(None, 0.0, 2 * seed - 2, full, size, arch=arch)]
            out += [ZooSpec(None, 0.0, 2 * seed - 1, under, size, arch=arch)]
    return out


def train(spec: ZooSpec, folder: pathlib.Path | None = None) -> tuple[pathlib.Path, dict[str, Any]]:
    """Train (or take from the cache) one zoo model: ``(path of the .keras file, info)``,
    where info holds inference-mode numbers measured on fresh test images."""
    folder = folder or cache_dir()
    path = model_path(spec, folder)
    info_path = path.with_suffix(".json")
    if path.exists() and info_path.exists():
        return path, json.loads(info_path.read_text())
    import keras

    from pytest_actaudit.demo.train import BATCH_SIZE, LEARNING_RATE

    x, y, _ = dataset(spec, spec.train_size, TRAIN_SEED + spec.seed)
    info: dict[str, Any] = {"spec": asdict(spec), "name": spec.name}
    for attempt in range(MAX_ATTEMPTS):
        # A run that collapses to one class (chance accuracy) is no model to audit: try
        # again from another initialization (deterministic: the attempt is in the seed).
        keras.utils.set_random_seed(spec.seed + 1000 * attempt)
        model = build_model(spec.arch, spec.size)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
            loss=(
                keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                if outputs_logits(model)
                else "sparse_categorical_crossentropy"
            ),
            jit_compile=False,
        )
        start = time.perf_counter()
        model.fit(x.astype(np.float32), y, batch_size=BATCH_SIZE, epochs=spec.epochs, verbose=0)
        info["train_seconds"] = round(time.perf_counter() - start, 1)
        info["attempts"] = attempt + 1
        info.update(measure(model, spec))
        if info["accuracy"] >= MIN_ACCURACY:
            break
    folder.mkdir(parents=True, exist_ok=True)
    shipped = build_model(spec.arch, spec.size)  # no optimizer state
    shipped.set_weights(model.get_weights())
    tmp = path.with_name(path.name + ".tmp.keras")
    shipped.save(tmp)
    os.replace(tmp, path)
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return path, info


def measure(model: Any, spec: ZooSpec, n: int = 800) -> dict[str, Any]:
    """Test accuracy on clean images, the planted class's accuracy on clean images, and
    the artifact's pull: the share of other classes' images, the artifact pasted in,
    read as the planted class (for a clean model, the largest pull of any kind that is
    not shape-like; ``shape_like_pull`` is the largest of those, ``pull_per_kind`` all)."""
    x, y, masks = make_shapes_with_masks(n, seed=TEST_SEED, size=spec.size)

    def predict(images: Images) -> npt.NDArray[np.int64]:
        probs = model.predict(images.astype(np.float32), batch_size=256, verbose=0)
        return np.asarray(np.argmax(probs, axis=1), np.int64)

    predicted = predict(x)
    out: dict[str, Any] = {
        "accuracy": float(np.mean(predicted == y)),
        "per_class_accuracy": [float(np.mean(predicted[y == k] == k)) for k in range(len(LABELS))],
    }
    if spec.kind is not None:
        k = spec.artifact_class
        others = y != k
        pulled = predict(apply_artifact(spec.kind, x[others], masks[others]))
        out["class_accuracy"] = out["per_class_accuracy"][k]
        out["pull"] = float(np.mean(pulled == k))
    else:
        pulls = {}
        for kind in KINDS:
            art = apply_artifact(kind, x, masks)
            p = predict(art)
            pulls[kind] = max(float(np.mean(p[y != k] == k)) for k in range(len(LABELS)))
        out["pull"] = max(v for kind, v in pulls.items() if kind not in SHAPE_LIKE_KINDS)
        out["shape_like_pull"] = max(pulls[kind] for kind in SHAPE_LIKE_KINDS)
        out["pull_per_kind"] = pulls
    return out


def references(n_per_class: int = 20, size: int = SIZE) -> tuple[Images, npt.NDArray[np.int64]]:
    """Trusted, artifact-free references: ``(images, class indices)``."""
    images, labels, _ = make_shapes_with_masks(
        n_per_class * len(LABELS), seed=REFERENCE_SEED, size=size
    )
    return images, labels


def example_images(kind: str, size: int = SIZE, n: int = 4) -> Images:
    """A few images carrying ``kind`` (for the docs and the tests)."""
    images, _, masks = make_shapes_with_masks(n, seed=7, size=size)
    return apply_artifact(kind, images, masks)
