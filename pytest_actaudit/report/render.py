"""Renders ``index.html`` from the results document with jinja2 (autoescape on)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .images import data_uri


def templates_dir() -> Path:
    """``report_templates/`` inside the installed package, else at the checkout's top."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "report_templates", here.parent / "report_templates"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError(f"report_templates/ not found beside {here}; reinstall pytest-actaudit")


def svg_curve(curves: Sequence[Sequence[float]], width: int = 240, height: int = 64) -> Markup:
    """Inline SVG: one polyline per seed, the target score over the steps."""
    finite = [v for c in curves for v in c if math.isfinite(v)]
    if not finite:
        return Markup("")
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    lines = []
    for k, curve in enumerate(curves):
        n = max(len(curve) - 1, 1)
        points = " ".join(
            f"{i / n * (width - 2) + 1:.1f},{height - 1 - (v - low) / span * (height - 2):.1f}"
            for i, v in enumerate(curve)
            if math.isfinite(v)
        )
        lines.append(f'<polyline class="seed{k % 6}" points="{points}"/>')
    return Markup(
        f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="target logit over steps, from {low:.3g} to {high:.3g}">'
        f"{''.join(lines)}</svg>"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


def render_html(results: Mapping[str, Any], folder: Path, *, self_contained: bool = False) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(["html", "htm", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def img_src(path: str) -> str:
        if not self_contained:
            return path
        return data_uri((folder / path).read_bytes())

    env.filters.update(svg_curve=svg_curve, fmt=_fmt, img_src=img_src)
    audits = sorted(
        results["audits"], key=lambda a: (a["status"] == "passed", a["model"], a["index"])
    )
    counts = {
        "total": len(audits),
        "failed": sum(1 for a in audits if a["status"] != "passed"),
    }
    counts["passed"] = counts["total"] - counts["failed"]
    return env.get_template("index.html").render(
        results=results, run=results["run"], audits=audits, counts=counts
    )
