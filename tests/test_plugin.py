"""End to end through pytest itself (pytester)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_actaudit.report.images import encode_png
from tests.conftest import saved_in_a_fresh_process

AUDIT_TEST = """
import pytest

@pytest.mark.parametrize("colour", ["red", "green", "blue"])
def test_colour(actaudit, colour):
    audit = actaudit.maximize(colour)
    audit.assert_activation(min_probability={threshold})
    audit.assert_consistent(min_similarity=0.5)

def test_plain():
    assert True
"""


@pytest.fixture
def project(pytester: pytest.Pytester, color_model_file: Path) -> pytest.Pytester:
    # The model comes from a conftest override, so no zero-code items are collected.
    pytester.makeini(
        """
        [pytest]
        actaudit_seeds = 2
        actaudit_steps = 20
        actaudit_parametrization = pixel
        """
    )
    pytester.makeconftest(
        f"""
        import pytest, pytest_actaudit

        @pytest.fixture(scope="session")
        def actaudit_model():
            return pytest_actaudit.load_model({str(color_model_file)!r})
        """
    )
    return pytester


def test_without_flag_audits_are_skipped_with_the_reason(project):
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    result = project.runpytest_inprocess("-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["*pass --actaudit to run activation audits*"])
    assert not (project.path / "actaudit-report").exists()


def test_with_flag_audits_run_and_the_report_holds_every_seed(project):
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    result = project.runpytest_inprocess("--actaudit")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*actaudit: report with 3 audits (0 failed) written to*"])
    report = project.path / "actaudit-report"
    results = json.loads((report / "results.json").read_text())
    assert results["schema"] == 1
    assert [a["label"] for a in results["audits"]] == ["red", "green", "blue"]
    for audit in results["audits"]:
        assert len(audit["images"]) == 2 and audit["status"] == "passed"
        assert audit["nodeid"].startswith("test_with_flag")
        for path in audit["images"]:
            assert (report / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert {c["name"] for c in audit["checks"]} == {"activation", "consistency"}
    html = (report / "index.html").read_text()
    assert html.count("<article") == 3 and "http://" not in html and "https://" not in html
    assert results["run"]["models"][0]["hash"] and results["run"]["models"][0]["device"] == "CPU"


def test_verbose_run_splits_the_wall_time(project):
    """-v and the report header say where the session's time went."""
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    result = project.runpytest_inprocess("--actaudit", "-v")
    result.assert_outcomes(passed=4)
    line = next(x for x in result.outlines if x.startswith("actaudit: time: "))
    for part in (
        "s wall",
        "TensorFlow",
        "model load",
        "tracing",
        "s (6 images,",
        "checks",
        "shortcut probe",
        "report",
    ):
        assert part in line, (part, line)
    run = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert run["trace_seconds"] > 0 and run["optimize_seconds"] > run["trace_seconds"]
    assert run["check_seconds"] > 0 and run["report_seconds"] > 0
    assert "tracing" in run["time_split"]
    assert run["time_split"] in (project.path / "actaudit-report" / "index.html").read_text()


def test_failing_threshold_shows_a_readable_message(project):
    project.makepyfile(AUDIT_TEST.format(threshold=1.01))
    result = project.runpytest_inprocess("--actaudit", "-k", "red")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "*AuditFailure: class 'red' (index 0): activation probability failed for 2 of 2 seeds; "
            "required >= 1.01; seed 0: 1 ✗, seed 1: 1 ✗*"
        ]
    )
    results = json.loads((project.path / "actaudit-report" / "results.json").read_text())
    (audit,) = results["audits"]
    assert audit["status"] == "failed" and audit["checks"][0]["passed"] is False


