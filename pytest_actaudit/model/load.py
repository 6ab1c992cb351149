"""Loading a model and reading what the engine needs from it: its classifier output,
its head's kind and a content hash. Its input spec is in :mod:`.inputs`, its class
names in :mod:`.labels`.

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
from pathlib import Path
from typing import Any

from ..errors import ActauditError


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
