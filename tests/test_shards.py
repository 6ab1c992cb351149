"""Beyond one machine: shards, ``actaudit merge``, the CI summary, the shared cache, one
GPU per xdist worker, and the example CI workflow's commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pytest_actaudit.errors import ActauditError
from pytest_actaudit.plugin.shards import Shard
from pytest_actaudit.plugin.xdist import worker_device
from pytest_actaudit.report.merge import merge_reports
from pytest_actaudit.settings import parse_shard

ROOT = Path(__file__).resolve().parent.parent

TESTS = """
import pytest

@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_colour(actaudit, colour):
    audit = actaudit.maximize(colour)
    audit.assert_activation(min_probability=0.5, min_logit=1e6 if colour == "blue" else None)

def test_body(actaudit):
    actaudit.maximize("green").assert_consistent(min_similarity=0.0)

def test_every_class_in_the_body(actaudit):
    for colour in ["red", "green", "blue"]:
        actaudit.maximize(colour).assert_activation(min_probability=0.5)

def test_unit(actaudit):
    actaudit.maximize(layer="predictions", filter=1)

def test_plain():
    pass
"""


@pytest.mark.parametrize("value", ["1/2", " 2/2 ", "3/3", "1/1"])
def test_shard_values(value):
    assert parse_shard(value) == value.strip()


@pytest.mark.parametrize("value", ["0/2", "3/2", "x", "1/0", "1/2/3", "-1/2", "1/"])
def test_bad_shard_values_name_the_fix(value):
    with pytest.raises(ValueError, match=r"K/N with 1 <= K <= N.*for example"):
        parse_shard(value)


@pytest.mark.parametrize("value", ["0/2", "3/2", "x"])
def test_bad_shard_option_is_a_usage_error(pytester, value):
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--actaudit-shard must be K/N*got '{value}'*"])


def test_split_is_a_partition_balanced_and_the_same_every_time():
    for count in (1, 2, 3, 7):
        for model in ("models/a.keras", "/ci/checkout/models/a.keras", "b.h5"):
            owners = [Shard(1, count).owner(model, i) for i in range(1000)]
            sizes = [owners.count(k) for k in range(1, count + 1)]
            assert sum(sizes) == 1000 and max(sizes) - min(sizes) <= 1
            for k in range(1, count + 1):  # exactly one shard keeps each class
                kept = [Shard(k, count).keeps(model, i) for i in range(1000)]
                assert kept == [o == k for o in owners]
    # the file's name decides, not where the checkout is
    assert Shard(1, 5).owner("/a/m.keras", 3) == Shard(1, 5).owner("/b/m.keras", 3)


def test_one_gpu_per_xdist_worker():
    assert [worker_device("auto", f"gw{i}", gpus=2) for i in range(5)] == [
        "gpu:0",
        "gpu:1",
        "gpu:0",
        "gpu:1",
        "gpu:0",
    ]
    assert worker_device("auto", "gw3", gpus=4) == "gpu:3"
    assert worker_device("auto", "gw3", gpus=0) == "auto"  # no GPU: the CPU, as before
    assert worker_device("auto", None, gpus=4) == "auto"  # no xdist: the first GPU
    assert worker_device("cpu", "gw1", gpus=4) == "cpu"  # an explicit device wins
    assert worker_device("gpu:2", "gw1", gpus=4) == "gpu:2"


@pytest.fixture
def project(pytester: pytest.Pytester, color_model_file: Path) -> pytest.Pytester:
    pytester.makeini(
        f"""
        [pytest]
        actaudit_model = {color_model_file}
        actaudit_seeds = 2
        actaudit_steps = 16
        actaudit_parametrization = pixel
        actaudit_min_probability = 0.5
        """
    )
    pytester.makepyfile(test_audits=TESTS)
    return pytester


def _audits(folder: Path) -> dict[tuple[str, str], dict]:
    results = json.loads((folder / "results.json").read_text())
    return {(a["nodeid"], a["label"]): a for a in results["audits"]}


def _image(folder: Path, path: str) -> np.ndarray:
    return cv2.imread(str(folder / path), cv2.IMREAD_UNCHANGED).astype(np.int16)


def test_two_shards_and_merge_give_the_one_run(project, monkeypatch):
    """The same audits, checks, outcomes and images, pixel for pixel (issue 34: a shard
    batches other classes than the whole run), as one run over every class; the
    summary names what failed."""
    path = project.path
    whole = project.runpytest_inprocess(
        "--actaudit", "--actaudit-report", "whole", "--actaudit-no-cache"
    )
    # 3 zero-code + test_colour × 3 + 3 body tests + plain; 11 audits
    whole.assert_outcomes(passed=9, failed=1)
    outcomes = []
    for k in (1, 2):
        result = project.runpytest_inprocess(
            "--actaudit",
            "--actaudit-shard",
            f"{k}/2",
            "--actaudit-report",
            f"shard{k}",
            "-rs",
            "--actaudit-no-cache",
        )
        outcomes.append(result.parseoutcomes())
        result.stdout.fnmatch_lines([f"*actaudit: shard {k}/2: * deselected*actaudit merge*"])
    # every audit made once: zero-code and test_colour items go with their class, the
    # tests that ask in their body (one class, every class, a unit) whole by node id;
    # test_plain runs in both
    # (pytest counts the collected items it deselects; the 3 zero-code items join after
    # its count, and the shard's line counts them)
    assert sum(o.get("deselected", 0) for o in outcomes) == 3 + 3
    assert sum(o.get("passed", 0) + o.get("failed", 0) for o in outcomes) == 6 + 3 + 2
    assert sum(o.get("skipped", 0) for o in outcomes) == 0

    summary_file = path / "summary.md"
    step_summary = path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    from pytest_actaudit.cli import main

    code = main(
        [
            "merge",
            str(path / "merged"),
            str(path / "shard1"),
            str(path / "shard2"),
            "--summary",
            str(summary_file),
        ]
    )
    assert code == 1  # an audit failed: the merge job fails, as pytest would
    one, merged = _audits(path / "whole"), _audits(path / "merged")
    assert one.keys() == merged.keys()
    for key, a in one.items():
        b = merged[key]
        assert (a["status"], a["test_outcome"]) == (b["status"], b["test_outcome"]), key
        assert [(c["name"], c["passed"]) for c in a["checks"]] == [
            (c["name"], c["passed"]) for c in b["checks"]
        ]
        for pa, pb in zip(a["images"], b["images"], strict=True):
            diff = np.abs(_image(path / "whole", pa) - _image(path / "merged", pb))
            assert diff.max() == 0, (key, diff.max())
    run = json.loads((path / "merged" / "results.json").read_text())["run"]
    assert [s["shard"] for s in run["shards"]] == ["1/2", "2/2"] and not run["missing_shards"]
    html = (path / "merged" / "index.html").read_text()
    assert "shards" in html and "1/2" in html
    text = summary_file.read_text()
    assert text.startswith("## actaudit: 1 of 11 audits failed over 2 shards")
    row = next(line for line in text.splitlines() if "| blue |" in line)
    assert "activation" in row and "≥ 1e+06" in row and "test_colour[blue]" in row
    assert step_summary.read_text().strip() == text.strip()
    # the pytest run writes the same kind of summary itself
    project.runpytest_inprocess(
        "--actaudit", "--actaudit-report", "again", "--actaudit-summary", "run.md"
    )
    assert "| blue |" in (path / "run.md").read_text()


def test_shards_give_the_whole_runs_images_pixel_for_pixel(pytester, tmp_path):
    """Issue 34, on a model where batch composition used to show (up to 98 grey levels
    on a held-out CNN): an untrained CNN with batch norm and a hidden dense layer,
    audited whole and in two shards, merged: every image is the whole run's."""
    from tests.test_engine import untrained_cnn

    folder = tmp_path / "model"
    folder.mkdir()
    names = ["a", "b", "c", "d", "e"]
    untrained_cnn(classes=len(names)).save(folder / "cnn.keras")
    (folder / "labels.txt").write_text("\n".join(names) + "\n")
    pytester.makeini(
        f"""
        [pytest]
        actaudit_model = {folder / "cnn.keras"}
        actaudit_seeds = 2
        actaudit_steps = 24
        actaudit_min_probability = 0.0
        """
    )
    pytester.makepyfile(
        test_cnn="""
        import pytest

        @pytest.mark.parametrize("name", ["a", "b", "c", "d", "e"])
        def test_name(actaudit, name):
            actaudit.maximize(name).assert_activation(min_probability=0.0)
        """
    )
    base = ["--actaudit", "--actaudit-no-cache", "-p", "no:cacheprovider"]
    pytester.runpytest_inprocess(*base, "--actaudit-report", "whole").assert_outcomes(passed=10)
    for k in (1, 2):
        pytester.runpytest_inprocess(
            *base, "--actaudit-shard", f"{k}/2", "--actaudit-report", f"shard{k}"
        )
    path = pytester.path
    merge_reports(path / "merged", [path / "shard1", path / "shard2"])
    one, merged = _audits(path / "whole"), _audits(path / "merged")
    assert one.keys() == merged.keys() and len(one) == 10
    for key, a in one.items():
        for pa, pb in zip(a["images"], merged[key]["images"], strict=True):
            diff = np.abs(_image(path / "whole", pa) - _image(path / "merged", pb))
            assert diff.max() == 0, (key, diff.max())