def test_marker_overrides_seeds_and_cli_overrides_ini(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.actaudit(seeds=4)
        def test_marker(actaudit):
            assert actaudit.maximize("red").images.shape[0] == 4

        def test_cli(actaudit):
            assert actaudit.maximize("red").images.shape[0] == 3
            assert actaudit.maximize("red", seeds=1).images.shape[0] == 1
        """
    )
    project.runpytest_inprocess("--actaudit", "--actaudit-seeds", "3").assert_outcomes(passed=2)


def test_help_lists_the_option_group(pytester: pytest.Pytester):
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "activation audits (class maximization):",
            "*--actaudit *enable activation audits*",
            "*--actaudit-seeds=N*",
            "*actaudit_min_probability*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--actaudit-seeds", "0"], "*--actaudit-seeds must be a positive integer, got 0*"),
        (["--actaudit-steps", "many"], "*--actaudit-steps must be a positive integer, got 'many'*"),
        (["--actaudit-device", "tpu"], "*device must be one of auto, cpu, gpu, gpu:N*'tpu'*"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args, message):
    result = pytester.runpytest_inprocess("--actaudit", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_missing_model_file_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(actaudit): pass")
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-model", "models/nope.keras")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*model file not found: 'models/nope.keras'*"])


def test_no_model_configured_fails_with_the_fix(pytester: pytest.Pytester):
    pytester.makepyfile("def test_a(actaudit): pass")
    result = pytester.runpytest_inprocess("--actaudit")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no model configured: pass --actaudit-model PATH*"])


def test_unknown_class_is_a_test_failure_not_a_crash(project):
    project.makepyfile("def test_a(actaudit): actaudit.maximize('purple')")
    result = project.runpytest_inprocess("--actaudit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown class 'purple'; valid names: 'red', 'green', 'blue'*"])


def test_conftest_can_override_the_model(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        import pytest
        from tests.conftest import build_color_model

        @pytest.fixture(scope="session")
        def actaudit_model():
            return build_color_model(8, 8)
        """
    )
    pytester.makepyfile(
        """
        def test_a(actaudit):
            audit = actaudit.maximize(2, seeds=1, steps=10)
            assert audit.images.shape == (1, 8, 8, 3)
            assert audit.label == "2"
        """
    )
    pytester.syspathinsert(Path(__file__).parent.parent)
    pytester.runpytest_inprocess("--actaudit").assert_outcomes(passed=1)


def test_importing_the_plugin_does_not_import_tensorflow():
    code = "import sys, pytest_actaudit, pytest_actaudit.plugin; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_public_names_are_listed_once_and_all_import():
    import pytest_actaudit

    names = pytest_actaudit.__all__
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for name in names:
        assert getattr(pytest_actaudit, name) is not None, name


def test_unwritable_report_folder_falls_back_to_a_temporary_one(project):
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    blocker = project.path / "blocked"
    blocker.write_text("a file where the report folder should be")
    result = project.runpytest_inprocess(
        "--actaudit", "-k", "red", "--actaudit-report", "blocked/r"
    )
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(
        ["*could not write the report to 'blocked/r'*wrote it to *actaudit-report-* instead*"]
    )
    line = next(x for x in result.outlines if "written to" in x)
    assert Path(line.rsplit("written to ", 1)[1]).is_file()


BASELINE_TEST = """
def test_baseline(actaudit):
    actaudit.maximize("green", steps={steps}).assert_matches_baseline(min_similarity=0.95)
"""


def test_baseline_generate_then_compare_then_drift(project):
    project.makepyfile(BASELINE_TEST.format(steps=20))
    result = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*baseline folder not found: 'base'*--actaudit-generate-baseline base*"]
    )

    project.runpytest_inprocess(
        "--actaudit", "--actaudit-generate-baseline", "base"
    ).assert_outcomes(passed=1)
    stored = list((project.path / "base").rglob("*.png"))
    assert len(stored) == 2  # two seeds
    project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base").assert_outcomes(
        passed=1
    )

    project.makepyfile(BASELINE_TEST.format(steps=1))  # a different model behaviour: drift
    result = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*class 'green' (index 1): baseline ssim failed*required >= 0.95*"]
    )
    results = json.loads((project.path / "actaudit-report" / "results.json").read_text())
    (audit,) = results["audits"]
    assert len(audit["baseline"]) == 2 and audit["baseline"][0]["diff"].endswith(".png")
    # the failure says the baseline was made otherwise, and how to remake it
    result.stdout.fnmatch_lines(["*made with other settings*steps 20 → 1*generate-baseline base*"])


def test_a_baseline_of_other_engine_settings_is_named_as_such(project):
    """A baseline written before baselines recorded their engine settings (then learning
    rate 0.05, every step run) whose images differ fails with what changed and the command
    that remakes it, not as unexplained drift; one of this run's settings fails as drift."""
    project.makepyfile(BASELINE_TEST.format(steps=20))
    project.runpytest_inprocess(
        "--actaudit", "--actaudit-generate-baseline", "base"
    ).assert_outcomes(passed=1)
    (meta_path,) = (project.path / "base").rglob("meta.json")
    meta = json.loads(meta_path.read_text())
    engine = meta["engine"]
    assert (engine["learning_rate"], engine["stop_change"], engine["stop_every"]) == (0.1, 0.2, 8)
    for png in (project.path / "base").rglob("*.png"):  # other images than this run's
        png.write_bytes(encode_png(np.zeros((16, 12, 3), np.uint8)))

    drift = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base")
    drift.assert_outcomes(failed=1)
    assert "made with other settings" not in drift.stdout.str()

    del meta["engine"]  # as an earlier version wrote it
    meta_path.write_text(json.dumps(meta))
    result = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*predates recorded engine settings*learning_rate 0.05 → 0.1, stop_change 0.0 → 0.2;"
            "*--actaudit-generate-baseline base*"
        ]
    )


