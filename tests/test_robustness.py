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
