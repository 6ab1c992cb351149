"""The docs cannot drift from the code: README.md and docs/*.md build, link and run.

- the site builds with ``mkdocs build --strict`` and no warning;
- every relative link reaches a file (and its ``#anchor`` a heading);
- README.md stays at most 10 KB, and its options table lists every option;
- every docs/*.md page stays at most 15 KB (history lives in git, not in the page);
- every fenced code block is run or checked by its language, or explicitly marked with
  ``<!-- illustrative: why -->`` on the line before its fence (``text`` blocks are output).
  An unmarked block of any other language fails.

The Python, ini and command blocks run against a model repository in miniature: the demo's
clean model as ``models/shapes.keras`` (``labels.txt`` beside it), trusted references in
``data/references``, and the report that the test blocks' run writes. ``docs/development.md``
describes the conventions for writers.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the toml blocks are then only shown
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT = 10 * 1024
PAGE_LIMIT = 15 * 1024  # a docs page is a reference to read, not a log of rounds

ILLUSTRATIVE = re.compile(r"^\s*<!--\s*illustrative\b(?P<why>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
COMMAND_LANGS = {"bash", "sh", "shell"}
PYTHON_TEST = re.compile(r"^(?:def test_\w*\(|@pytest\.fixture|# conftest\.py\b)", re.M)


# ----------------------------------------------------------------------------- parsing
@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the reason after "<!-- illustrative:", when the block has one

    @property
    def illustrative(self) -> bool:
        return bool(self.marker and self.marker.strip(" :"))

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def slug(self) -> str:
        return re.sub(r"\W+", "_", self.id).strip("_").lower()

    @property
    def kind(self) -> str:
        """What the test does with it: run, check or leave it, by language."""
        if self.illustrative:
            return "illustrative"
        if self.lang == "text":
            return "text"
        if self.lang == "python":
            return "python-test" if PYTHON_TEST.search(self.code) else "python-script"
        if self.lang in ("ini", "toml"):
            return "config"
        if self.lang in COMMAND_LANGS:
            return "commands"
        if self.lang == "yaml":
            return "yaml"
        return "unknown"


def blocks_of(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, start = len(match["indent"]), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        assert i < len(lines), f"{page.relative_to(ROOT)}:{start + 1}: unclosed code fence"
        marker = ILLUSTRATIVE.match(lines[start - 1]) if start > 0 else None
        why = marker["why"] if marker else None
        found.append(Block(page, start + 1, match["lang"], "\n".join(body) + "\n", why))
        i += 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def by_kind(kind: str) -> list[Block]:
    return [block for block in BLOCKS if block.kind == kind]


def without_fences(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    return re.sub(r"^\s*```.*?^\s*```\s*$", "", text, flags=re.M | re.S)


def prose(page: Path) -> str:
    """The page without its code blocks and inline code (links there are not links)."""
    return re.sub(r"`[^`\n]*`", "", without_fences(page))


def github_slug(heading: str) -> str:
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:  # markdown's toc.slugify, as mkdocs uses it
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path, slug=github_slug) -> set[str]:
    """The heading ids of a page; a repeated heading gets a suffix (GitHub: -1,
    mkdocs: _1), so links to one only agree on the first."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", without_fences(page), re.M):
        base = slug(heading)
        seen[base] = seen.get(base, 0) + 1
    return set(seen)


