"""Image regions for ``assert_focus``: parsed from short strings or given as masks.

``border:N``   pixels within N px of any edge (``border:0.1``: a tenth of the shorter side)
``corners:N``  the four N × N corner squares (``corners:0.2``: a fifth of the shorter side)
``box:x0,y0,x1,y1``  a rectangle, x1/y1 exclusive; all four in [0, 1] with a dot
               (e.g. ``box:0,0,0.5,0.5``) are fractions of the width/height, else pixels
A numpy bool array H × W is used as is. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

KINDS = ("border:N", "corners:N", "box:x0,y0,x1,y1", "a bool mask H×W")


def _pixels(text: str, spec: str, side: int) -> int:
    """Whole pixels, or with a dot a fraction (0, 0.5] of ``side`` (at least 1 px): one
    setting then serves models of any size."""
    if "." in text:
        try:
            fraction = float(text)
        except ValueError:
            fraction = -1.0
        if not 0.0 < fraction <= 0.5:
            raise ValueError(
                f"region {spec!r}: {text!r} is neither whole pixels nor a fraction in (0, 0.5] "
                "of the image's shorter side"
            )
        return max(1, round(fraction * side))
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"region {spec!r}: {text!r} is not a whole number of pixels") from None
    if value <= 0:
        raise ValueError(f"region {spec!r}: size must be positive, got {value}")
    return value


def validate_region(spec: str) -> None:
    """Check a region's syntax before any model is known (sizes are checked against the
    model's input when it is)."""
    region_mask(spec, 1 << 20, 1 << 20, syntax_only=True)


def region_mask(
    spec: str | NDArray[Any], height: int, width: int, *, syntax_only: bool = False
) -> NDArray[np.bool_]:
    """Boolean H × W mask of a region spec; errors name the spec and the valid forms."""
    if isinstance(spec, np.ndarray):
        if spec.shape != (height, width):
            raise ValueError(f"region mask has shape {spec.shape}, expected {(height, width)}")
        return spec.astype(bool)
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"unknown region {spec!r}; use one of: {', '.join(KINDS)}")
    kind, _, args = spec.partition(":")
    kind = kind.strip().lower()
    if syntax_only:
        height = width = 1 << 20
    mask = np.zeros((1, 1) if syntax_only else (height, width), bool)
    side = min(height, width)
    if kind == "border":
        n = _pixels(args.strip(), spec, side)
        mask[:n, :] = mask[-n:, :] = mask[:, :n] = mask[:, -n:] = True
        return mask
    if kind == "corners":
        n = _pixels(args.strip(), spec, side)
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
