"""Bad input gives a clear error; interrupts and dead workers lose nothing finished."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_actaudit import ActauditError
from pytest_actaudit import settings as s
from pytest_actaudit.model.labels import read_labels
from tests.conftest import saved_in_a_fresh_process

LAMBDA_MODEL = """
import keras
inputs = keras.Input((8, 8, 3))
x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
x = keras.layers.GlobalAveragePooling2D()(x)
keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save({path!r})
"""


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    return saved_in_a_fresh_process(tmp_path_factory.mktemp("lambda"), "lambda.keras", LAMBDA_MODEL)


def test_lambda_model_is_refused_in_safe_mode_with_the_opt_in(pytester, lambda_model):
    pytester.makepyfile("def test_a(actaudit): actaudit.maximize(0, steps=2)")
    # No labels beside the model: collecting the zero-code items loads it, so the refusal
    # is a usage error before anything runs.
    result = pytester.runpytest_inprocess("--actaudit", f"--actaudit-model={lambda_model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*refusing to load*Keras safe mode*actaudit_unsafe_load = true*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    pytester.makeini("[pytest]\nactaudit_unsafe_load = true\nactaudit_steps = 3\n")
    result = pytester.runpytest_inprocess("--actaudit", f"--actaudit-model={lambda_model}")
    result.assert_outcomes(passed=1)  # the test; no zero-code items: nothing to check


def test_truncated_model_file_is_a_test_error_naming_the_file(pytester, color_model_file):
    broken = pytester.path / "broken.keras"
    broken.write_bytes(color_model_file.read_bytes()[:300])
    pytester.makepyfile("def test_a(actaudit): pass")
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-model=broken.keras")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*could not load model 'broken.keras'*is the file complete*"])
    # the same file through a conftest fixture: a test error, not a crash
    pytester.makeconftest(
        "import pytest, pytest_actaudit\n"
        "@pytest.fixture(scope='session')\n"
        "def actaudit_model():\n"
        "    return pytest_actaudit.load_model('broken.keras')\n"
    )
    result = pytester.runpytest_inprocess("--actaudit")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*could not load model 'broken.keras'*"])


def test_labels_file_with_the_wrong_number_of_lines(pytester, color_model_file):
    (pytester.path / "labels.txt").write_text("a\nb\n")
    pytester.makepyfile("def test_a(actaudit): actaudit.maximize(0, steps=2)")
    result = pytester.runpytest_inprocess(
        "--actaudit", f"--actaudit-model={color_model_file}", "--actaudit-labels=labels.txt"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*labels from labels.txt name 2 classes but model {str(color_model_file)!r} has 3*"]
    )


def test_unknown_class_in_the_classes_option_is_a_usage_error(pytester, color_model_file):
    result = pytester.runpytest_inprocess(
        "--actaudit", f"--actaudit-model={color_model_file}", "--actaudit-classes=red,purple"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown class 'purple'*valid names: 'red', 'green', 'blue'*"])


def test_missing_references_folder_names_the_option(pytester, color_model_file):
    pytester.makepyfile(
        "def test_a(actaudit): actaudit.maximize('red', steps=2, seeds=1).assert_no_shortcut()"
    )
    result = pytester.runpytest_inprocess(
        "--actaudit", f"--actaudit-model={color_model_file}", "--actaudit-references=refs"
    )
    result.assert_outcomes(failed=1)  # no zero-code items: no threshold is set
    result.stdout.fnmatch_lines(["*references folder not found: 'refs'*one subfolder per class*"])


def test_gpu_asked_for_where_none_is_visible_is_a_usage_error(pytester):
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible")
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-device=gpu:1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*asks for GPU 1 but TensorFlow sees none*"])


@given(st.text(max_size=12))
def test_positive_int_parser_accepts_only_positive_integers(text):
    try:
        value = s.positive_int(text, "--actaudit-seeds")
    except ValueError as exc:
        assert "--actaudit-seeds" in str(exc) or "positive" in str(exc)
    else:
        assert value > 0 and int(text.strip()) == value


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1),
        unique=True,
    )
)
def test_labels_reader_round_trips_json_lists(tmp_path_factory, names):
    path = tmp_path_factory.mktemp("labels") / "labels.json"
    path.write_text(json.dumps(names), encoding="utf-8")
    assert read_labels(path) == names


@given(st.lists(st.from_regex(r"[A-Za-z0-9_ <>&-]{1,10}", fullmatch=True), min_size=1))
def test_labels_reader_one_per_line(tmp_path_factory, names):
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))  # one line per class
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    if names and names[0].startswith("["):
        return
    assert read_labels(path) == names


def test_labels_reader_bad_json(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text("[1, 2")
    with pytest.raises(ActauditError, match="not valid JSON"):
        read_labels(path)


SLOW_SUITE = """
import faulthandler
import signal
import time

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's timeout dumps stacks

