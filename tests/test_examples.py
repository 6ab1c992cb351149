"""The shipped example project on the shipped demo models, end to end."""

from __future__ import annotations

import json

import pytest

from pytest_actaudit.cli import main as cli_main


@pytest.fixture
def demo_project(pytester: pytest.Pytester) -> pytest.Pytester:
    assert cli_main(["demo", str(pytester.path)]) == 0
    return pytester


def test_demo_command_writes_the_project_and_refuses_to_overwrite(tmp_path, capsys):
    assert cli_main(["demo", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"pytest.ini", "conftest.py", "test_shapes.py"}
    assert cli_main(["demo", str(tmp_path)]) == 2
    assert "exists; choose an empty folder" in capsys.readouterr().err


def test_without_the_flag_the_audits_are_skipped(demo_project):
    demo_project.runpytest_inprocess().assert_outcomes(passed=1, skipped=8)


def test_clean_model_passes_and_the_shortcut_is_caught(demo_project):
    result = demo_project.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8, xfailed=1)
    report = demo_project.path / "actaudit-report"
    audits = json.loads((report / "results.json").read_text())["audits"]
    assert len(audits) == 8
    for audit in audits:
        assert len(audit["images"]) == 3 and all((report / p).is_file() for p in audit["images"])
        caught = audit["model"].endswith("shortcut.keras") and audit["label"] == "triangle"
        assert audit["status"] == ("failed" if caught else "passed"), audit["label"]
        assert min(audit["probabilities"]) >= 0.9
        shortcut = next(c for c in audit["checks"] if c["name"] == "shortcut")
        if caught:
            assert min(shortcut["values"]) >= 0.9 and not shortcut["passed"]
            assert audit["probe"]["class_accuracy"] == 0.0 and audit["probe"]["examples"]
        else:
            assert max(shortcut["values"]) <= 0.1
