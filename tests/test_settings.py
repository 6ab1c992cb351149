"""Option parsing and the precedence marker > command line > ini > default."""

from __future__ import annotations

import pytest

from pytest_actaudit import settings as s


@pytest.mark.parametrize(
    ("marker", "cli", "ini", "expected"),
    [
        ({}, {}, {}, s.DEFAULT_SEEDS),
        ({}, {}, {"seeds": "5"}, 5),
        ({}, {"seeds": 7}, {"seeds": "5"}, 7),
        ({"seeds": 2}, {"seeds": 7}, {"seeds": "5"}, 2),
        ({"seeds": 2}, {}, {}, 2),
    ],
)
def test_precedence_marker_over_cli_over_ini_over_default(marker, cli, ini, expected):
    resolved = s.resolve(cli, ini, enabled=True)
    if marker:
        resolved = resolved.with_overrides(**marker)
    assert resolved.seeds == expected


@pytest.mark.parametrize("bad", ["0", "-3", "three", "1.5", ""])
def test_positive_int_names_the_bad_value(bad):
    if bad == "":
        with pytest.raises(ValueError, match="positive integer"):
            s.positive_int(bad, "--actaudit-seeds")
        return
    with pytest.raises(ValueError, match="--actaudit-seeds") as info:
        s.positive_int(bad, "--actaudit-seeds")
    assert repr(bad) in str(info.value) or bad.lstrip("-") in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("all", ()), ("", ()), ("circle, square", ("circle", "square")), ("0,3", ("0", "3"))],
)
def test_class_list(text, expected):
    assert s.class_list(text) == expected


def test_class_list_rejects_all_with_names():
    with pytest.raises(ValueError, match="'all' cannot be combined"):
        s.class_list("all,circle")


@pytest.mark.parametrize("good", ["auto", "cpu", "gpu", "gpu:1", "GPU:0"])
def test_device_accepts(good):
    assert s.device(good) == good.lower()


@pytest.mark.parametrize("bad", ["tpu", "gpu:x", "cuda:0", ""])
def test_device_rejects(bad):
    with pytest.raises(ValueError, match="auto, cpu, gpu, gpu:N"):
        s.device(bad)


def test_unknown_marker_argument_is_named():
    with pytest.raises(ValueError, match="seedz"):
        s.Settings().with_overrides(seedz=3)


def test_session_wide_marker_argument_is_an_error_not_ignored():
    # The engine and the model are one per session: a marker's lanes= would be ignored.
    with pytest.raises(
        ValueError, match=r"\['lanes'\] apply to the whole session.*--actaudit-lanes"
    ):
        s.Settings().with_overrides(lanes=1, seeds=2)
    assert s.Settings().with_overrides(seeds=2, steps=3).steps == 3


def test_marker_values_are_validated():
    with pytest.raises(ValueError, match="positive integer"):
        s.Settings().with_overrides(steps=0)


def test_thresholds_from_ini():
    resolved = s.resolve({}, {"min_probability": "0.8", "min_logit": "-2"}, enabled=True)
    assert resolved.thresholds == {"min_probability": 0.8, "min_logit": -2.0}
    with pytest.raises(ValueError, match="actaudit_min_probability"):
        s.resolve({}, {"min_probability": "1.5"}, enabled=True)


def test_min_consistency_with_one_seed_is_refused():
    # one seed has no other to agree with: the check would pass on an undefined number
    with pytest.raises(ValueError, match="actaudit_min_consistency.*with 1 seed it is undefined"):
        s.resolve({}, {"seeds": "1", "min_consistency": "0.5"}, enabled=True)
    assert s.resolve({}, {"seeds": "2", "min_consistency": "0.5"}, enabled=True).seeds == 2


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ({"focus_exclude": "border:2"}, "actaudit_focus_exclude is set without actaudit_max_focus"),
        ({"max_focus_share": "0.5"}, "actaudit_max_focus_share is set without actaudit_focus_ex"),
    ],
)
def test_half_a_focus_check_is_refused(ini, message):
    # one key without the other runs no focus check: the item would check nothing
    with pytest.raises(ValueError, match=message):
        s.resolve({}, ini, enabled=True)


