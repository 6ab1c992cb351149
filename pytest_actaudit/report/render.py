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


def svg_curve(
    curves: Sequence[Sequence[float]],
    stops: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    width: int = 240,
    height: int = 64,
) -> Markup:
    """Inline SVG: one polyline per seed, the target score over the steps. A seed that
    the stop rule ended early (``stops``: each seed's stop step) is drawn to its stop
    and marked there with a dot (its title names the seed, from ``seeds``); the x axis
    spans every step, so where it stopped shows."""
    finite = [v for c in curves for v in c if math.isfinite(v)]
    if not finite:
        return Markup("")
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    lines = []
    ended = []
    for k, curve in enumerate(curves):
        n = max(len(curve) - 1, 1)
        stop = int(stops[k]) if stops and k < len(stops) else len(curve)

        def xy(i: int, v: float, n: int = n) -> tuple[float, float]:
            return i / n * (width - 2) + 1, height - 1 - (v - low) / span * (height - 2)

        points = " ".join(
            "{:.1f},{:.1f}".format(*xy(i, v))
            for i, v in enumerate(curve)
            if math.isfinite(v) and i <= stop
        )
        lines.append(f'<polyline class="seed{k % 6}" points="{points}"/>')
        if stop < len(curve) and math.isfinite(curve[stop]):
            x, y = xy(stop, curve[stop])
            lines.append(
                f'<circle class="stop seed{k % 6}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
                f"<title>seed {seeds[k] if seeds and k < len(seeds) else k} stopped at step "
                f"{stop}</title></circle>"
            )
            ended.append(stop)
    label = f"target logit over steps, from {low:.3g} to {high:.3g}"
    if ended:
        label += f"; {len(ended)} of {len(curves)} seeds stopped early"
    return Markup(
        f'<svg class="curve" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{label}">'
        f"{''.join(lines)}</svg>"
    )


def stops_text(stops: Sequence[int] | None, steps: int) -> str:
    """ "stopped at 80/96/128 of 128" when the stop rule ended a seed early, else ""."""
    if not stops or all(int(s) >= steps for s in stops):
        return ""
    return f"stopped at {'/'.join(str(int(s)) for s in stops)} of {steps}"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.4g}"
    return str(value)


PAGE_SIZE = 100  # audit cards per page once a report has more (the grid lists them all)


def page_name(number: int) -> str:
    """File of the ``number``-th page of cards (1 is ``index.html``)."""
    return "index.html" if number == 1 else f"cards-{number}.html"


def render_html(results: Mapping[str, Any], folder: Path, *, self_contained: bool = False) -> str:
    """``index.html`` (with every card when the report is small enough for one page)."""
    return render_pages(results, folder, self_contained=self_contained)["index.html"]


def render_pages(
    results: Mapping[str, Any], folder: Path, *, self_contained: bool = False
) -> dict[str, str]:
    """Every page of the report, by file name. Up to ``PAGE_SIZE`` audits (or
    self-contained) it is one page; beyond, ``index.html`` holds the header, the grid of
    every class (searchable, each tile linking to its card) and the first page of cards,
    failed first, and ``cards-N.html`` the others: a 1000-class report opens fast."""
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

    env.filters.update(svg_curve=svg_curve, stops_text=stops_text, fmt=_fmt, img_src=img_src)
    audits = sorted(
        results["audits"],
        key=lambda a: (
            {"failed": 0, "skipped": 1}.get(a["status"], 2),
            a["model"],
            a["index"],
            a.get("nodeid", ""),
        ),
    )
    counts = {
        "total": len(audits),
        "failed": sum(1 for a in audits if a["status"] == "failed"),
        "skipped": sum(1 for a in audits if a["status"] == "skipped"),
    }
    counts["passed"] = counts["total"] - counts["failed"] - counts["skipped"]
    size = max(1, len(audits)) if self_contained or len(audits) <= PAGE_SIZE else PAGE_SIZE
    chunks = [audits[i : i + size] for i in range(0, len(audits), size)] or [[]]
    pages: list[dict[str, Any]] = []
    for n, chunk in enumerate(chunks, start=1):
        first = (n - 1) * size + 1
        pages.append(
            {"number": n, "name": page_name(n), "first": first, "last": first + len(chunk) - 1}
        )
    card_page: dict[str, str] = {}  # audit id -> the page holding its card ("" = this one)
    for page, chunk in zip(pages, chunks, strict=True):
        for audit in chunk:
            card_page[str(audit.get("id"))] = "" if page["number"] == 1 else page["name"]
    template = env.get_template("index.html")
    return {
        page["name"]: template.render(
            results=results,
            run=results["run"],
            audits=audits,
            cards=chunk,
            counts=counts,
            pages=pages,
            page=page,
            card_page=card_page,
        )
        for page, chunk in zip(pages, chunks, strict=True)
    }