# --------------------------------------------------------------- subprocess environment
def clean_env(**extra: str) -> dict[str, str]:
    """This checkout first on the path; no settings of an outer pytest or xdist run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["NO_MKDOCS_2_WARNING"] = "1"
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, timeout: float = 300, **env: str):
    return subprocess.run(
        args, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


@dataclass
class PytestHelp:
    options: set[str] = field(default_factory=set)
    ini_keys: set[str] = field(default_factory=set)


@pytest.fixture(scope="session")
def pytest_help(tmp_path_factory) -> PytestHelp:
    """Every command-line option and ini key pytest knows with this plugin, from
    ``pytest --help`` (the plugin's own registration, not a list kept here)."""
    result = run([sys.executable, "-m", "pytest", "--help"], tmp_path_factory.mktemp("help"))
    assert result.returncode == 0, result.stderr
    help_ = PytestHelp(
        options=set(re.findall(r"^\s+(--[\w-]+)", result.stdout, re.M)),
        ini_keys=set(re.findall(r"^  ([A-Za-z_][\w-]*) \([\w ]+\):", result.stdout, re.M)),
    )
    assert "--actaudit-model" in help_.options and "actaudit_model" in help_.ini_keys
    return help_


# ------------------------------------------------------------------- the site and links
def test_docs_build_strict_without_warnings(tmp_path):
    if not (_importable("mkdocs") and _importable("material")):
        if os.environ.get("CI"):
            pytest.fail("mkdocs is not installed; pip install -e '.[test]' installs it")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    result = run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
            "--config-file",
            str(ROOT / "mkdocs.yml"),
        ],
        ROOT,
    )
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if re.match(r"^\s*(WARNING|ERROR)\b", line)]
    assert result.returncode == 0 and not warnings, output
    site = tmp_path / "site"
    for page in DOCS.glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built (is it in mkdocs.yml's nav?)"
        assert "fonts.googleapis.com" not in built.read_text(encoding="utf-8"), (
            f"{built} loads Google Fonts (mkdocs.yml: theme.font: false)"
        )


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_relative_links_resolve():
    problems = []
    for page in PAGES:
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose(page)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: link {target!r}"
            if not dest.exists():
                problems.append(f"{where}: {path} does not exist")
            elif anchor:
                if dest.suffix != ".md":
                    problems.append(f"{where}: an anchor into a file that is not Markdown")
                    continue
                slugs = anchors(dest)
                if DOCS in dest.parents:  # the site too: both slug rules must agree
                    slugs &= anchors(dest, mkdocs_slug)
                if anchor not in slugs:
                    problems.append(f"{where}: no heading #{anchor} (has {sorted(slugs)})")
    assert not problems, "\n".join(problems)


def test_readme_is_at_most_10_kb():
    size = README.stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move details to docs/"


def pages_over(pages: list[Path], limit: int) -> dict[str, int]:
    """The pages above ``limit`` bytes, with their sizes."""
    sizes = {page.name: page.stat().st_size for page in pages}
    return {name: size for name, size in sizes.items() if size > limit}


def test_every_docs_page_is_at_most_15_kb():
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "no docs/*.md page found"
    over = pages_over(pages, PAGE_LIMIT)
    assert not over, (
        f"docs pages above {PAGE_LIMIT} bytes: {over}; split them by topic, keep one current "
        "table per question, and leave earlier rounds to git"
    )


def test_the_page_limit_catches_a_bigger_page(tmp_path):
    at_limit, above = tmp_path / "at.md", tmp_path / "above.md"
    at_limit.write_bytes(b"x" * PAGE_LIMIT)
    above.write_bytes(b"x" * (PAGE_LIMIT + 1))
    assert pages_over([at_limit, above], PAGE_LIMIT) == {"above.md": PAGE_LIMIT + 1}


def test_readme_options_table_lists_every_option(pytest_help):
    """The options table is the contract: every option and ini key is in it."""
    text = README.read_text(encoding="utf-8")
    listed = set(re.findall(r"`(--actaudit[\w-]*)", text))
    assert listed >= {o for o in pytest_help.options if o.startswith("--actaudit")}
    assert set(re.findall(r"`(actaudit_\w+)`", text)) >= {
        k for k in pytest_help.ini_keys if k.startswith("actaudit_")
    }
    unknown = {o for o in listed if o not in pytest_help.options}
    assert not unknown, f"README names options the plugin does not have: {unknown}"


def test_readme_test_command_is_the_one_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "python -m pytest" in ci
    assert any(
        "python -m pytest" in block.code.splitlines()
        for block in BLOCKS
        if block.page == README and block.kind == "commands"
    )


# ------------------------------------------------------------------------- code blocks
def test_every_code_block_is_run_or_marked():
    no_reason = [
        f"{b.id}: say why the block is illustrative: <!-- illustrative: why -->"
        for b in BLOCKS
        if b.marker is not None and not b.illustrative
    ]
    assert not no_reason, "\n".join(no_reason)
    unknown = [
        f"{b.id}: ```{b.lang or '(no language)'} is neither run nor marked; use python, ini, "
        "toml, bash, yaml or text, or put <!-- illustrative: why --> on the line before"
        for b in by_kind("unknown")
    ]
    assert not unknown, "\n".join(unknown)
    counts: dict[str, int] = {}
    for block in BLOCKS:
        counts[block.kind] = counts.get(block.kind, 0) + 1
    print("code blocks by kind:", json.dumps(counts, sort_keys=True))


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory) -> Path:
    """A model repository in miniature: models/shapes.keras (+ labels.txt), trusted
    references per class in data/references, a pytest.ini naming them."""
    from pytest_actaudit import demo
    from pytest_actaudit.demo import shapes

    repo = tmp_path_factory.mktemp("model-repo")
    (repo / "models").mkdir()
    shutil.copyfile(demo.model_path("clean"), repo / "models" / "shapes.keras")
    shutil.copyfile(demo.models_dir() / demo.LABELS_FILE, repo / "models" / "labels.txt")
    shapes.write_references(repo / "data" / "references", n_per_class=20, seed=5)
    (repo / "pytest.ini").write_text(
        "[pytest]\n"
        "actaudit_model = models/shapes.keras\n"
        "actaudit_references = data/references\n"
        "actaudit_seeds = 3\n"
        "actaudit_steps = 96\n"
    )
    return repo


