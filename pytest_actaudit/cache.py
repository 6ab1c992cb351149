"""Content-addressed cache of optimized images.

Key: sha256 of the model's content hash, the engine settings, the input spec, the
steps, the target, the seed and this package's version. Value: one ``.npz`` per
(target, seed) holding everything an ``ImageResult`` holds. Writes are atomic
(temp file + rename), so concurrent xdist workers never see half a file; an entry
that cannot be read is deleted and recomputed, never trusted. numpy only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

FIELDS = ("image", "logit", "probability", "curve", "failed_step", "attribution", "features")


class ResultCache:
    def __init__(self, folder: str | Path, context: dict[str, Any]) -> None:
        from . import __version__

        self.folder = Path(folder)
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
        self.hits += 1
        return entry

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
