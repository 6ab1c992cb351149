"""Artifacts written as text, for the ini (zero-code audits): one suspect per line,
``KIND key=value ...``, and a patch read from an image file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .artifact import Artifact
from .lettering import text
from .shapes import band, cast, frame, patch, square


def patch_file(file: str, x: int, y: int, *, opacity: float = 1.0) -> Artifact:
    """:func:`patch` with the pixels of an image file (PNG with or without alpha, JPEG),
    its path relative to the folder pytest runs in."""
    import cv2

    path = Path(file)
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if pixels is None:
        raise ValueError(
            f"file {file!r} is not a readable image (looked for {path.resolve()}; paths are "
            "relative to the folder pytest runs in)"
        )
    if pixels.dtype != np.uint8:
        pixels = cv2.convertScaleAbs(pixels, alpha=255.0 / max(1, int(pixels.max())))
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    elif pixels.shape[-1] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    else:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    made = patch(pixels, x, y, opacity=opacity)
    return Artifact(
        made.description.replace("patch", f"patch {path.name}", 1), made.apply, made.control
    )


# For the ini (zero-code audits): one suspect per line, ``KIND key=value ...``.
WRITTEN: dict[str, Callable[..., Artifact]] = {
    "square": square,
    "text": text,
    "band": band,
    "frame": frame,
    "cast": cast,
    "patch": patch_file,
}
_WHOLE = {"x", "y", "size", "width", "thickness", "face"}
_TRIPLES = {"gain", "offset"}


def _value(key: str, raw: str) -> int | float | str | tuple[int, ...] | tuple[float, ...]:
    if key in _WHOLE:
        return int(raw)
    if key in ("scale", "opacity"):
        return float(raw)
    if key == "colour":
        parts = [int(v) for v in raw.split(",")]
        return parts[0] if len(parts) == 1 else tuple(parts)
    if key in _TRIPLES:
        return tuple(float(v) for v in raw.split(","))
    return raw


def parse(line: str) -> Artifact:
    """One suspect as written in the ini, e.g. ``square x=5 y=50 size=6
    colour=255,140,0`` or ``text words="(c) ACME" x=4 y=10 opacity=0.8``; the keys are the
    constructor's arguments. Errors name the line and what is wrong."""
    import inspect
    import shlex

    try:
        kind, *pairs = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"suspect {line!r}: {exc}") from None
    make = WRITTEN.get(kind)
    if make is None:
        raise ValueError(
            f"suspect {line!r}: unknown kind {kind!r}; write one of {sorted(WRITTEN)} "
            "(your own function: use assert_ignores in a test)"
        )
    parameters = inspect.signature(make).parameters
    names = list(parameters)
    given: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in parameters:
            raise ValueError(
                f"suspect {line!r}: {pair!r} is not one of {kind}'s key=value settings "
                f"({', '.join(names)})"
            )
        try:
            given[key] = _value(key, raw)
        except ValueError:
            raise ValueError(f"suspect {line!r}: {key}={raw!r} is not a valid value") from None
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in given
    ]
    if missing:
        raise ValueError(f"suspect {line!r}: {kind} needs {', '.join(missing)}")
    try:
        return make(**given)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"suspect {line!r}: {exc}") from None


def parse_lines(text: str) -> tuple[Artifact, ...]:
    """The ini value's suspects, one per line (blank lines and ``#`` comments skipped),
    each made by :func:`parse` (once, when pytest starts: a logo file is read once)."""
    return tuple(
        parse(stripped)
        for raw in str(text).splitlines()
        if (stripped := raw.strip()) and not stripped.startswith("#")
    )
