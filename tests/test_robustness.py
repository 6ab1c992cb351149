"""A cache that cannot be written or holds bad entries, and a model Keras cannot
rebuild: the run goes on, or stops with the cause and the fix."""

from __future__ import annotations

import pytest

ONE_AUDIT = "def test_a(actaudit): actaudit.maximize('red', steps=2, seeds=1)\n"


@pytest.mark.parametrize("where", ["ini", "option"])
def test_unwritable_cache_warns_and_runs_without_it(pytester, color_model_file, where):
    """A read-only checkout: the default cache (or --actaudit-cache-dir) cannot be made.
    Tests run as root, whom chmod does not stop: the folder lies under a regular file."""
    (pytester.path / "blocker").write_text("a file, not a folder\n")
    test = pytester.makepyfile(ONE_AUDIT)
    # the test alone (no zero-code items: a node id)
    args = [f"{test.name}::test_a", "--actaudit", f"--actaudit-model={color_model_file}"]
    if where == "ini":
        args += ["-o", "cache_dir=blocker/sub"]
    else:
        args += ["--actaudit-cache-dir=blocker/sub"]
    result = pytester.runpytest_inprocess(*args)
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*ActauditCacheWarning*blocker*cannot be written*without the cache*--actaudit-cache-dir*"]
    )


CUSTOM_LAYERS = """
import keras


@keras.saving.register_keras_serializable(package="mine")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""

SAVE_CUSTOM = """
import keras
from mylayers import Doubler
inputs = keras.Input((8, 8, 3))
x = keras.layers.GlobalAveragePooling2D()(Doubler()(inputs))
keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save("custom.keras")
"""


@pytest.fixture(scope="module")
def custom_model(tmp_path_factory):
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("custom")
    (folder / "mylayers.py").write_text(CUSTOM_LAYERS)
    subprocess.run([sys.executable, "-c", SAVE_CUSTOM], cwd=folder, check=True)
    (folder / "mylayers.py").rename(folder / "mylayers_src.py")  # not importable by name
    return folder / "custom.keras"


def test_unregistered_custom_layer_names_the_class_and_the_fix(pytester, custom_model):
    pytester.makepyfile("def test_a(actaudit): pass")
    result = pytester.runpytest_inprocess("--actaudit", f"--actaudit-model={custom_model}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "INTERNALERROR" not in err + result.stdout.str()
    assert "custom layer or object 'Doubler'" in err
    assert "module 'mylayers'" in err and "'mine>Doubler'" in err
    assert "register_keras_serializable" in err and "import mylayers" in err
    assert "custom_objects={'mine>Doubler': Doubler}" in err and "conftest.py" in err
    assert "is the file complete" not in err  # the hint pointed the wrong way


def test_custom_objects_load_the_model(custom_model):
    """The fix the message gives works: load_model with custom_objects."""
    import importlib.util

    import pytest_actaudit

    spec = importlib.util.spec_from_file_location(
        "mylayers_src", custom_model.parent / "mylayers_src.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers 'mine>Doubler' too; the key makes it explicit
    model = pytest_actaudit.load_model(
        custom_model, custom_objects={"mine>Doubler": module.Doubler}
    )
    assert [type(layer).__name__ for layer in model.layers][1] == "Doubler"


def test_cache_entry_of_the_wrong_shape_is_recomputed_and_named(color_model, tmp_path):
    """An entry that loads but does not fit its key (another image size, another number
    of steps) is dropped with a warning naming it, and the image is optimized again."""
    import numpy as np

    from pytest_actaudit.errors import ActauditWarning
    from pytest_actaudit.runner import AuditRunner

    def audit():
        runner = AuditRunner(color_model, labels=["red", "green", "blue"], cache_dir=str(tmp_path))
        return runner, runner.maximize("red", seeds=2, steps=3)

    _, first = audit()
    entries = sorted(tmp_path.rglob("*.npz"))
    assert len(entries) == 2
    bad = entries[0]
    with np.load(bad) as data:
        fields = dict(data)
    fields["image"] = np.zeros((8, 8, 3), np.uint8)  # another size than 16 × 12
    fields["curve"] = np.zeros(7)  # another number of steps
    np.savez(bad, **fields)
    with pytest.warns(ActauditWarning, match=rf"{bad.name}.*image.*\(8, 8, 3\).*\(16, 12, 3\)"):
        runner, again = audit()
    assert runner.cache is not None and runner.cache.hits == 1 and runner.stats.images == 1
    np.testing.assert_array_equal(again.images, first.images)
    with np.load(bad) as data:  # written again, right
        assert data["image"].shape == (16, 12, 3)


def test_probe_results_are_cached_by_model_references_and_images(tmp_path, monkeypatch):
    """A rerun with the cache does not run the shortcut probe again (it was most of a
    cached rerun's time); other references, or no cache, do."""
    import numpy as np

    from pytest_actaudit.checks import probe as probe_mod
    from pytest_actaudit.engine.loop import EngineSettings
    from pytest_actaudit.report.writer import ImageSink, audit_record
    from pytest_actaudit.runner import AuditRunner, probe_context
    from tests.conftest import COLORS
    from tests.test_probe import corner_model, references

    model = corner_model()
    refs, labels = references()
    calls = []
    original = probe_mod.probe

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(probe_mod, "probe", counted)

    def probed(references, cache=True):
        runner = AuditRunner(
            model,
            labels=COLORS,
            cache_dir=str(tmp_path / "cache") if cache else None,
            engine_settings=EngineSettings(parametrization="pixel"),
        )
        audit = runner.maximize("red", seeds=2, steps=10)
        audit.probe_context = probe_context(runner, lambda: references)
        audit.shortcut_probe()
        return audit_record(audit, ImageSink(tmp_path / "report"))["probe"]

    first = probed((refs, labels))
    assert len(calls) == 1
    assert probed((refs, labels)) == first and len(calls) == 1  # from the cache, the same
    other = refs.copy()
    other[0, 0, 0, 0] ^= 1
    probed((other, labels))
    assert len(calls) == 2  # other references: run again
    probed((refs, labels), cache=False)
    assert len(calls) == 3
    assert first["strongest"] and np.isfinite(first["flip_rates"]).all()
