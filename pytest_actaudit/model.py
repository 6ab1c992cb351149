"""Loading a model and reading what the engine needs from it: input spec (shape,
value range, channels), labels and a content hash.

TensorFlow is imported inside the functions that need it, so importing this
module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ActauditError

RANGES: dict[str, tuple[float, float]] = {
    "0-255": (0.0, 255.0),
    "0-1": (0.0, 1.0),
    "-1-1": (-1.0, 1.0),
}


def parse_range(value: str) -> tuple[float, float]:
    """``0-255``, ``0-1``, ``-1-1`` or ``LOW,HIGH``."""
    text = str(value).strip()
    if text in RANGES:
        return RANGES[text]
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"input range must be one of {', '.join(RANGES)} or LOW,HIGH, got {value!r}"
        ) from None
    if not low < high:
        raise ValueError(f"input range needs LOW < HIGH, got {value!r}")
    return (low, high)


@dataclass(frozen=True)
class InputSpec:
    """What one input image looks like to the model."""

    height: int
    width: int
    channels: int
    low: float
    high: float
    range_source: str  # why we believe the range: "config", "Rescaling layer", "default"
    size_source: str = "model"  # "model" (fixed in its input), or the setting that gave it
    preprocess: Any = None  # a preprocess.Preprocess applied to 0-255 RGB, or None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def keras_module() -> Any:
    """The Keras the user's TensorFlow exposes: Keras 3, or tf-keras under
    ``TF_USE_LEGACY_KERAS=1``. Both are supported through this one handle."""
    import tensorflow as tf

    return tf.keras


# id(model) -> (weak reference, file): lets the report name the file and hash its
# content for models loaded through ``load_model``, however a conftest passes them on.
_SOURCES: dict[int, tuple[Any, str]] = {}


def source_path(model: Any) -> str | None:
    """The file a model was loaded from by :func:`load_model`, if any."""
    entry = _SOURCES.get(id(model))
    if entry is None or entry[0]() is not model:
        return None
    return entry[1]


def load_model(
    path: str | os.PathLike[str],
    *,
    safe_mode: bool = True,
    custom_objects: dict[str, Any] | None = None,
) -> Any:
    """Load a model file for auditing (see ``_load_model``); ``custom_objects`` are
    Keras's: classes of custom layers that nothing registered, by registered name."""
    model = _load_model(path, safe_mode=safe_mode, custom_objects=custom_objects)
    # Not weak-referenceable: the report falls back to a weights hash.
    with contextlib.suppress(TypeError):
        _SOURCES[id(model)] = (weakref.ref(model), str(path))
    return model


def _load_model(
    path: str | os.PathLike[str],
    *,
    safe_mode: bool = True,
    custom_objects: dict[str, Any] | None = None,
) -> Any:
    """Load a ``.keras``, ``.h5`` or SavedModel directory without compiling it.

    Keras safe mode stays on unless the caller opts out: a ``.keras`` file with a
    Lambda layer carries Python code that would run on load.
    """
    p = Path(path)
    if not p.exists():
        raise ActauditError(
            f"model file not found: {str(p)!r} (cwd {os.getcwd()!r}); "
            "check --actaudit-model / actaudit_model, or override the actaudit_model fixture"
        )
    keras = keras_module()
    try:
        if p.is_dir():
            return _load_savedmodel(p, keras)
        kwargs: dict[str, Any] = {"compile": False}
        if custom_objects:
            kwargs["custom_objects"] = custom_objects
        if p.suffix == ".keras":
            kwargs["safe_mode"] = safe_mode
        return keras.models.load_model(str(p), **kwargs)
    except ActauditError:
        raise
    except Exception as exc:  # Keras raises many types for a bad file
        text = str(exc)
        first_line = text.splitlines()[0] if text else ""
        if "safe_mode" in text or "Lambda" in text and "unsafe" in text.lower():
            raise ActauditError(
                f"refusing to load {str(p)!r} in Keras safe mode: it holds a Lambda layer, "
                "whose Python code would run on load. If you trust this file, set "
                "`actaudit_unsafe_load = true` in the ini (or call "
                "load_model(path, safe_mode=False))."
            ) from exc
        custom = unknown_custom_object(text)
        if custom is not None:
            raise ActauditError(custom_object_hint(str(p), *custom)) from exc
        raise ActauditError(
            f"could not load model {str(p)!r}: {type(exc).__name__}: {first_line}"
            " — is the file complete and saved by Keras (.keras, .h5 or a SavedModel folder)?"
        ) from exc


