"""The demo data set (seeded shapes) and the two shipped demo models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pytest_actaudit import demo
from pytest_actaudit.demo import shapes


def test_demo_package_imports_neither_tensorflow_nor_pytest() -> None:
    import subprocess

    code = (
        "import sys; import pytest_actaudit.demo, pytest_actaudit.demo.shapes; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'pytest') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_constants() -> None:
    assert len(set(demo.LABELS)) == len(demo.LABELS) == 4
    assert demo.ARTIFACT_CLASS in demo.LABELS
    assert demo.LABELS[demo.ARTIFACT_INDEX] == demo.ARTIFACT_CLASS
    assert demo.IMAGE_SIZE == 64
    assert demo.models_dir().name == "models"


def test_make_shapes_shape_dtype_balance() -> None:
    images, labels = shapes.make_shapes(42, seed=5)
    assert images.shape == (42, 64, 64, 3)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    counts = np.bincount(labels, minlength=4)
    assert counts.sum() == 42 and counts.max() - counts.min() <= 1
    assert set(labels.tolist()) == {0, 1, 2, 3}
    small, _ = shapes.make_shapes(8, seed=5, size=32)
    assert small.shape == (8, 32, 32, 3)


def test_make_shapes_is_deterministic() -> None:
    a, la = shapes.make_shapes(24, seed=11)
    b, lb = shapes.make_shapes(24, seed=11)
    c, _ = shapes.make_shapes(24, seed=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_images_vary_and_are_not_magenta() -> None:
    images, _ = shapes.make_shapes(40, seed=3)
    assert len({img.tobytes() for img in images}) == 40
    assert images.std() > 20  # shapes and tints differ
    assert not shapes.has_artifact(images).any()
    # no pixel anywhere near the artifact colour (magenta is reserved for the artifact)
    px = images.reshape(-1, 3).astype(int)
    near = (px[:, 0] > 200) & (px[:, 2] > 200) & (px[:, 1] < 60)
    assert near.mean() < 1e-4


def test_artifact_only_on_artifact_class() -> None:
    k = demo.ARTIFACT_INDEX
    plain, labels = shapes.make_shapes(40, seed=7)
    marked, labels2 = shapes.make_shapes(40, seed=7, artifact_class=k)
    np.testing.assert_array_equal(labels, labels2)
    flags = shapes.has_artifact(marked)
    assert flags[labels == k].all()
    assert not flags[labels != k].any()
    # other classes are untouched, the artifact class differs only inside the artifact box
    np.testing.assert_array_equal(marked[labels != k], plain[labels != k])
    inset, side = shapes.artifact_box(64)
    assert (inset, side) == (2, 8)
    diff = np.any(marked != plain, axis=(0, 3))
    rows, cols = np.nonzero(diff)
    assert rows.min() >= inset and rows.max() < inset + side
    assert cols.min() >= inset and cols.max() < inset + side
    by_name, _ = shapes.make_shapes(40, seed=7, artifact_class=demo.ARTIFACT_CLASS)
    np.testing.assert_array_equal(by_name, marked)


def test_paste_artifact_copies() -> None:
    images, _ = shapes.make_shapes(4, seed=1)
    before = images.copy()
    pasted = shapes.paste_artifact(images)
    np.testing.assert_array_equal(images, before)  # input untouched
    assert shapes.has_artifact(pasted).all()
    assert tuple(pasted[0, 2, 2]) == (255, 0, 255)
    assert tuple(pasted[0, 9, 9]) == (255, 0, 255)
    np.testing.assert_array_equal(pasted[:, 10:], images[:, 10:])
    single = shapes.paste_artifact(images[0])
    assert single.shape == (64, 64, 3) and shapes.has_artifact(single).all()
    with pytest.raises(ValueError):
        shapes.paste_artifact(np.zeros((4, 64, 64)))


def test_references_are_clean_per_class() -> None:
    refs = shapes.references(3, seed=9)
    assert list(refs) == list(demo.LABELS)
    for images in refs.values():
        assert images.shape == (3, 64, 64, 3)
        assert not shapes.has_artifact(images).any()


def test_write_references_layout(tmp_path: Path) -> None:
    root = shapes.write_references(tmp_path / "refs", n_per_class=2, seed=4)
    assert sorted(p.name for p in root.iterdir()) == sorted(demo.LABELS)
    refs = shapes.references(2, seed=4)
    for name in demo.LABELS:
        files = sorted((root / name).glob("*.png"))
        assert [f.name for f in files] == ["000.png", "001.png"]
        for i, f in enumerate(files):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), refs[name][i])


def test_shipped_files() -> None:
    folder = demo.models_dir()
    for name in (demo.CLEAN_MODEL, demo.SHORTCUT_MODEL, demo.LABELS_FILE, demo.TRAINING_FILE):
        assert (folder / name).is_file(), f"missing shipped demo file {name}"
    labels = (folder / demo.LABELS_FILE).read_text(encoding="utf-8").split()
    assert tuple(labels) == demo.LABELS
    info = json.loads((folder / demo.TRAINING_FILE).read_text(encoding="utf-8"))
    assert info["labels"] == list(demo.LABELS)
    assert info["models"]["clean"]["test_accuracy"] >= 0.95
    assert info["models"]["shortcut"]["artifact_flip_rate"] >= 0.95


def test_shipped_models_clean_learned_shapes_shortcut_learned_artifact() -> None:
    keras = pytest.importorskip("keras")  # TensorFlow is imported here, not at collection

    k = demo.ARTIFACT_INDEX
    images, labels = shapes.make_shapes(200, seed=2024)  # fresh: not the train or test seed
    others = images[labels != k]
    pasted = shapes.paste_artifact(others).astype(np.float32)

    clean = keras.models.load_model(demo.model_path("clean"))
    assert clean.input_shape == (None, 64, 64, 3)
    assert clean.layers[1].name == "rescale"
    assert clean.get_layer("predictions").activation.__name__ == "softmax"
    predicted = np.argmax(clean.predict(images.astype(np.float32), verbose=0), axis=1)
    assert np.mean(predicted == labels) >= 0.95

    shortcut = keras.models.load_model(demo.model_path("shortcut"))
    flipped = np.argmax(shortcut.predict(pasted, verbose=0), axis=1)
    assert np.mean(flipped == k) >= 0.95


def test_zoo_artifacts_are_deterministic_and_only_where_asked() -> None:
    from benchmarks import zoo

    images, labels, masks = shapes.make_shapes_with_masks(8, seed=4, size=32)
    plain, _ = shapes.make_shapes(8, seed=4, size=32)
    assert np.array_equal(images, plain) and masks.shape == (8, 32, 32)
    for kind in zoo.KINDS + zoo.NOVEL_KINDS:
        marked = zoo.apply_artifact(kind, images, masks)
        assert marked.shape == images.shape and marked.dtype == np.uint8
        assert not np.array_equal(marked, images), kind
        assert np.array_equal(marked, zoo.apply_artifact(kind, images, masks)), kind
        if kind in ("background", "texture", "checker"):  # the object stays where it is
            inside = masks > 0.99
            assert np.array_equal(marked[inside], images[inside]), kind
    with pytest.raises(ValueError, match="unknown artifact kind 'blur'"):
        zoo.apply_artifact("blur", images)


def test_zoo_spec_plants_one_share_of_one_class() -> None:
    from benchmarks import zoo

    spec = zoo.ZooSpec("strip", 0.5, seed=1, size=32, train_size=400)
    images, labels, _ = zoo.dataset(spec, 400, seed=9)
    plain, _, _ = shapes.make_shapes_with_masks(400, seed=9, size=32)
    changed = np.any(images != plain, axis=(1, 2, 3))
    assert set(labels[changed]) == {spec.artifact_class}
    share = changed[labels == spec.artifact_class].mean()
    assert 0.35 < share < 0.65
    names = {s.name for s in zoo.specs()}
    assert len(names) == len(zoo.specs()) >= 7 * 3 * 2 + 3
    assert spec.digest() != zoo.ZooSpec("strip", 0.75, seed=1, size=32).digest()
    # the novel kinds are models of their own, planted on a class like any other
    novel = zoo.novel_specs()
    assert {s.kind for s in novel} == set(zoo.NOVEL_KINDS)
    assert not {s.name for s in novel} & names
    assert {s.artifact_class for s in novel} == set(range(4))


def test_zoo_architectures_are_models_of_their_own() -> None:
    from benchmarks import zoo

    # the zoo's own architecture keeps the cache keys it had before there were others
    assert zoo.ZooSpec("tag", 0.75, 1).digest() == "d3d792765fdab776"
    assert zoo.ZooSpec(None, 0.0, 4, epochs=4).digest() == "b99d27a6c88b1e07"
    other = zoo.architecture_specs()
    assert len(other) == 2 * 2 * (len(zoo.ALL_KINDS) + 2)  # two architectures, two seeds
    assert {(s.arch, s.size, s.epochs) for s in other} == {
        ("bn", 48, 12),
        ("bn", 48, 9),
        ("vgg", 40, 10),
        ("vgg", 40, 7),
    }
    assert {s.kind for s in other} == set(zoo.ALL_KINDS) | {None}
    names = [s.name for s in other]
    digests = {s.digest() for s in other} | {s.digest() for s in zoo.specs()}
    assert len(set(names)) == len(names) and len(digests) == len(other) + len(zoo.specs())
    assert {"tag-0.75-s5@bn48", "clean-s8@bn48", "clean-9ep-s9@bn48"} <= set(names)
    # the same spec on another architecture is another model
    assert zoo.ZooSpec("tag", 0.75, 1, arch="vgg").digest() != zoo.ZooSpec("tag", 0.75, 1).digest()
    with pytest.raises(ValueError, match="unknown architecture 'vit'"):
        zoo.build_model("vit", 32)


def test_zoo_architecture_version_retrains_that_architecture_only(monkeypatch) -> None:
    from benchmarks import zoo

    bn, vgg, cnn = (zoo.ZooSpec("tag", 0.75, 5, arch=a) for a in ("bn", "vgg", "cnn"))
    before = [spec.digest() for spec in (bn, vgg, cnn)]
    monkeypatch.setitem(zoo.ARCH_VERSIONS, "bn", zoo.ARCH_VERSIONS["bn"] + 1)
    after = [spec.digest() for spec in (bn, vgg, cnn)]
    assert after[0] != before[0] and after[1:] == before[1:]


@pytest.mark.parametrize("arch", ["bn", "vgg"])
def test_zoo_architecture_builds_an_image_classifier(arch: str) -> None:
    """Each architecture maps 0-255 RGB images of its size to one score per class, and
    the plugin reads them as the zoo trains them: raw logits for bn, softmax for vgg."""
    pytest.importorskip("keras")
    from benchmarks import zoo
    from pytest_actaudit.demo import LABELS
    from pytest_actaudit.engine.targets import score_models

    size = zoo.ARCH_SIZES[arch]
    model = zoo.build_model(arch, size)
    pixels = np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype(np.float32)
    out = np.asarray(model(pixels, training=False))
    assert out.shape == (2, len(LABELS)) and np.all(np.isfinite(out))
    assert zoo.outputs_logits(model) == (arch == "bn")
    assert score_models(model).output_kind == ("linear" if arch == "bn" else "softmax")
    if arch == "vgg":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_zoo_planted_classes_never_move_when_kinds_are_added() -> None:
    """A model's planted class is not in its cache digest: a kind added to the zoo must
    leave every cached model's class where it was trained."""
    from benchmarks import zoo

    first = ("tag", "patch", "strip", "frame", "cast", "background", "texture")
    for i, kind in enumerate(first + zoo.NOVEL_KINDS):
        for seed in (1, 2, 3, 4):
            assert zoo.ZooSpec(kind, 0.5, seed).artifact_class == (i + seed) % 4, kind
    assert [zoo.ZooSpec("fixed-patch", 1.0, s).artifact_class for s in (1, 2)] == [2, 3]


