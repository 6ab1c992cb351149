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
