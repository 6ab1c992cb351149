"""The package stays in rooms a reader can hold in their head: no module above 400 lines,
no function above 80, no class above 300 (docs/architecture.md says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
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


# The commit before the engine's split (issue 35): its images are the ones to keep.
BEFORE_THE_MOVE = "823588d"
IMAGES_SCRIPT = """
import sys
import numpy as np
import pytest_actaudit
from pytest_actaudit import demo

assert pytest_actaudit.__file__.startswith(sys.argv[2]), pytest_actaudit.__file__
model = pytest_actaudit.load_model(demo.model_path("clean"))
settings = dict(parametrization="fourier", device="cpu", learning_rate=0.05)
try:  # the stop rule off: the default since (docs/steps-to-quality.md) turns it on
    audits = pytest_actaudit.maximize(model, "all", seeds=2, steps=16, stop_change=0.0, **settings)
except TypeError:  # the code before the stop rule: no such setting
    audits = pytest_actaudit.maximize(model, "all", seeds=2, steps=16, **settings)
np.savez(sys.argv[1], **{a.label: np.asarray(a.images) for a in audits})
"""


def _demo_images(code_root: Path, out: Path) -> dict[str, np.ndarray]:
    """The clean demo model's images from the package under ``code_root``, in a process
    of its own (the same environment for the code before and after the move)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(code_root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", IMAGES_SCRIPT, str(out), str(code_root)],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as saved:
        return {label: saved[label] for label in saved.files}


def test_the_demo_images_are_those_of_the_code_before_the_move(tmp_path: Path) -> None:
    """Issue 35 moved code without changing a pixel: the clean demo model's images (the
    Fourier parametrization at learning rate 0.05 with the stop rule off, the settings of
    that commit, named explicitly) from the code of the commit before the move equal
    today's, bit for bit."""
    import subprocess

    repo = PACKAGE.parent
    found = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{BEFORE_THE_MOVE}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        pytest.skip(f"commit {BEFORE_THE_MOVE} (before the move) is not in this clone's history")
    before = tmp_path / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", BEFORE_THE_MOVE, "pytest_actaudit"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    old = _demo_images(before, tmp_path / "before.npz")
    new = _demo_images(repo, tmp_path / "after.npz")
    assert sorted(old) == sorted(new) and len(new) == 4
    for label, images in old.items():
        assert images.dtype == new[label].dtype == np.uint8, label
        np.testing.assert_array_equal(new[label], images, err_msg=label)


def test_the_wheel_ships_every_tracked_example_file_and_nothing_a_run_wrote() -> None:
    """``actaudit demo`` copies the examples from the wheel: each tracked file is listed in
    pyproject's force-include (a whole-folder include shipped the photos that
    examples/imagenet writes on first use)."""
    import subprocess

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = PACKAGE.parent
    tracked = subprocess.run(
        ["git", "ls-files", "examples"], cwd=root, capture_output=True, text=True
    )
    if tracked.returncode != 0 or not tracked.stdout.strip():
        pytest.skip("not a git checkout: the tracked examples are unknown")
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    included = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    listed = {source for source in included if source.startswith("examples")}
    assert listed == set(tracked.stdout.split())
    assert all(
        included[f] == "pytest_actaudit/demo/example/" + f.removeprefix("examples/") for f in listed
    )


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md's tree matches the package: every module of the flat folders
    is named in it, and every sub-package by its folder."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = page.split("```text", 1)[1].split("```", 1)[0]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) > 2 or parts[0] in ("report", "demo"):  # named by their folder
            name = parts[0] + "/" if len(parts) > 1 else path.name
            name = (parts[1] + "/") if len(parts) > 2 else name
        else:
            name = path.name
        if name != "__init__.py" and name not in tree:
            missing.append("/".join(parts))
    assert not missing, f"docs/architecture.md's tree does not name: {missing}"
