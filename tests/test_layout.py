"""The package stays in rooms a reader can hold in their head: no module above 400 lines,
no function above 80, no class above 300 (docs/architecture.md says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_actaudit"
MAX_MODULE, MAX_FUNCTION, MAX_CLASS = 400, 80, 300


def sizes() -> list[tuple[str, str, int, int]]:
    """(module, what, lines, limit) for every module, function and class of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE.parent))
        text = path.read_text(encoding="utf-8")
        found.append((name, "module", len(text.splitlines()), MAX_MODULE))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                assert node.end_lineno is not None
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                found.append((name, node.name, node.end_lineno - start + 1, limit))
    return found


def test_the_package_is_found() -> None:
    assert len([s for s in sizes() if s[1] == "module"]) > 30


@pytest.mark.parametrize("kind", ["module", "function or class"])
def test_no_room_is_too_big(kind: str) -> None:
    over = [
        f"{module}: {what} has {lines} lines (limit {limit})"
        for module, what, lines, limit in sizes()
        if lines > limit and (what == "module") == (kind == "module")
    ]
    assert not over, "\n".join(over)


def test_the_limits_can_fail(tmp_path: Path) -> None:
    """The measure counts a long function (decorators included), not only long files."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    tree = ast.parse(f"@staticmethod\ndef f():\n{body}\n")
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef) and node.end_lineno is not None
    assert node.end_lineno - node.decorator_list[0].lineno + 1 > MAX_FUNCTION