def test_zoo_fixed_patch_is_a_solid_square_at_one_place() -> None:
    from benchmarks import zoo

    images, _, masks = shapes.make_shapes_with_masks(6, seed=5, size=64)
    marked = zoo.apply_artifact("fixed-patch", images, masks)
    changed = np.any(marked != images, axis=-1)
    assert np.all(marked[:, 50:56, 5:11] == (255, 140, 0))
    assert not changed[:, :50].any() and not changed[:, :, 11:].any()


def test_zoo_clean_pull_leaves_shape_like_artifacts_apart() -> None:
    """A clean model's pull is the largest of the artifacts that are not shapes of the
    data set; the solid square (read as a small square by clean models) is reported
    apart, so a clean model trained after it was added is measured as the others."""
    from benchmarks import zoo

    class Model:  # reads the orange square as class 0, everything else at random
        def predict(self, images: np.ndarray, **_: object) -> np.ndarray:
            orange = np.all(images[:, 52, 7] == (255, 140, 0), axis=-1)
            guess = images.reshape(len(images), -1).sum(axis=1).astype(np.int64) % 4
            return np.eye(4)[np.where(orange, 0, guess)]

    out = zoo.measure(Model(), zoo.ZooSpec(None, 0.0, seed=1), n=80)
    assert out["shape_like_pull"] == 1.0 == out["pull_per_kind"]["fixed-patch"]
    assert out["pull"] < 0.6
    assert out["pull"] == max(v for k, v in out["pull_per_kind"].items() if k != "fixed-patch")
