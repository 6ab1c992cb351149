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

from .errors import ActauditWarning

FIELDS = ("image", "logit", "probability", "curve", "failed_step", "attribution", "features")


class ResultCache:
    def __init__(
        self,
        folder: str | Path,
        context: dict[str, Any],
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        from . import __version__

        self.folder = Path(folder)
        self.image_shape = image_shape  # (H, W, C) every entry's image must have
        self.prefix = json.dumps({**context, "version": __version__}, sort_keys=True, default=str)
        self.hits = 0
        self.misses = 0

    def _path(self, target: int, seed: int, steps: int) -> Path:
        key = f"{self.prefix}|{target}|{seed}|{steps}".encode()
        digest = hashlib.sha256(key).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npz"

    def get(self, target: int, seed: int, steps: int) -> dict[str, Any] | None:
        path = self._path(target, seed, steps)
        try:
            with np.load(path, allow_pickle=False) as data:
                entry = {name: data[name] for name in FIELDS}
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception:  # truncated or corrupt: recompute, never trust
            path.unlink(missing_ok=True)
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
        path = self._path(target, seed, steps)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            arrays: dict[str, Any] = {name: np.asarray(entry[name]) for name in FIELDS}
            np.savez(buffer, **arrays)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer.getvalue())
            os.replace(tmp, path)
        except OSError:
            pass  # a cache that cannot be written only costs time