def unknown_custom_object(message: str) -> tuple[str, str | None, str | None] | None:
    """(class name, module, registered name) of the custom class Keras's load error says
    it could not find, or None when the error is about something else."""
    found = re.search(
        r"Could not locate (?:class|function) '([^']+)'|Unknown (?:layer|object|class)"
        r"[^'\"]*['\"]([^'\"]+)['\"]",
        message,
    )
    if found is None:
        return None
    name = found.group(1) or found.group(2)
    quoted = re.escape(name)
    module = re.search(r"'module': '([^']+)', 'class_name': '" + quoted + "'", message)
    registered = re.search(
        r"'class_name': '" + quoted + r"'.*?'registered_name': '([^']+)'", message
    )
    return (
        name,
        module.group(1) if module else None,
        registered.group(1) if registered else None,
    )


def custom_object_hint(path: str, name: str, module: str | None, registered: str | None) -> str:
    """The refusal of a model with a custom class nothing registered, and both fixes."""
    key = registered or name
    where = ", ".join(
        part for part in (f"module {module!r}" if module else "", f"registered as {key!r}") if part
    )
    importing = f"`import {module}`" if module else "an import of the module that defines it"
    return (
        f"could not load model {path!r}: it uses the custom layer or object {name!r} "
        f"({where}), and no class of that name is registered in this process. Either "
        f"import the module that defines it with @keras.saving.register_keras_serializable() "
        f"before the model loads ({importing} at the top of conftest.py), or load the model "
        "yourself in a conftest.py fixture:\n"
        "    @pytest.fixture(scope='session')\n"
        "    def actaudit_model():\n"
        f"        return pytest_actaudit.load_model({path!r}, "
        f"custom_objects={{{key!r}: {name}}})"
    )


def _load_savedmodel(path: Path, keras: Any) -> Any:
    if hasattr(keras.layers, "TFSMLayer"):  # Keras 3: wrap the serving signature
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
        (spec,) = signature.structured_input_signature[1].values()
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
        inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype)
        outputs = layer(inputs)
        if isinstance(outputs, dict):
            outputs = next(iter(outputs.values()))
        return keras.Model(inputs, outputs, name=path.name)
    return keras.models.load_model(str(path), compile=False)


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a model file, or of every file of a SavedModel folder."""
    p = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        digest.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_hash(model: Any) -> str:
    """sha256 over the weights and architecture of an in-memory model (for models
    built in ``conftest.py`` that have no file)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(model.to_json() if hasattr(model, "to_json") else "").encode())
    for w in model.weights:
        digest.update(w.numpy().tobytes())
    return digest.hexdigest()


def output_names(model: Any) -> list[str]:
    """The names of a model's outputs (the layers producing them), in output order."""
    names = []
    for i, tensor in enumerate(getattr(model, "outputs", None) or []):
        history = getattr(tensor, "_keras_history", None)
        names.append(str(getattr(history[0], "name", f"output_{i}")) if history else f"output_{i}")
    return names


def select_output(model: Any, output: str | None) -> Any:
    """A single-output view of ``model``: the model itself when it has one output and
    none is named, else a functional sub-model ending at the named output (same layers
    and weights; the user's model is untouched)."""
    names = output_names(model)
    if output is None:
        if len(names) > 1:
            raise ActauditError(
                f"model {getattr(model, 'name', model)!r} has {len(names)} outputs "
                f"({', '.join(map(repr, names))}); name the classifier output with "
                "--actaudit-output NAME (ini actaudit_output, marker output=..., or "
                "maximize(..., output=NAME))"
            )
        return model
    if output not in names:
        raise ActauditError(
            f"model {getattr(model, 'name', model)!r} has no output {output!r}; its outputs "
            f"are {', '.join(map(repr, names)) or 'none'}"
        )
    if len(names) == 1:
        return model
    keras = keras_module()
    index = names.index(output)
    return keras.Model(model.inputs, model.outputs[index], name=f"{model.name}.{output}")


def parse_size(value: str | Sequence[int]) -> tuple[int, int]:
    """``"H,W"``, ``"N"`` (square) or a pair of ints → (height, width), both ≥ 8."""
    parts: list[Any]
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").replace("×", ",").split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        dims = [int(str(p).strip()) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 8:
        raise ValueError(
            f"input size must be HEIGHT,WIDTH in pixels (each at least 8), like 224,224; "
            f"got {value!r}"
        )
    return dims[0], dims[1]