def test_a_baseline_image_of_another_size_fails_its_seed_with_a_note(project):
    project.makepyfile(BASELINE_TEST.format(steps=5))
    project.runpytest_inprocess(
        "--actaudit", "--actaudit-generate-baseline", "base"
    ).assert_outcomes(passed=1)
    (seed0,) = (project.path / "base").rglob("seed0.png")
    seed0.write_bytes(encode_png(np.zeros((8, 8, 3), np.uint8)))  # another model's size
    result = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "base")
    result.assert_outcomes(failed=1)  # not an internal error: the report is written
    result.stdout.fnmatch_lines(["*seed 0: 0 ✗*baseline image of seed 0 is 8×8, not 16×12*"])
    assert (project.path / "actaudit-report" / "index.html").is_file()


def test_missing_baseline_names_the_command(project, tmp_path):
    project.makepyfile(BASELINE_TEST.format(steps=5))
    (project.path / "empty").mkdir()
    result = project.runpytest_inprocess("--actaudit", "--actaudit-baseline", "empty")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no baseline for class 'green'*--actaudit-generate-baseline empty*"]
    )


ZERO_CODE_INI = """
[pytest]
actaudit_model = {model}
actaudit_seeds = 2
actaudit_steps = 20
actaudit_parametrization = pixel
actaudit_min_probability = {threshold}
actaudit_min_consistency = 0.5
actaudit_focus_exclude = border:2
actaudit_max_focus_share = 0.9
"""


def test_zero_code_audits_one_item_per_class(pytester, color_model_file):
    pytester.makeini(ZERO_CODE_INI.format(model=color_model_file, threshold=0.9))
    result = pytester.runpytest_inprocess("--actaudit", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"actaudit::{color_model_file}::red PASSED*"])
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    checks = {c["name"] for a in results["audits"] for c in a["checks"]}
    assert checks == {"activation", "consistency", "focus"}


def test_zero_code_failure_lists_every_failed_check(pytester, color_model_file):
    pytester.makeini(ZERO_CODE_INI.format(model=color_model_file, threshold=1.0))
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-classes", "blue")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*class 'blue' (index 2): activation probability failed*"])


def test_zero_code_without_flag_collects_nothing(pytester, color_model_file):
    pytester.makeini(ZERO_CODE_INI.format(model=color_model_file, threshold=0.9))
    pytester.makepyfile("def test_a(): pass")
    pytester.runpytest_inprocess().assert_outcomes(passed=1)


def test_junit_xml_gets_each_check(pytester, color_model_file):
    pytester.makeini(ZERO_CODE_INI.format(model=color_model_file, threshold=0.9))
    pytester.runpytest_inprocess("--actaudit", "--actaudit-classes", "red", "--junitxml=j.xml")
    xml = (pytester.path / "j.xml").read_text()
    assert 'name="actaudit red activation probability"' in xml
    assert "passed: [1, 1] &gt;= 0.9" in xml


def test_second_identical_run_is_served_from_the_cache(project):
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    project.runpytest_inprocess("--actaudit").assert_outcomes(passed=4)
    first = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert first["optimized_images"] == 6 and first["cache_hits"] == 0

    project.runpytest_inprocess("--actaudit").assert_outcomes(passed=4)
    second = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert second["optimized_images"] == 0 and second["cache_hits"] == 6

    entries = sorted((project.path / ".pytest_cache" / "d" / "actaudit").rglob("*.npz"))
    assert len(entries) == 6
    entries[0].write_bytes(b"corrupt")  # never trusted: recomputed
    project.runpytest_inprocess("--actaudit").assert_outcomes(passed=4)
    third = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert third["optimized_images"] == 1 and third["cache_hits"] == 5

    project.runpytest_inprocess("--actaudit", "--actaudit-no-cache").assert_outcomes(passed=4)
    fourth = json.loads((project.path / "actaudit-report" / "results.json").read_text())["run"]
    assert fourth["optimized_images"] == 6 and fourth["cache_hits"] == 0


