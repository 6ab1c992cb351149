"""The report: ``results.json`` (the single source of truth) and ``index.html``
rendered from it. Takes plain records; never touches pytest objects."""

from .render import render_html
from .writer import rerender, write_report

__all__ = ["render_html", "rerender", "write_report"]