def input_spec(
    model: Any,
    input_range: str | None = None,
    input_size: str | Sequence[int] | None = None,
    size_source: str = "input_size",
    preprocess: str | None = None,
) -> InputSpec:
    """Read shape and value range of an image classifier's input; refuse anything else.
    ``input_size`` (H, W) is the size to optimize at when the model's spatial dims are not
    fixed; for a fixed model it must equal them."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ActauditError(
            f"model {getattr(model, 'name', model)!r} has no defined input; build it with an "
            "Input layer (or call it once) before auditing"
        )
    if len(inputs) != 1:
        raise ActauditError(
            f"model {model.name!r} has {len(inputs)} inputs; "
            "class maximization needs one image input"
        )
    shape = tuple(inputs[0].shape)
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    if len(shape) != 4 or shape[-1] not in (1, 3, 4) or "int" in dtype:
        raise ActauditError(
            f"model {model.name!r} is not an image classifier: its input is {shape} {dtype}, "
            "expected (batch, height, width, channels) floats with 1, 3 or 4 channels"
        )
    height, width, size_from = _size(model.name, shape, input_size, size_source)
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        out = [tuple(o.shape) for o in outputs]
        raise ActauditError(
            f"model {model.name!r} is not an image classifier: its output is {out}, "
            "expected one (batch, classes) tensor"
        )
    pre = None
    if preprocess and input_range:
        raise ActauditError(
            f"both an input range ({input_range!r}) and a preprocessing ({preprocess!r}) are "
            "set; give one: the preprocessing says what the model takes"
        )
    if preprocess:
        from .preprocess import parse_preprocess

        try:
            pre = parse_preprocess(preprocess)
        except ValueError as exc:
            raise ActauditError(str(exc)) from None
        low, high, source = 0.0, 255.0, f"RGB 0-255, then preprocessing {preprocess!r}"
    elif input_range:
        low, high = parse_range(input_range)
        source = "config"
    else:
        low, high, source = _infer_range(model)
    return InputSpec(
        height, width, int(shape[3]), low, high, source, size_source=size_from, preprocess=pre
    )


def _size(
    name: str,
    shape: tuple[Any, ...],
    given: str | Sequence[int] | None,
    setting: str,
) -> tuple[int, int, str]:
    """(height, width, where they came from) for a model input ``shape``."""
    fixed = shape[1] is not None and shape[2] is not None
    if given is None or given == "":
        if not fixed:
            raise ActauditError(
                f"model {name!r} has no fixed input size (its input is {shape}), so the size "
                "to optimize at is unknown: give it with --actaudit-input-size HEIGHT,WIDTH "
                "(ini actaudit_input_size, or input_size=(HEIGHT, WIDTH) in "
                "pytest_actaudit.maximize), e.g. the size the model was trained at"
            )
        return int(shape[1]), int(shape[2]), "model"
    try:
        height, width = parse_size(given)
    except ValueError as exc:
        raise ActauditError(str(exc)) from None
    for dim, want, what in ((shape[1], height, "height"), (shape[2], width, "width")):
        if dim is not None and int(dim) != want:
            raise ActauditError(
                f"{setting} {height},{width} does not match model {name!r}, whose input "
                f"{what} is fixed at {dim} (input {shape}); drop the setting or give "
                f"{shape[1] if shape[1] is not None else height},"
                f"{shape[2] if shape[2] is not None else width}"
            )
    return height, width, setting


def _infer_range(model: Any) -> tuple[float, float, str]:
    """A leading Rescaling or Normalization layer means the model takes raw 0–255 pixels."""
    for layer in model.layers[:4]:
        kind = type(layer).__name__
        if kind in {"Rescaling", "Normalization"}:
            return 0.0, 255.0, f"{kind} layer {layer.name!r}"
        if kind not in {"InputLayer"}:
            break
    return 0.0, 1.0, "default (no Rescaling layer; set actaudit_input_range if wrong)"


def is_binary_head(model: Any) -> bool:
    """One sigmoid unit (a Dense with a sigmoid, or a sigmoid Activation after one unit):
    two classes, the positive one and its negation."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or tuple(outputs[0].shape)[-1:] != (1,) or not model.layers:
        return False
    activation = getattr(model.layers[-1], "activation", None)
    name = str(getattr(activation, "__name__", activation or "")).lower()
    return name == "sigmoid"


