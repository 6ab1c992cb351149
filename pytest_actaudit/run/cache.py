"""Content-addressed cache of optimized images.

Key: sha256 of the model's content hash, the engine settings, the input spec, the
steps, the target, the seed and this package's version. Value: one ``.npz`` per
(target, seed) holding everything an ``ImageResult`` holds. Writes are atomic
(temp file + rename), so concurrent xdist workers never see half a file; an entry
that cannot be read, or whose arrays do not fit its key (the image's shape, the steps),
is deleted and recomputed, never trusted. numpy only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ActauditWarning

FIELDS = (
    "image", "logit", "probability", "curve", "failed_step", "attribution", "features",
    "stopped_step",
)  # fmt: skip


class ResultCache:
    def __init__(
        self,
        folder: str | Path,
        context: dict[str, Any],
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        from ..version import __version__

        self.folder = Path(folder)
        self.image_shape = image_shape  # (H, W, C) every entry's image must have
        self.prefix = json.dumps({**context, "version": __version__}, sort_keys=True, default=str)
        self.hits = 0
        self.misses = 0

    def _path(self, target: int, seed: int, steps: int) -> Path:
        return entry_path(self.folder, f"{self.prefix}|{target}|{seed}|{steps}")

    def get(self, target: int, seed: int, steps: int) -> dict[str, Any] | None:
        path = self._path(target, seed, steps)
        entry = read_npz(path, FIELDS)
        if entry is None:
            self.misses += 1
            return None
        wrong = self.mismatch(entry, steps)
        if wrong:
            # an entry that loads but does not fit its key (written by another version,
            # copied between caches, edited): say which, and recompute
            warnings.warn(
                ActauditWarning(
                    f"actaudit: cache entry {path} (class {target}, seed {seed}, {steps} steps) "
                    f"does not fit its key: {wrong}; it is deleted and the image optimized again"
                ),
                stacklevel=2,
            )
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def mismatch(self, entry: dict[str, Any], steps: int) -> str:
        """What in ``entry`` does not fit a key of ``steps`` steps and this cache's image
        shape ("" when everything does)."""
        expected: dict[str, tuple[int, ...] | None] = {
            "image": self.image_shape,
            "logit": (),
            "probability": (),
            "curve": (steps,),
            "failed_step": (),
            "stopped_step": (),
            "attribution": self.image_shape[:2] if self.image_shape else None,
        }
        wrong = [
            f"{name} has shape {tuple(entry[name].shape)}, not {shape}"
            for name, shape in expected.items()
            if shape is not None and tuple(entry[name].shape) != shape
        ]
        if entry["image"].dtype != np.uint8:
            wrong.append(f"image is {entry['image'].dtype}, not uint8")
        if entry["features"].ndim != 1:
            wrong.append(f"features have shape {tuple(entry['features'].shape)}, not (D,)")
        return "; ".join(wrong)

    def put(self, target: int, seed: int, steps: int, entry: dict[str, Any]) -> None:
        arrays: dict[str, Any] = {name: np.asarray(entry[name]) for name in FIELDS}
        write_npz(self._path(target, seed, steps), arrays)


def entry_path(folder: Path, key: str) -> Path:
    """Where the entry of ``key`` lives in a cache ``folder``: named by the key's sha256,
    under a folder of its first two hex digits."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return folder / digest[:2] / f"{digest}.npz"


def read_npz(path: Path, fields: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """The arrays of entry ``path`` (only ``fields``, all of them required, when given),
    or None when there is none. An entry that cannot be read (truncated, corrupt, of
    another layout) is deleted and None returned: it is recomputed, never trusted."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (fields or data.files)}
    except FileNotFoundError:
        return None
    except Exception:
        path.unlink(missing_ok=True)
        return None


def write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """``arrays`` as ``path`` (.npz), atomically: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _code_digest() -> str:
    """sha256 of the probe's code (every module of checks/probe/, and edits.py): changing
    it makes new keys, so a cached probe result never outlives the code that made it."""
    from ..checks import edits, probe

    digest = hashlib.sha256()
    package = Path(str(probe.__file__)).parent
    for path in [*sorted(package.glob("*.py")), Path(str(edits.__file__))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def array_digest(*arrays: Any) -> str:
    """sha256 of arrays' dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


class ProbeCache:
    """The shortcut probe's results beside the images they were made from: key = the
    image cache's key prefix (model hash, engine settings, input spec, version), the
    probe's code, the trusted references' content, the class and its images and
    attribution maps. One ``.npz`` per class: arrays, and a JSON description of the
    rest; like image entries, one that cannot be read is recomputed."""

    def __init__(self, results: ResultCache) -> None:
        self.folder = results.folder / "probe"
        self.prefix = f"{results.prefix}|{_code_digest()}"
        self.hits = 0
        self.misses = 0

    def _path(self, references: str, index: int, images: Any, attribution: Any) -> Path:
        key = f"{self.prefix}|{references}|{index}|{array_digest(images, attribution)}"
        return entry_path(self.folder, key)

    def remember(self, references: str, index: int, images: Any, attribution: Any, run: Any) -> Any:
        """The probe result for this key: from the cache, else ``run()``, stored."""
        path = self._path(references, index, images, attribution)
        data = read_npz(path)
        if data is not None:
            try:
                found = _probe_from_arrays(data)
            except Exception:  # of another layout: recompute
                path.unlink(missing_ok=True)
            else:
                self.hits += 1
                return found
        self.misses += 1
        result = run()
        write_npz(path, _probe_to_arrays(result))
        return result


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _probe_to_arrays(result: Any) -> dict[str, Any]:
    """A ``ProbeResult`` as named arrays: its evidence's arrays (and lists of arrays) by
    name, everything else as JSON in ``meta``."""
    import dataclasses

    arrays: dict[str, Any] = {}
    evidence = []
    for k, found in enumerate(result.evidence):
        described: dict[str, Any] = {}
        for f in dataclasses.fields(found):
            value = getattr(found, f.name)
            if isinstance(value, np.ndarray):
                arrays[f"e{k}_{f.name}"] = value
                described[f.name] = {"array": f"e{k}_{f.name}"}
            elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
                names = [f"e{k}_{f.name}_{j}" for j in range(len(value))]
                arrays.update(zip(names, value, strict=True))
                described[f.name] = {"arrays": names}
            else:
                described[f.name] = {"value": _plain(value)}
        evidence.append(described)
    meta = {
        "evidence": evidence,
        "references_of_class": int(result.references_of_class),
        "references_of_others": int(result.references_of_others),
        "class_accuracy": float(result.class_accuracy),
        "read_by_model": bool(getattr(result, "read_by_model", False)),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def _probe_from_arrays(data: dict[str, Any]) -> Any:
    from ..checks.probe import Evidence, ProbeResult

    meta = json.loads(str(data["meta"]))

    def value(described: dict[str, Any]) -> Any:
        if "array" in described:
            return data[described["array"]]
        if "arrays" in described:
            return [data[name] for name in described["arrays"]]
        return described["value"]

    return ProbeResult(
        evidence=[
            Evidence(**{name: value(d) for name, d in found.items()}) for found in meta["evidence"]
        ],
        references_of_class=meta["references_of_class"],
        references_of_others=meta["references_of_others"],
        class_accuracy=meta["class_accuracy"],
        read_by_model=bool(meta.get("read_by_model", False)),
    )