def test_xdist_gives_the_serial_outcomes_and_one_merged_report(project):
    project.makepyfile(AUDIT_TEST.format(threshold=0.9))
    serial = project.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=4)
    report = project.path / "actaudit-report"
    serial_images = json.loads((report / "results.json").read_text())["audits"]

    result = project.runpytest_subprocess("--actaudit", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*actaudit: report with 3 audits (0 failed)*"])
    merged = json.loads((report / "results.json").read_text())
    assert [a["label"] for a in merged["audits"]] == ["red", "green", "blue"]
    assert [a["logits"] for a in merged["audits"]] == [a["logits"] for a in serial_images]
    assert merged["run"]["optimized_images"] == 6
    assert not (report / ".pieces").exists()
    # which worker optimized where (one GPU per worker on a GPU host; the CPU here)
    workers = merged["run"]["workers"]
    assert set(workers) <= {"gw0", "gw1"} and set(workers.values()) == {"CPU"}
    assert "gw" in (report / "index.html").read_text()


def test_fixture_maximizes_a_conv_filter(pytester):
    pytester.makeconftest(
        """
        import numpy as np, pytest, keras

        @pytest.fixture(scope="session")
        def actaudit_model():
            inputs = keras.Input((12, 12, 3))
            x = keras.layers.Conv2D(4, 3, name="block1_conv", activation="relu")(inputs)
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
        """
    )
    pytester.makepyfile(
        """
        def test_filter(actaudit):
            audit = actaudit.maximize(layer="block1_conv", filter=3, seeds=2, steps=5)
            assert audit.label == "block1_conv[3]" and audit.images.shape == (2, 12, 12, 3)
            audit.assert_consistent(min_similarity=-1.0)
        """
    )
    pytester.runpytest_inprocess("--actaudit").assert_outcomes(passed=1)
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    assert results["audits"][0]["label"] == "block1_conv[3]"
    assert results["audits"][0]["probabilities"] == [None, None]


def test_zero_code_region_beyond_the_model_is_a_usage_error(pytester, color_model_file):
    ini = ZERO_CODE_INI.format(model=color_model_file, threshold=0.9)
    pytester.makeini(ini.replace("border:2", "box:0,0,40,40"))
    result = pytester.runpytest_inprocess("--actaudit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*actaudit_focus_exclude*0 <= x0 < x1 <= 12*16×12*"])


def test_zero_code_items_use_an_overridden_references_fixture(pytester, color_model_file):
    ini = ZERO_CODE_INI.format(model=color_model_file, threshold=0.9)
    pytester.makeini(ini + "actaudit_max_flip_rate = 0.5\n")
    pytester.makeconftest(
        """
import numpy as np
import pytest

@pytest.fixture(scope="session")
def actaudit_references():
    rng = np.random.default_rng(0)
    images, labels = [], []
    for k in range(3):
        for _ in range(4):
            image = rng.integers(0, 60, (16, 12, 3)).astype(np.uint8)
            image[..., k] = 230
            images.append(image)
            labels.append(k)
    return np.stack(images), np.array(labels)
"""
    )
    result = pytester.runpytest_inprocess("--actaudit")
    result.assert_outcomes(passed=3)
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    for audit in results["audits"]:
        assert {c["name"] for c in audit["checks"]} >= {"shortcut"}
        assert audit["probe"]["references_of_class"] == 4  # the fixture's, not a folder's


def test_help_texts_say_what_is_built(pytester):
    from pytest_actaudit.plugin import MARKER_HELP

    assert "device=" not in MARKER_HELP and "seeds=, steps=, classes=" in MARKER_HELP
    result = pytester.runpytest_inprocess("--help")
    assert "planned" not in result.stdout.str()


# ----------------------------------------------- the gate never passes by checking nothing
WRITTEN_TEST = """
import pytest

@pytest.mark.parametrize("colour", ["red"])
def test_colour(actaudit, colour):
    actaudit.maximize(colour).assert_activation(min_probability=0.1)
"""


def test_a_model_in_the_ini_without_checks_adds_no_zero_code_items(pytester, color_model_file):
    """A team that sets actaudit_model to write tests does not get every class optimized
    for items that assert nothing; the terminal says why, and what will be optimized."""
    pytester.makeini(
        f"[pytest]\nactaudit_model = {color_model_file}\nactaudit_seeds = 2\n"
        "actaudit_steps = 5\nactaudit_parametrization = pixel\n"
    )
    pytester.makepyfile(WRITTEN_TEST)
    result = pytester.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "collected 1 item",
            f"actaudit: no zero-code audits of {color_model_file}: no threshold key is set*",
            "actaudit: up to 1 class planned for one batch (red): up to 2 images of 5 steps*",
            "*actaudit: report with 1 audit (0 failed) written to*",
        ]
    )
    run = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())["run"]
    assert run["optimized_images"] == 2  # red only, not every class