# ---------------------------------------------------------------- through pytest itself
@pytest.mark.parametrize(
    ("filename", "text"),
    [
        ("pytest.ini", "[pytest]\nactaudit_min_probabilty = 0.9\n"),
        ("tox.ini", "[pytest]\nactaudit_min_probabilty = 0.9\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nactaudit_min_probabilty = "0.9"\n'),
        ("setup.cfg", "[tool:pytest]\nactaudit_min_probabilty = 0.9\n"),
    ],
)
def test_a_misspelled_ini_key_fails_the_run_naming_the_closest_key(pytester, filename, text):
    """A typo in a threshold's key would apply no check: the gate would pass by checking
    nothing, with only pytest's generic warning (after the run). It is a usage error."""
    (pytester.path / filename).write_text(text)
    pytester.makepyfile("def test_a(): pass")
    for args in (["--actaudit"], []):  # without --actaudit too: the typo is in the repo
        result = pytester.runpytest_inprocess(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        result.stderr.fnmatch_lines(
            ["*unknown ini key 'actaudit_min_probabilty'*did you mean 'actaudit_min_probability'?*"]
        )


def test_help_still_lists_the_keys_despite_a_misspelled_one(pytester):
    pytester.makeini("[pytest]\nactaudit_seed = 2\n")
    result = pytester.runpytest_inprocess("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*actaudit_seeds*"])


def test_a_misspelled_override_key_fails_too(pytester):
    pytester.makepyfile("def test_a(): pass")
    result = pytester.runpytest_inprocess("--actaudit", "-o", "actaudit_seed=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown ini key 'actaudit_seed'*'actaudit_seeds'?*"])


def test_known_keys_and_other_plugins_keys_pass(pytester):
    pytester.makeini("[pytest]\nactaudit_seeds = 2\nxfail_strict = true\n")
    pytester.makepyfile("def test_a(): pass")
    pytester.runpytest_inprocess().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        (
            "actaudit_seeds = three",
            "*actaudit_seeds must be a positive integer, got 'three' "
            "(for example actaudit_seeds = 4)*",
        ),
        ("actaudit_device = tpu", "*actaudit_device: device must be one of*'tpu'*"),
        ("actaudit_shard = 3/2", "*actaudit_shard must be K/N*actaudit_shard = 1/4*"),
        ("actaudit_cache = maybe", "*actaudit_cache must be true or false, got 'maybe'*"),
    ],
)
def test_an_ini_value_error_names_the_ini_key_not_the_flag(pytester, ini, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest_inprocess("--actaudit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "--actaudit-" not in result.stderr.str()


def test_the_rise_threshold_is_in_nats_not_a_probability():
    # the documented default (2) and looser values must be accepted
    resolved = s.resolve({}, {"max_rise": "3"}, enabled=True)
    assert resolved.thresholds == {"max_rise": 3.0}
    with pytest.raises(ValueError, match="actaudit_max_rise is in nats, ≥ 0; got '-1'"):
        s.resolve({}, {"max_rise": "-1"}, enabled=True)


@pytest.mark.parametrize("bad", ["0", "-0.1", "1.5", "nan", "inf", "fast", ""])
def test_a_bad_learning_rate_in_the_ini_names_the_key_and_an_example(bad):
    if bad == "":  # empty: not given, the default
        assert s.resolve({}, {"learning_rate": bad}, True).learning_rate == 0.1
        return
    with pytest.raises(ValueError, match="actaudit_learning_rate must be a number above 0") as info:
        s.resolve({}, {"learning_rate": bad}, True)
    assert repr(bad) in str(info.value) and "actaudit_learning_rate = 0.05" in str(info.value)


def test_the_learning_rate_is_per_session_the_command_line_over_the_ini():
    assert s.resolve({"learning_rate": "0.03"}, {"learning_rate": "0.07"}, True).learning_rate == (
        0.03
    )
    session_wide = r"\['learning_rate'\] apply to the whole session.*--actaudit-learning-rate"
    with pytest.raises(ValueError, match=session_wide):
        s.Settings().with_overrides(learning_rate=0.05)