def test_1_quick(actaudit):
    actaudit.maximize("red", steps=5, seeds=1)

def test_2_slow(actaudit):
    actaudit.maximize("green", steps=5, seeds=1)
    print("STARTED-SLOW", flush=True)
    # short sleeps: Python runs its SIGINT handler on the main thread between bytecodes
    for _ in range(600):
        time.sleep(0.1)
"""


# pytest in a child whose Ctrl-C raises KeyboardInterrupt even when this process was
# started with SIGINT ignored (a background job of a non-interactive shell: the child
# would inherit the ignored signal and never see the test's SIGINT)
INTERRUPTIBLE_PYTEST = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


def _run_until(pytester, args, marker, env=None):
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_PYTEST, *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    deadline = time.time() + 120
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if marker in line:
            return proc, lines
    proc.kill()
    raise AssertionError("never saw " + marker + "\n" + "".join(lines))


def test_ctrl_c_keeps_what_finished(pytester, color_model_file):
    pytester.makepyfile(SLOW_SUITE)
    args = ["--actaudit", f"--actaudit-model={color_model_file}", "-s", "-p", "no:cacheprovider"]
    proc, _ = _run_until(pytester, args, "STARTED-SLOW")
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # say where it hangs: every thread's stack
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("no exit 60 s after SIGINT; stacks:\n" + out[-8000:]) from None
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    by_label = {a["label"]: a for a in results["audits"]}
    assert by_label["red"]["images"] and by_label["red"]["status"] == "passed"
    # the interrupted test's audit had finished optimizing: it is kept too
    assert by_label["green"]["images"]


CRASH_SUITE = """
import os

def test_crash(actaudit):
    actaudit.maximize("blue", steps=5, seeds=1)
    os.kill(os.getpid(), 9)

def test_fine(actaudit):
    actaudit.maximize("red", steps=5, seeds=1)