def num_classes(model: Any) -> int:
    """Classes of the classifier output; a binary sigmoid head has two (see
    :func:`is_binary_head`)."""
    return 2 if is_binary_head(model) else int(model.outputs[0].shape[-1])


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names, one per line, a JSON list, or keras's imagenet_class_index.json."""
    p = Path(path)
    if not p.is_file():
        raise ActauditError(
            f"labels file not found: {str(p)!r}; pass --actaudit-labels PATH (one class name "
            "per line, or a JSON list)"
        )
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ActauditError(f"labels file {str(p)!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            return _class_index(data, p)
        if not isinstance(data, list):
            raise ActauditError(f"labels file {str(p)!r} must hold a JSON list of names")
        return _unique([(n, str(item)) for n, item in enumerate(data)], p, "indices")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    return _unique(lines, p, "lines")


def _unique(numbered: list[tuple[int, str]], path: Path, where: str) -> list[str]:
    """The names, refused if one repeats: two items would audit the first index under one
    node id and the other class would never be audited."""
    seen: dict[str, list[int]] = {}
    for number, name in numbered:
        seen.setdefault(name, []).append(number)
    repeated = {name: numbers for name, numbers in seen.items() if len(numbers) > 1}
    if repeated:
        said = "; ".join(
            f"{name!r} on {where} {', '.join(map(str, numbers))}"
            for name, numbers in list(repeated.items())[:5]
        )
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise ActauditError(
            f"labels file {str(path)!r} names a class more than once: {said}{more}; "
            "each output needs its own name"
        )
    return [name for _, name in numbered]


def _class_index(data: dict[str, Any], path: Path) -> list[str]:
    """Keras's ``imagenet_class_index.json``: ``{"0": ["n01440764", "tench"], ...}`` (or
    index → name). Names that repeat (ImageNet has two "crane") get their id appended."""
    try:
        order = sorted(data, key=int)
    except ValueError:
        raise ActauditError(
            f"labels file {str(path)!r}: a JSON object must map class indices to names "
            '(like imagenet_class_index.json: {"0": ["n01440764", "tench"]})'
        ) from None
    if [int(k) for k in order] != list(range(len(order))):
        raise ActauditError(f"labels file {str(path)!r}: indices must run 0..{len(order) - 1}")
    entries = [data[k] if isinstance(data[k], list) else [None, data[k]] for k in order]
    names = [str(entry[-1]) for entry in entries]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    named = [
        f"{name} ({entry[0]})" if seen[name] > 1 and entry[0] else name
        for name, entry in zip(names, entries, strict=True)
    ]
    return _unique(list(enumerate(named)), path, "indices")


def resolve_labels(
    model: Any, labels: str | os.PathLike[str] | list[str] | None, model_path: str | None
) -> list[str]:
    """Labels from the argument, else ``labels.txt`` beside the model file, else indices.
    A binary sigmoid head takes two names (negative first) or one (the positive class;
    the other is "not <name>")."""
    n = num_classes(model)
    source = "given list"
    names: list[str] | None
    if isinstance(labels, list | tuple):
        names = [str(x) for x in labels]
    elif labels:
        names = read_labels(labels)
        source = str(labels)
    else:
        names = None
        if model_path:
            beside = Path(model_path).parent / "labels.txt"
            if beside.is_file():
                names, source = read_labels(beside), str(beside)
    if is_binary_head(model):  # index 0: the sigmoid near 0, index 1: near 1
        if names is None:
            return ["negative", "positive"]
        if len(names) == 1:
            return [f"not {names[0]}", names[0]]
    if names is None:
        return [str(i) for i in range(n)]
    if len(names) != n:
        raise ActauditError(
            f"labels from {source} name {len(names)} classes but model "
            f"{model_path or model.name!r} has {n} "
            "outputs; give one name per output, in output order"
        )
    return names


def resolve_target(target: str | int, labels: list[str]) -> int:
    """A class name or index → index, with the valid choices in the error."""
    if isinstance(target, bool):
        raise ActauditError(f"class target must be a name or an index, got {target!r}")
    if isinstance(target, int) or (
        isinstance(target, str) and target.strip().lstrip("-").isdigit()
    ):
        index = int(target)
        if not 0 <= index < len(labels):
            raise ActauditError(
                f"class index {index} is out of range: the model has {len(labels)} classes "
                f"(0..{len(labels) - 1})"
            )
        return index
    if target in labels:
        return labels.index(target)
    import difflib

    close = difflib.get_close_matches(str(target), labels, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    shown = ", ".join(map(repr, labels[:20])) + (" …" if len(labels) > 20 else "")
    raise ActauditError(f"unknown class {target!r}; {hint}valid names: {shown}")