def test_named_classes_without_checks_are_skipped_not_passed(pytester, color_model_file):
    """Items that assert nothing do not read as passes: images in the report, outcome
    skipped with a reason that names the keys to set."""
    pytester.makeini(
        f"[pytest]\nactaudit_model = {color_model_file}\nactaudit_seeds = 2\n"
        "actaudit_steps = 5\nactaudit_parametrization = pixel\nactaudit_classes = red, blue\n"
    )
    result = pytester.runpytest_inprocess("--actaudit", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "collected 2 items",
            "actaudit: 2 zero-code audit(s) of *color.keras (checks: none: images only, items "
            "skipped)",
            "SKIPPED*no zero-code check is set*set one of actaudit_min_probability*",
        ]
    )
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    assert [(a["label"], a["test_outcome"]) for a in results["audits"]] == [
        ("red", "skipped"),
        ("blue", "skipped"),
    ]
    assert all(len(a["images"]) == 2 for a in results["audits"])


def test_zero_code_items_are_counted_as_collected_and_deselected(pytester, color_model_file):
    pytester.makeini(ZERO_CODE_INI.format(model=color_model_file, threshold=0.9))
    result = pytester.runpytest_inprocess("--actaudit", "-k", "red or blue")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "collected 3 items / 1 deselected / 2 selected",
            "actaudit: 2 zero-code audit(s) of *color.keras (checks: activation, consistency, "
            "focus)",
            "actaudit: up to 2 classes planned for one batch (red, blue): up to 4 images of 20*",
        ]
    )


def test_missing_references_error_is_printed_once(pytester, color_model_file):
    ini = ZERO_CODE_INI.format(model=color_model_file, threshold=0.1)
    pytester.makeini(ini + "actaudit_max_flip_rate = 0.5\n")
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-classes", "red")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    # once in the failure's report; the short summary repeats the line (in full under CI)
    failure = text.split("short test summary info")[0]
    assert failure.count("need reference images") == 1, text
    assert "During handling" not in text
    result.stdout.fnmatch_lines(["*actaudit: report with 1 audit (1 failed) written to*"])


NO_RESCALING = """
import keras
inputs = keras.Input((8, 8, 3))
x = keras.layers.GlobalAveragePooling2D()(inputs)
keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save({path!r})
"""


@pytest.fixture(scope="module")
def no_rescaling_file(tmp_path_factory):
    return saved_in_a_fresh_process(tmp_path_factory.mktemp("plain"), "plain.keras", NO_RESCALING)


def test_zero_code_run_header_says_the_assumed_input_range_without_tensorflow_noise(
    pytester, no_rescaling_file
):
    """A fresh process, as a user runs it: the assumption and the key that changes it are
    in the header, and TensorFlow's C++ start-up lines (cuInit on a CPU machine) are
    captured as they are in a test."""
    pytester.makeini(
        f"[pytest]\nactaudit_model = {no_rescaling_file}\nactaudit_seeds = 2\n"
        "actaudit_steps = 3\nactaudit_min_logit = -100\n"
    )
    result = pytester.runpytest_subprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"actaudit: input of {no_rescaling_file} assumed in ?0, 1?: the model has no "
            "leading Rescaling layer*set one if it takes another (e.g. actaudit_input_range"
            " = -1-1)",
            "collected 3 items",
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    for noise in ("cuInit", "absl::InitializeLog", "cudart_stub", "cpu_feature_guard"):
        assert noise not in output, output
    # with the range set, nothing is assumed
    result = pytester.runpytest_subprocess(
        "--actaudit", "-p", "no:cacheprovider", "--actaudit-input-range", "-1-1", "--co"
    )
    assert "assumed" not in result.stdout.str()


def test_a_fixture_model_s_assumed_input_range_is_said_at_the_end(pytester, no_rescaling_file):
    pytester.makeconftest(
        f"""
        import pytest, pytest_actaudit

        @pytest.fixture(scope="session")
        def actaudit_model():
            return pytest_actaudit.load_model({str(no_rescaling_file)!r})
        """
    )
    pytester.makepyfile("def test_a(actaudit):\n    actaudit.maximize(0, seeds=2, steps=2)\n")
    result = pytester.runpytest_inprocess("--actaudit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"actaudit: input of {no_rescaling_file} assumed in ?0, 1?*"])