GENERIC_TEST = """
def test_the_fixtures_of_this_conftest(actaudit, actaudit_references):
    images, labels = actaudit_references
    assert images.dtype == "uint8" and images.ndim == 4 and len(images) == len(labels)
    actaudit.maximize(0).assert_activation(min_probability=0.5)
"""


RUNNER = r"""
import json, os, sys, time, traceback
jobs, results_file, ready = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
results, started = {}, time.time()
for job in jobs:
    if job["needs_report"]:  # wait for the test blocks' run to write its report
        deadline = time.time() + 900
        while not os.path.exists(ready) and time.time() < deadline:
            time.sleep(0.5)
    os.chdir(job["cwd"])
    sys.path.insert(0, job["cwd"])
    print(f"--- {job['id']} at {time.time() - started:.1f} s", flush=True)
    try:
        exec(compile(job["code"], job["id"], "exec"), {"__name__": "__main__"})
        results[job["id"]] = None
    except BaseException:
        results[job["id"]] = traceback.format_exc()
    sys.path.remove(job["cwd"])
with open(results_file, "w") as out:
    json.dump(results, out)
"""


@dataclass
class ScriptRun:
    process: subprocess.Popen[str]
    folder: Path
    ready: Path  # written when the test blocks' run has finished


@pytest.fixture(scope="session")
def script_run(model_repo, tmp_path_factory) -> Iterator[ScriptRun]:
    """The script blocks, one after the other in one Python process (one TensorFlow
    start), each in a fresh folder beside models/, data/ and actaudit-report/. Started at
    once, so that it runs beside the test blocks' run; blocks that read the report go last
    and wait for it."""
    folder = tmp_path_factory.mktemp("scripts")
    scripts = sorted(by_kind("python-script"), key=lambda b: "actaudit-report" in b.code)
    jobs = []
    for block in scripts:
        cwd = folder / block.slug
        cwd.mkdir()
        for name in ("models", "data", "actaudit-report"):
            (cwd / name).symlink_to(model_repo / name)
        jobs.append(
            {
                "id": block.id,
                "code": block.code,
                "cwd": str(cwd),
                "needs_report": "actaudit-report" in block.code,
            }
        )
    (folder / "jobs.json").write_text(json.dumps(jobs))
    (folder / "runner.py").write_text(RUNNER)
    ready = folder / "report-ready"
    with open(folder / "output.txt", "w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                str(folder / "runner.py"),
                str(folder / "jobs.json"),
                str(folder / "results.json"),
                str(ready),
            ],
            cwd=folder,
            env=clean_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield ScriptRun(process, folder, ready)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def test_blocks_run(model_repo, script_run) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Every test-module and conftest block, each in its own folder, in one
    ``pytest --actaudit`` run (one TensorFlow start, one batch per model); it writes the
    report and baselines that the script and command blocks then use."""
    for block in by_kind("python-test"):
        folder = model_repo / "blocks" / block.slug
        folder.mkdir(parents=True)
        if block.code.startswith("# conftest.py"):
            (folder / "conftest.py").write_text(block.code)
            (folder / f"test_{block.slug}.py").write_text(GENERIC_TEST)
        else:
            (folder / f"test_{block.slug}.py").write_text(block.code)
    junit = model_repo / "junit.xml"
    try:
        result = run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--actaudit",
                "blocks",
                "-q",
                "-rfE",
                "--import-mode=importlib",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit}",
                "--durations=8",
                "--actaudit-generate-baseline",
                "baselines",
            ],
            model_repo,
            timeout=600,
        )
    finally:
        script_run.ready.touch()
    return result, junit


def test_python_test_blocks_pass(test_blocks_run):
    result, junit = test_blocks_run
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed: dict[str, int] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            folder = case.get("classname", "").split(".")[1:2]
            passed[folder[0] if folder else ""] = passed.get(folder[0] if folder else "", 0) + 1
    ran_nothing = [b.id for b in by_kind("python-test") if not passed.get(b.slug)]
    assert not ran_nothing, f"no test passed from {ran_nothing}:\n{result.stdout[-4000:]}"


def test_python_script_blocks_run(script_run, test_blocks_run):
    try:
        code = script_run.process.wait(timeout=900)
    except subprocess.TimeoutExpired:
        code = None
    output = (script_run.folder / "output.txt").read_text()[-4000:]
    assert code == 0, f"the script blocks' process ended with {code}:\n{output}"
    results = json.loads((script_run.folder / "results.json").read_text())
    failed = {key: tb for key, tb in results.items() if tb}
    assert not failed, "\n\n".join(f"{key}:\n{tb}" for key, tb in failed.items())
    assert set(results) == {b.id for b in by_kind("python-script")}


def config_sections(block: Block) -> dict[str, str]:
    """The pytest settings of an ini or toml block, as pytest would read them."""
    if block.lang == "toml":
        if tomllib is None:
            pytest.skip("tomllib needs Python 3.11")
        data = tomllib.loads(block.code)
        section = data["tool"]["pytest"]["ini_options"]
        return {key: str(value) for key, value in section.items()}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block.code)
    assert parser.sections() == ["pytest"], f"{block.id}: one [pytest] section expected"
    return dict(parser["pytest"])


@pytest.mark.parametrize("block", by_kind("config"), ids=lambda b: b.id)
def test_config_blocks_use_real_keys_and_values(block, pytest_help, pytester):
    keys = config_sections(block)
    unknown = sorted(set(keys) - pytest_help.ini_keys)
    assert not unknown, f"{block.id}: not ini keys of pytest or the plugin: {unknown}"
    # then pytest itself reads it: unknown keys and bad values stop it before collection
    name = "pyproject.toml" if block.lang == "toml" else "pytest.ini"
    (pytester.path / name).write_text(block.code)
    result = pytester.runpytest_inprocess(
        "--collect-only", "-q", "--strict-config", "-p", "no:cacheprovider"
    )
    assert result.ret in (0, 5), f"{block.id}:\n" + "\n".join(result.outlines + result.errlines)


# -------------------------------------------------------------------- command blocks
def commands_of(text: str) -> Iterator[list[str]]:
    """Command lines of a shell block: continuations joined, comments dropped, split
    at ``&&`` and ``;``."""
    for line in text.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        command: list[str] = []
        for token in tokens:
            if token in ("&&", ";"):
                if command:
                    yield command
                command = []
            else:
                command.append(token)
        if command:
            yield command


def extras_of_pyproject() -> set[str]:
    if tomllib is None:
        text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        section = text.split("[project.optional-dependencies]")[1].split("\n[")[0]
        return set(re.findall(r"^([\w-]+)\s*=", section, re.M))
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(data["project"]["optional-dependencies"])


class Shell:
    """Runs or checks one block's commands in a sandbox that looks like a model
    repository; a path that is not there but is in this checkout (examples/,
    benchmarks/..., tests/...) means the checkout's."""

    def __init__(self, pytester: pytest.Pytester, help_: PytestHelp, where: str) -> None:
        self.pytester = pytester
        self.cwd = pytester.path
        self.help = help_
        self.where = where
        self.ran = 0

    def path(self, arg: str) -> str:
        if arg.startswith("-") or (self.cwd / arg).exists() or not (ROOT / arg).exists():
            return arg
        return str(ROOT / arg)

    def fail(self, command: list[str], why: str) -> None:
        pytest.fail(f"{self.where}: `{shlex.join(command)}`: {why}", pytrace=False)

    def execute(self, command: list[str]) -> None:
        env = {}
        while command and re.match(r"^[A-Z_][A-Z0-9_]*=", command[0]):
            key, _, value = command.pop(0).partition("=")
            env[key] = value
        program, args = command[0], command[1:]
        if program in ("python", "python3"):
            if args[:1] == ["-m"] and len(args) > 1:
                return self.module(command, args[1], args[2:], env)
            return self.script(command, args)
        if program == "pytest":
            return self.pytest(command, args, env)
        if program == "actaudit":
            return self.actaudit(command, args, env)
        if program == "pip":
            return self.pip(command, args)
        if program == "cd":
            target = (self.cwd / args[0]).resolve()
            if not target.is_dir():
                self.fail(command, f"no folder {args[0]} here")
            self.cwd = target
            return None
        if program == "mkdocs":
            if args[:1] not in (["build"], ["serve"]) or not (ROOT / "mkdocs.yml").is_file():
                self.fail(command, "mkdocs build/serve with mkdocs.yml expected")
            return None
        if program in ("git", "apt-get", "cp"):  # system tools: not run here
            return None
        if program.startswith(".ci/"):
            if not os.access(ROOT / program, os.X_OK):
                self.fail(command, f"{program} is not an executable of this repository")
            return None
        self.fail(command, "unknown program: run it in tests/test_docs.py or mark the block")
        return None

    def module(self, command, module, args, env):
        if module == "pytest":
            return self.pytest(command, args, env)
        if module == "pip":
            return self.pip(command, args)
        if module == "mkdocs":
            return self.execute(["mkdocs", *args])
        import importlib.util

        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            self.fail(command, f"no module {module}")
        if args == ["--help"]:
            self.check_run(command, [sys.executable, "-m", module, "--help"], env)
        else:
            self.check_flags(command, Path(spec.origin), args)

    def script(self, command, args):
        path = Path(self.path(args[0]))
        path = path if path.is_absolute() else self.cwd / path
        if not path.is_file():
            self.fail(command, f"no script {args[0]}")
        self.check_flags(command, path, args[1:])

    def check_flags(self, command, source: Path, args):
        """Each --flag must be one the script declares (found in its source)."""
        text = source.read_text(encoding="utf-8")
        for arg in args:
            flag = arg.split("=")[0]
            if flag.startswith("--") and f'"{flag}"' not in text:
                self.fail(command, f"{source.name} has no option {flag}")

    def pytest(self, command, args, env):
        flags = {a.split("=")[0] for a in args if a.startswith("--actaudit")}
        missing = sorted(flags - self.help.options)
        if missing:
            self.fail(command, f"pytest has no option(s) {missing}")
        own = [a for a in args if a.split("::")[0].startswith("tests/")]
        if own:  # this project's own tests: their paths are checked, not collected
            for path in own:
                if not (ROOT / path.split("::")[0]).exists():
                    self.fail(command, f"no {path} in this repository")
            return
        # Collection validates every option and value (the plugin's own checks). In this
        # process: a fresh interpreter per command would cost a second each.
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(self.cwd)
            for key, value in env.items():
                mp.setenv(key, value)
            result = self.pytester.runpytest_inprocess(
                *[self.path(a) for a in args],
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:benchmark",  # it warns under -n that it cannot time anything
            )
        self.ran += 1
        if result.ret not in (0, 5):
            output = "\n".join(result.outlines[-30:] + result.errlines[-30:])
            self.fail(command, f"exit {int(result.ret)}\n{output}")

    def actaudit(self, command, args, env):
        from pytest_actaudit.cli import main

        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(self.cwd)
            for key, value in env.items():
                mp.setenv(key, value)
            code = main([self.path(a) for a in args])
        self.ran += 1
        if code != 0:
            self.fail(command, f"exit {code}")

    def pip(self, command, args):
        if args[:1] != ["install"]:
            self.fail(command, "only pip install is expected")
        extras = extras_of_pyproject()
        for spec in args[1:]:
            match = re.match(r"^(\.|pytest-actaudit)(?:\[([\w,-]+)\])?$", spec)
            if spec.startswith("-"):
                continue
            if match and match[2]:
                unknown = set(match[2].split(",")) - extras
                if unknown:
                    self.fail(command, f"pyproject.toml has no extra(s) {sorted(unknown)}")

    def check_run(self, command, argv, env, ok=(0,)):
        result = run(argv, self.cwd, timeout=300, **env)
        self.ran += 1
        if result.returncode not in ok:
            self.fail(
                command,
                f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            )


