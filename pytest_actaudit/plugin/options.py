"""The command-line options and ini keys (flag, ini key, argparse kwargs, help text), the
marker's help, reading them back from a ``pytest.Config`` for ``settings.resolve``, and the
``config.stash`` keys that hold the resolved settings and the session."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .. import settings as settings_mod
from ..settings import Settings

if TYPE_CHECKING:
    from .protocols import AuditSession

SKIP_REASON = "pass --actaudit to run activation audits"
SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY: pytest.StashKey[AuditSession] = pytest.StashKey()
MARKER_HELP = (
    "actaudit(**settings): an activation audit; keyword arguments override the command line "
    "and ini for this test ("
    + ", ".join(f"{key}=" for key in settings_mod.MARKER_KEYS)
    + "); session-wide settings (device, lanes, preprocessing, ...) are options, not marker "
    "arguments"
)


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a settings parser as an argparse ``type=``: its message names the bad value."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _parse_shard(value: str) -> str:
    from ..settings import parse_shard

    return parse_shard(value)


OPTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    # (command line, ini key or "", argparse kwargs, help)
    ("--actaudit", "", {"action": "store_true"}, "enable activation audits"),
    (
        "--actaudit-model",
        "actaudit_model",
        {"metavar": "PATH"},
        "model file (.keras, .h5 or SavedModel folder) for the actaudit_model fixture",
    ),
    (
        "--actaudit-labels",
        "actaudit_labels",
        {"metavar": "PATH"},
        "class names, one per line or a JSON list (default: labels.txt beside the model)",
    ),
    (
        "--actaudit-classes",
        "actaudit_classes",
        {"metavar": "LIST", "type": _argtype(settings_mod.class_list)},
        "'all', or class names/indices, comma separated (which classes zero-code audits cover)",
    ),
    (
        "--actaudit-seeds",
        "actaudit_seeds",
        {
            "metavar": "N",
            "type": _argtype(lambda v: settings_mod.positive_int(v, "--actaudit-seeds")),
        },
        f"random starts per class (default {settings_mod.DEFAULT_SEEDS})",
    ),
    (
        "--actaudit-steps",
        "actaudit_steps",
        {
            "metavar": "N",
            "type": _argtype(lambda v: settings_mod.positive_int(v, "--actaudit-steps")),
        },
        f"gradient-ascent steps (default {settings_mod.DEFAULT_STEPS})",
    ),
    (
        "--actaudit-report",
        "actaudit_report",
        {"metavar": "DIR"},
        f"report folder (default {settings_mod.DEFAULT_REPORT})",
    ),
    (
        "--actaudit-self-contained",
        "actaudit_self_contained",
        {"action": "store_true", "default": None},
        "inline the images into index.html (one file to share)",
    ),
    (
        "--actaudit-baseline",
        "actaudit_baseline",
        {"metavar": "DIR"},
        "compare against stored baseline images (assert_matches_baseline)",
    ),
    (
        "--actaudit-generate-baseline",
        "",
        {"metavar": "DIR"},
        "write every audit's images and metrics as the new baseline instead of comparing",
    ),
    (
        "--actaudit-device",
        "actaudit_device",
        {"metavar": "auto|cpu|gpu|gpu:N", "type": _argtype(settings_mod.device)},
        "where to optimize (default auto: the first visible GPU, else CPU)",
    ),
    (
        "--actaudit-no-cache",
        "actaudit_cache",
        {"action": "store_false", "dest": "actaudit_cache", "default": None},
        "disable the result cache in .pytest_cache (ini actaudit_cache = false)",
    ),
    (
        "--actaudit-cache-dir",
        "actaudit_cache_dir",
        {"metavar": "DIR"},
        "the result cache's folder (default .pytest_cache/d/actaudit), e.g. one a CI cache "
        "restores; entries of another model hash or settings are never reused",
    ),
    (
        "--actaudit-shard",
        "actaudit_shard",
        {"metavar": "K/N", "type": _argtype(lambda v: _parse_shard(v))},
        "audit only this job's share of the classes (job K of N); join the reports with "
        "`actaudit merge OUT DIR...`",
    ),
    (
        "--actaudit-summary",
        "actaudit_summary",
        {"metavar": "FILE.md"},
        "write a Markdown summary (failed classes first, with values and thresholds); also "
        "appended to $GITHUB_STEP_SUMMARY when it is set",
    ),
    (
        "--actaudit-references",
        "actaudit_references",
        {"metavar": "DIR"},
        "sample images per class (one subfolder per class) for the shortcut probe",
    ),
    (
        "--actaudit-output",
        "actaudit_output",
        {"metavar": "NAME"},
        "the classifier output of a multi-output model, by the name of its layer",
    ),
    (
        "--actaudit-input-range",
        "actaudit_input_range",
        {"metavar": "0-255|0-1|-1-1|LOW,HIGH"},
        "the model's input value range (default: 0-255 after a leading Rescaling/Normalization "
        "layer, else 0-1)",
    ),
    (
        "--actaudit-preprocess",
        "actaudit_preprocess",
        {
            "metavar": "P",
            "type": _argtype(lambda v: settings_mod.preprocess(v, "--actaudit-preprocess")),
        },
        "preprocessing done outside the model: caffe, tf, torch (keras.applications modes), "
        "mean=R,G,B[,std=R,G,B][,bgr] in 0-255 units, or module:function",
    ),
    (
        "--actaudit-input-size",
        "actaudit_input_size",
        {
            "metavar": "H,W",
            "type": _argtype(lambda v: settings_mod.input_size(v, "--actaudit-input-size")),
        },
        "the size to optimize at for a model whose input size is not fixed (a fully "
        "convolutional one); references are resized to it",
    ),
    (
        "--actaudit-parametrization",
        "actaudit_parametrization",
        {"metavar": "fourier|pixel|maco", "type": _argtype(settings_mod.parametrization)},
        "what the optimizer changes: a 1/f-scaled spectrum (default) or the pixels",
    ),
    (
        "--actaudit-stop",
        "actaudit_stop",
        {
            "metavar": "CHANGE",
            "type": _argtype(lambda v: settings_mod.stop_change(v, "--actaudit-stop")),
        },
        f"stop a seed once its probability is 0.9 or more and its last "
        f"{settings_mod.DEFAULT_STOP_EVERY} steps changed its image by less than CHANGE of its "
        f"change so far (default {settings_mod.DEFAULT_STOP}; 0: every seed runs every step)",
    ),
    (
        "--actaudit-learning-rate",
        "actaudit_learning_rate",
        {
            "metavar": "LR",
            "type": _argtype(lambda v: settings_mod.learning_rate(v, "--actaudit-learning-rate")),
        },
        f"Adam's step on the image's parameters (default {settings_mod.DEFAULT_LEARNING_RATE}, "
        "chosen with the stop rule; 0.05 with --actaudit-stop 0: every step at the earlier "
        "default, the images of releases before the stop rule)",
    ),
    (
        "--actaudit-max-batch",
        "actaudit_max_batch",
        {
            "metavar": "N|auto",
            "type": _argtype(lambda v: settings_mod.auto_or_positive(v, "--actaudit-max-batch")),
        },
        "images optimized together at most (default auto: from the model's activation "
        "sizes and the memory available; the report header shows the bound)",
    ),
    (
        "--actaudit-lanes",
        "actaudit_lanes",
        {
            "metavar": "N|auto",
            "type": _argtype(lambda v: settings_mod.auto_or_positive(v, "--actaudit-lanes", 2)),
        },
        "independent loops a batch runs as, at the same time (default auto: 2 on a CPU "
        "with 2 or more cores per xdist worker, 1 on a GPU)",
    ),
]
INI_ONLY = [
    ("actaudit_min_probability", "zero-code audits: min probability of every seed's image"),
    ("actaudit_min_logit", "zero-code audits: min logit of every seed's image"),
    ("actaudit_min_consistency", "zero-code audits: min cross-seed SSIM"),
    ("actaudit_focus_exclude", "zero-code audits: region for assert_focus, e.g. border:6"),
    ("actaudit_max_focus_share", "zero-code audits: max attribution share in that region"),
    ("actaudit_min_baseline_similarity", "zero-code audits: min SSIM with the baseline"),
    ("actaudit_max_flip_rate", "zero-code audits: max excess flip rate of the shortcut probe"),
    (
        "actaudit_suspects",
        "zero-code audits: named suspects for assert_ignores, one per line, e.g. "
        "'square x=5 y=50 size=6 colour=255,140,0' (kinds: square, text, band, frame, cast, "
        "patch file=PATH)",
    ),
    ("actaudit_max_pull", "zero-code audits: max pull of each named suspect (default 0.4)"),
    (
        "actaudit_max_rise",
        "zero-code audits: max specific rise (nats) of each named suspect, on models of "
        "100+ classes (default 2)",
    ),
    ("actaudit_unsafe_load", "load models with Keras safe mode off (only for files you trust)"),
]


def add_options(parser: pytest.Parser) -> None:
    """Register every option and ini key (the body of ``pytest_addoption``)."""
    group = parser.getgroup("actaudit", "activation audits (class maximization)")
    for flag, ini, kwargs, help_text in OPTIONS:
        options = dict(kwargs)
        dest = options.pop("dest", flag.lstrip("-").replace("-", "_"))
        group.addoption(flag, dest=dest, help=help_text, **options)
        if ini:
            parser.addini(ini, help_text, default=None)
    for ini, help_text in INI_ONLY:
        parser.addini(ini, help_text, default=None)


def ini_keys() -> list[str]:
    """Every ini key the plugin reads."""
    return [ini for _, ini, _, _ in OPTIONS if ini] + [ini for ini, _ in INI_ONLY]


def unknown_ini_key(config: pytest.Config) -> str | None:
    """The error for an ``actaudit_*`` key the plugin does not know, or None.

    pytest only warns about unknown keys (after collection, with the run still green),
    and a misspelled threshold would apply no check: a gate that passes by checking
    nothing. So a typo stops the run, naming the closest key."""
    import difflib

    written = set(config.inicfg)  # pytest.ini, tox.ini, setup.cfg or pyproject.toml
    for entry in config.getoption("override_ini", None) or []:  # -o KEY=VALUE
        written.add(str(entry).split("=", 1)[0].strip())
    known = ini_keys()
    for key in sorted(written):
        if key.lower().startswith("actaudit") and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = f" in {config.inipath}" if config.inipath else ""
            return (
                f"unknown ini key {key!r}{where}: {hint}the actaudit keys are listed by "
                "`pytest --help` (a misspelled key would silently check nothing)"
            )
    return None


def cli_and_ini(config: pytest.Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The command line's and the ini's values by setting name (None where not given)."""
    cli: dict[str, Any] = {}
    ini: dict[str, Any] = {}
    for flag, ini_name, _, _ in OPTIONS:
        if flag == "--actaudit":
            continue
        name = flag.removeprefix("--actaudit-").replace("-", "_")
        if flag == "--actaudit-no-cache":
            name = "cache"
            cli[name] = config.getoption("actaudit_cache")
        else:
            cli[name] = config.getoption(flag.lstrip("-").replace("-", "_"))
        if ini_name:
            value = config.getini(ini_name)
            ini[name] = value if value not in (None, "", []) else None
    for ini_name, _ in INI_ONLY:
        value = config.getini(ini_name)
        ini[ini_name.removeprefix("actaudit_")] = value if value not in (None, "", []) else None
    if cli.get("self_contained") is False:
        cli["self_contained"] = None
    return cli, ini