"""


def test_a_dead_xdist_worker_leaves_an_error_entry(pytester, color_model_file):
    pytester.makepyfile(CRASH_SUITE)
    result = pytester.runpytest_subprocess(
        "--actaudit", f"--actaudit-model={color_model_file}", "-n", "2", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)  # no zero-code items: no threshold is set
    results = json.loads((pytester.path / "actaudit-report" / "results.json").read_text())
    by_node = {a["nodeid"].rsplit("::", 1)[-1]: a for a in results["audits"]}
    assert by_node["test_fine"]["status"] == "passed" and by_node["test_fine"]["images"]
    crashed = by_node["test_crash"]
    assert crashed["status"] == "failed" and "never finished" in crashed["error"]
    html = (pytester.path / "actaudit-report" / "index.html").read_text()
    assert "started but never finished" in html


def _conftest_model(pytester, body):
    pytester.makeconftest(
        "import numpy as np, pytest, keras, tensorflow as tf\n"
        "@pytest.fixture(scope='session')\n"
        "def actaudit_model():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    )


def test_not_an_image_classifier_fails_the_test_with_the_reason(pytester):
    _conftest_model(
        pytester,
        "inputs = keras.Input((20,), dtype='int32')\n"
        "x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(inputs))\n"
        "return keras.Model(inputs, keras.layers.Dense(3, activation='softmax')(x))",
    )
    pytester.makepyfile("def test_a(actaudit): actaudit.maximize(0)")
    result = pytester.runpytest_inprocess("--actaudit")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*is not an image classifier: its input is (None, 20) int32*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_out_of_range_index_and_nan_are_test_failures(pytester):
    _conftest_model(
        pytester,
        "class Unstable(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return tf.sqrt(tf.reduce_mean(x, axis=[1, 2]) - 0.45)\n"
        "inputs = keras.Input((8, 8, 1))\n"
        "dense = keras.layers.Dense(2, activation='softmax')\n"
        "model = keras.Model(inputs, dense(Unstable()(inputs)))\n"
        "dense.set_weights([np.array([[-5.0, 5.0]], 'float32'), np.zeros(2, 'float32')])\n"
        "return model",
    )
    pytester.makepyfile(
        """
        def test_index(actaudit):
            actaudit.maximize(5)

        def test_nan(actaudit):
            actaudit.maximize(0, steps=40, seeds=1)
        """
    )
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-parametrization=pixel")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*class index 5 is out of range: the model has 2 classes (0..1)*",
            "*class '0' (index 0), seed 0: the score or its gradient became NaN/Inf at step *",
        ]
    )


def test_verbose_run_prints_a_progress_line_per_chunk(pytester, color_model_file):
    pytester.makepyfile("def test_a(actaudit): actaudit.maximize('red', seeds=4, steps=3)")
    pytester.makeconftest(
        "import pytest, pytest_actaudit\n"
        "@pytest.fixture(scope='session')\n"
        f"def actaudit_model(): return pytest_actaudit.load_model({str(color_model_file)!r})\n"
    )
    # a batch holds whole lanes (3 seeds of a class): seeds 0-2, then seed 3
    result = pytester.runpytest_inprocess("--actaudit", "-v", "--actaudit-max-batch=3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*actaudit: optimized 3 images (3/4), 3 steps, *s on /device:CPU:0*",
            "*actaudit: optimized 1 images (4/4), 3 steps, *",
        ]
    )


def test_auto_batch_bound_and_lanes_from_the_command_line(pytester, color_model_file):
    pytester.makepyfile("def test_a(actaudit): actaudit.maximize('red', steps=2)")
    pytester.makeconftest(
        "import pytest, pytest_actaudit\n"
        "@pytest.fixture(scope='session')\n"
        f"def actaudit_model(): return pytest_actaudit.load_model({str(color_model_file)!r})\n"
    )
    result = pytester.runpytest_inprocess(
        "--actaudit",
        "-v",
        "--actaudit-max-batch",
        "auto",
        "--actaudit-lanes",
        "auto",
        "--actaudit-device",
        "cpu",  # the lanes' source names CPU cores (on a GPU: "auto: GPU")
    )
    result.assert_outcomes(passed=1)
    header = (pytester.path / "actaudit-report" / "index.html").read_text()
    assert "batch ≤ " in header and "CPU core" in header, header[:2000]
    result = pytester.runpytest_inprocess("--actaudit", "--actaudit-lanes", "none")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--actaudit-lanes must be 'auto' or a positive integer*"])


def test_imagenet_class_index_labels(tmp_path):
    import json

    from pytest_actaudit.model.labels import read_labels

    path = tmp_path / "imagenet_class_index.json"
    index = {"0": ["n01440764", "tench"], "1": ["n02012849", "crane"], "2": ["n03126707", "crane"]}
    path.write_text(json.dumps(index))
    assert read_labels(path) == ["tench", "crane (n02012849)", "crane (n03126707)"]
    path.write_text(json.dumps({"0": "cat", "2": "dog"}))
    with pytest.raises(ActauditError, match="indices must run 0..1"):
        read_labels(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("labels.txt", "red\ngreen\n\nred\n", "*'red' on lines 1, 4*"),
        ("labels.json", '["red", "green", "red"]', "*'red' on indices 0, 2*"),
        ("index.json", '{"0": "red", "1": "green", "2": "red"}', "*'red' on indices 0, 2*"),
    ],
)
def test_a_labels_file_naming_a_class_twice_is_a_usage_error(
    pytester, color_model_file, name, text, message
):
    """Both items would audit the first index under one node id; the other class would
    never be audited and the run would be green."""
    (pytester.path / name).write_text(text)
    pytester.makeini("[pytest]\nactaudit_min_probability = 0.5\n")
    result = pytester.runpytest_inprocess(
        "--actaudit", f"--actaudit-model={color_model_file}", f"--actaudit-labels={name}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*labels file '{name}' names a class more than once:{message}"])


def test_read_labels_keeps_imagenet_names_that_repeat_apart(tmp_path):
    path = tmp_path / "imagenet_class_index.json"
    path.write_text('{"0": ["n1", "crane"], "1": ["n2", "crane"], "2": ["n3", "kite"]}')
    assert read_labels(path) == ["crane (n1)", "crane (n2)", "kite"]
