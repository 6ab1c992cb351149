"""Image regions for ``assert_focus``: parsed from short strings or given as masks.

``border:N``   pixels within N px of any edge
``corners:N``  the four N × N corner squares
``box:x0,y0,x1,y1``  a rectangle, x1/y1 exclusive; all four in [0, 1] with a dot
               (e.g. ``box:0,0,0.5,0.5``) are fractions of the width/height, else pixels
A numpy bool array H × W is used as is. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

KINDS = ("border:N", "corners:N", "box:x0,y0,x1,y1", "a bool mask H×W")


def _pixels(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"region {spec!r}: {text!r} is not a whole number of pixels") from None
    if value <= 0:
        raise ValueError(f"region {spec!r}: size must be positive, got {value}")
    return value


def region_mask(spec: str | NDArray[Any], height: int, width: int) -> NDArray[np.bool_]:
    """Boolean H × W mask of a region spec; errors name the spec and the valid forms."""
    if isinstance(spec, np.ndarray):
        if spec.shape != (height, width):
            raise ValueError(f"region mask has shape {spec.shape}, expected {(height, width)}")
        return spec.astype(bool)
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"unknown region {spec!r}; use one of: {', '.join(KINDS)}")
    kind, _, args = spec.partition(":")
    kind = kind.strip().lower()
    mask = np.zeros((height, width), bool)
    if kind == "border":
        n = _pixels(args.strip(), spec)
        mask[:n, :] = mask[-n:, :] = mask[:, :n] = mask[:, -n:] = True
        return mask
    if kind == "corners":
        n = _pixels(args.strip(), spec)
        for rows in (slice(0, n), slice(height - n, height)):
            for cols in (slice(0, n), slice(width - n, width)):
                mask[rows, cols] = True
        return mask
    if kind == "box":
        parts = [p.strip() for p in args.split(",")]
        if len(parts) != 4:
            raise ValueError(f"region {spec!r}: box needs four numbers x0,y0,x1,y1")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"region {spec!r}: box coordinates must be numbers") from None
        if all(0.0 <= v <= 1.0 for v in values) and any("." in p for p in parts):
            x0, x1 = (round(v * width) for v in (values[0], values[2]))
            y0, y1 = (round(v * height) for v in (values[1], values[3]))
        else:
            x0, y0, x1, y1 = (int(v) for v in values)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(
                f"region {spec!r}: box must satisfy 0 <= x0 < x1 <= {width} and "
                f"0 <= y0 < y1 <= {height}"
            )
        mask[y0:y1, x0:x1] = True
        return mask
    raise ValueError(f"unknown region kind {kind!r} in {spec!r}; use one of: {', '.join(KINDS)}")