def _fake_report(folder: Path, **run) -> Path:
    model = {
        "name": "m.keras",
        "hash": "a" * 64,
        "engine": {"learning_rate": 0.05},
        "input_shape": [8, 8, 3],
        "input_range": [0, 255],
        "output_kind": "softmax",
        "device": "CPU",
    }
    model.update(run.pop("model", {}))
    folder.mkdir(parents=True)
    (folder / "images").mkdir()
    (folder / "images" / "x.png").write_bytes(b"png")
    audit = {
        "nodeid": f"t.py::test[{folder.name}]",
        "label": folder.name,
        "index": 0,
        "model": "m.keras",
        "images": ["images/x.png"],
        "checks": [],
        "passed": True,
        "test_outcome": "passed",
        "status": "passed",
        "seeds": [0],
        "steps": 4,
        "logits": [1.0],
        "probabilities": [0.9],
        "curves": [[0.0]],
        "image_shape": [8, 8, 3],
    }
    results = {
        "schema": 1,
        "run": {"seeds": 1, "steps": 4, "models": [model], **run},
        "audits": [audit],
    }
    (folder / "results.json").write_text(json.dumps(results))
    return folder


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"steps": 8}, "steps is 4 in .* but 8 in"),
        ({"model": {"hash": "b" * 64}}, r"model file \(sha256\) of m.keras differs"),
        ({"model": {"engine": {"learning_rate": 0.1}}}, "model engine of m.keras differs"),
        ({"shard": "1/2"}, "shard 1/2 twice"),
    ],
)
def test_merge_refuses_runs_that_are_not_one_run(tmp_path, second, message):
    first = _fake_report(tmp_path / "a", shard="1/2")
    other = _fake_report(tmp_path / "b", **second)
    out = tmp_path / "out"
    with pytest.raises(ActauditError, match=message):
        merge_reports(out, [first, other])
    assert not out.exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_merge_errors_on_the_command_line(tmp_path, capsys):
    from pytest_actaudit.cli import main

    assert main(["merge", str(tmp_path / "out"), str(tmp_path / "nope")]) == 2
    assert "nope/results.json not found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{")
    assert main(["merge", str(tmp_path / "out"), str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    keep = tmp_path / "keep"  # an OUT that holds something else is left alone
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    assert main(["merge", str(keep), str(_fake_report(tmp_path / "a"))]) == 2
    assert (
        keep / "mine.txt"
    ).read_text() == "x" and "not a report folder" in capsys.readouterr().err


def test_merge_names_a_missing_shard_and_replaces_an_earlier_report(tmp_path, capsys):
    from pytest_actaudit.cli import main

    out = tmp_path / "out"
    first = _fake_report(tmp_path / "a", shard="1/3")
    second = _fake_report(tmp_path / "b", shard="3/3")
    assert main(["merge", str(out), str(first)]) == 0
    assert main(["merge", str(out), str(first), str(second)]) == 0
    assert "no report of shard(s) 2/3" in capsys.readouterr().err
    run = json.loads((out / "results.json").read_text())["run"]
    assert (
        run["missing_shards"] == ["2/3"]
        and len(json.loads((out / "results.json").read_text())["audits"]) == 2
    )
    assert "No report of shard 2/3" in (out / "index.html").read_text()


def test_cache_dir_is_shared_and_keyed_by_settings(project):
    cache = project.path / "shared-cache"
    args = (
        "--actaudit",
        "--actaudit-cache-dir",
        str(cache),
        "-p",
        "no:cacheprovider",
        "-k",
        "colour",
    )
    for expected_hits in (0, 6):
        project.runpytest_inprocess(*args)
        run = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
        assert run["cache_hits"] == expected_hits
    project.runpytest_inprocess(*args, "--actaudit-steps", "17")  # other settings: no reuse
    run = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert run["cache_hits"] == 0 and run["optimized_images"] == 6


def test_example_workflow_is_valid_and_its_commands_run(tmp_path):
    """examples/ci/actaudit.yml parses, and its pytest and actaudit commands, run here in
    the demo project for each shard of its matrix, give one merged report."""
    import yaml

    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "actaudit.yml").read_text())
    audit, report = workflow["jobs"]["audit"], workflow["jobs"]["report"]
    shards = audit["strategy"]["matrix"]["shard"]
    assert int(audit["env"]["SHARDS"]) == len(shards)
    assert report["needs"] == "audit" and report["if"] == "always()"
    run_steps = [s["run"] for s in audit["steps"] if "run" in s and "pip install" not in s["run"]]
    merge_steps = [s["run"] for s in report["steps"] if "run" in s and "pip" not in s["run"]]
    assert len(run_steps) == 1 and len(merge_steps) == 1

    repo = tmp_path / "repo"
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "actaudit"), "demo", str(repo)], check=True)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SHARDS": str(len(shards)),
        # the workflow's commands as they are; a short optimization for the suite's time
        "PYTEST_ADDOPTS": "--actaudit-steps 24 --actaudit-seeds 2 -p no:cacheprovider",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "HOME": str(tmp_path),
    }
    for shard in shards:
        command = run_steps[0].replace("${{ matrix.shard }}", str(shard))
        done = subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True
        )
        assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
        assert f"shard {shard}/{len(shards)}" in done.stdout
        artifact = repo / "shards" / f"actaudit-shard-{shard}"  # what download-artifact makes
        artifact.parent.mkdir(exist_ok=True)
        shutil.move(str(repo / f"actaudit-shard-{shard}"), artifact)
    done = subprocess.run(
        ["bash", "-c", merge_steps[0]], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode in (0, 1), done.stderr
    results = json.loads((repo / "actaudit-report" / "results.json").read_text())
    # 2 models × 4 classes, each in one shard, the named tag's two triangle audits and the
    # trigger example's circle and triangle
    assert len(results["audits"]) == 12
    assert (repo / "actaudit-summary.md").read_text().startswith("## actaudit:")
    # the merge fails the job as pytest would have: on a failed test, not on an expected
    # failure (the shortcut triangle's cards are failed, their tests xfailed)
    from pytest_actaudit.report.summary import gate_failed

    assert done.returncode == (1 if any(gate_failed(a) for a in results["audits"]) else 0)


def test_a_shard_left_with_nothing_is_not_a_failure(pytester, color_model_file):
    """3 classes over 5 shards: shards without a class exit 0 and say why."""
    pytester.makeini(
        f"""
        [pytest]
        actaudit_model = {color_model_file}
        actaudit_seeds = 1
        actaudit_steps = 4
        actaudit_min_probability = 0.0
        """
    )
    codes, optimized = [], []
    for k in range(1, 6):
        result = pytester.runpytest_inprocess(
            "--actaudit",
            "--actaudit-shard",
            f"{k}/5",
            "--actaudit-report",
            f"s{k}",
            "--actaudit-no-cache",
        )
        codes.append(result.ret)
        if result.parseoutcomes().get("passed") is None:
            result.stdout.fnmatch_lines(["*nothing left for this shard*"])
        # every shard writes its report, empty or not: the merge expects all of them
        run = json.loads((pytester.path / f"s{k}" / "results.json").read_text())["run"]
        optimized.append(run["optimized_images"])
    assert codes == [pytest.ExitCode.OK] * 5
    # each class optimized once, by its own shard, in that shard's one batch
    assert sum(optimized) == 3 and max(optimized) == 1
    index, merged = merge_reports(
        pytester.path / "all", [pytester.path / f"s{k}" for k in range(1, 6)]
    )
    assert len(merged["audits"]) == 3 and not merged["run"]["missing_shards"]


def test_merge_joins_what_only_placement_or_expectation_tells_apart(tmp_path, capsys):
    """Engine settings that only place the work (device, batch, lanes) do not refuse a
    merge; an expected failure (xfail) does not fail it, as in pytest; a merged report
    merges again with its shards flattened; inputs inside OUT and a file OUT are refused."""
    from pytest_actaudit.cli import main

    first = _fake_report(tmp_path / "a", shard="1/2")
    second = _fake_report(
        tmp_path / "b",
        shard="2/2",
        model={"engine": {"learning_rate": 0.05, "device": "gpu:1", "max_batch": 64}},
    )
    results = json.loads((second / "results.json").read_text())
    results["audits"][0].update(test_outcome="xfailed", status="failed", passed=False)
    (second / "results.json").write_text(json.dumps(results))
    assert main(["merge", str(tmp_path / "out"), str(first), str(second)]) == 0
    summary = tmp_path / "s.md"
    assert (
        main(["merge", str(tmp_path / "out"), str(first), str(second), "--summary", str(summary)])
        == 0
    )
    text = summary.read_text()
    assert text.startswith(
        "## actaudit: no audit failed, of 2 over 2 shards (1 expected failure(s))"
    )
    assert "1 expected failure(s) (xfail), not counted" in text
    again = merge_reports(tmp_path / "again", [tmp_path / "out"])[1]
    assert [s["shard"] for s in again["run"]["shards"]] == ["1/2", "2/2"]
    assert not again["run"]["missing_shards"]
    with pytest.raises(ActauditError, match="inside OUT"):
        merge_reports(tmp_path, [first])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ActauditError, match="is a file"):
        merge_reports(tmp_path / "file", [first])