@pytest.fixture
def sandbox(model_repo, pytester) -> pytest.Pytester:
    """A model repository: the demo project, models/, data/, and the report and
    baselines that the test blocks' run wrote."""
    from pytest_actaudit.cli import write_demo

    write_demo(pytester.path)
    for name in ("models", "data"):
        (pytester.path / name).symlink_to(model_repo / name)
    for name in ("actaudit-report", "baselines"):
        if (model_repo / name).is_dir():
            shutil.copytree(model_repo / name, pytester.path / name)
    return pytester


def run_commands(block: Block, text: str, sandbox: pytest.Pytester, help_: PytestHelp) -> Shell:
    shell = Shell(sandbox, help_, block.id)
    for command in commands_of(text):
        shell.execute(command)
    return shell


@pytest.mark.parametrize("block", by_kind("commands"), ids=lambda b: b.id)
def test_command_blocks(block, test_blocks_run, sandbox, pytest_help):
    run_commands(block, block.code, sandbox, pytest_help)


def yaml_runs(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from yaml_runs(value)
    elif isinstance(node, list):
        for item in node:
            yield from yaml_runs(item)


@pytest.mark.parametrize("block", by_kind("yaml"), ids=lambda b: b.id)
def test_yaml_blocks_run_steps(block, test_blocks_run, sandbox, pytest_help):
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(block.code)
    runs = list(yaml_runs(steps))
    assert runs, f"{block.id}: a YAML block without run: steps"
    run_commands(block, "\n".join(runs), sandbox, pytest_help)
