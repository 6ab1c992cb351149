"""Settings: parsed and validated once, frozen, with the precedence
marker kwargs > command line > ini > default.

No TensorFlow and no pytest here: the parsers raise ``ValueError`` with the bad
value and the fix; ``plugin/`` turns them into ``pytest.UsageError``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks.artifacts import Artifact

DEFAULT_SEEDS = 3
DEFAULT_STEPS = 128
# Adam's step, the stop rule's change threshold and its interval (EngineSettings's
# learning_rate, stop_change and stop_every, which a test holds equal): chosen together by
# the quality tables (docs/steps-to-quality.md)
DEFAULT_LEARNING_RATE = 0.1
DEFAULT_STOP = 0.2
DEFAULT_STOP_EVERY = 8
DEFAULT_REPORT = "actaudit-report"
DEVICE_RE = re.compile(r"^(auto|cpu|gpu|gpu:\d+)$")


def how_to_set(name: str, value: object) -> str:
    """How the user sets ``name`` to ``value``: ``actaudit_seeds = 4`` in the ini,
    ``--actaudit-seeds 4`` on the command line."""
    return f"{name} = {value}" if name.startswith("actaudit_") else f"{name} {value}"


def positive_int(value: str | int, name: str = "value") -> int:
    """Parse a strictly positive integer, naming the option in the error."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{name} must be a positive integer, got {value!r} (for example {how_to_set(name, 4)})"
        ) from None
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {number}")
    return number


def auto_or_positive(value: str | int, name: str = "value", example: int = 32) -> int:
    """``auto`` (0: chosen by the engine) or a positive integer. An int 0 is ``auto``
    already parsed (the command line's value is parsed once more with the ini's)."""
    if str(value).strip().lower() == "auto" or (
        isinstance(value, int) and not isinstance(value, bool) and value == 0
    ):
        return 0
    try:
        return positive_int(value, name)
    except ValueError:
        raise ValueError(
            f"{name} must be 'auto' or a positive integer, got {value!r} "
            f"(for example {how_to_set(name, example)})"
        ) from None


def probability(value: str | float, name: str = "value") -> float:
    """Parse a number in [0, 1]."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {number}")
    return number


def device(value: str) -> str:
    """Parse ``auto``, ``cpu``, ``gpu`` or ``gpu:N``."""
    text = str(value).strip().lower()
    if not DEVICE_RE.match(text):
        raise ValueError(
            f"device must be one of auto, cpu, gpu, gpu:N (N a GPU index), got {value!r}"
        )
    return text


def parametrization(value: str, name: str = "parametrization") -> str:
    text = str(value).strip().lower()
    if text not in {"fourier", "pixel", "maco"}:
        raise ValueError(f"{name} must be fourier, pixel or maco, got {value!r}")
    return text


def class_list(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Parse ``all`` or a comma separated list of class names/indices.

    ``()`` means all classes. Names are kept as written; the model's labels resolve
    them later (an unknown name is an error naming the valid ones).
    """
    items: list[str]
    if isinstance(value, str):
        items = value.replace("\n", ",").split(",")
    else:
        items = [str(v) for v in value]
    names = tuple(item.strip() for item in items if item.strip())
    if not names or any(name.lower() == "all" for name in names):
        if len(names) > 1:
            raise ValueError(f"classes: 'all' cannot be combined with other names, got {value!r}")
        return ()
    return names


def preprocess(value: str, name: str = "--actaudit-preprocess") -> str:
    """A preprocessing setting, validated (``module:function`` is imported later)."""
    from .model.preprocess import parse_preprocess

    return parse_preprocess(value, name).text


def input_size(value: str, name: str = "--actaudit-input-size") -> str:
    """``"H,W"`` (or ``"N"``) in pixels, normalized to ``"H,W"``."""
    from .model.inputs import parse_size

    try:
        height, width = parse_size(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return f"{height},{width}"


def stop_change(value: str | float, name: str = "value") -> float:
    """The stop rule's change threshold: 0 (off) or a share in (0, 1)
    (docs/steps-to-quality.md)."""
    text = str(value).strip().lower()
    if text in {"off", "no", "false", ""}:
        return 0.0
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < 1.0:
        raise ValueError(
            f"{name} must be 0 (off) or a share of an image's change below 1, got {value!r} "
            f"(for example {how_to_set(name, 0.3)})"
        )
    return number


def learning_rate(value: str | float, name: str = "value") -> float:
    """Adam's step on the image's parameters: a number above 0 and at most 1."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = -1.0
    if not 0.0 < number <= 1.0:
        raise ValueError(
            f"{name} must be a number above 0 and at most 1, got {value!r} "
            f"(for example {how_to_set(name, 0.05)})"
        )
    return number


def boolean(value: str | bool, name: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Everything that decides what an audit computes and where results go."""

    enabled: bool = False
    model: str | None = None
    labels: str | None = None
    classes: tuple[str, ...] = ()
    seeds: int = DEFAULT_SEEDS
    steps: int = DEFAULT_STEPS
    report: str = DEFAULT_REPORT
    self_contained: bool = False
    baseline: str | None = None
    generate_baseline: str | None = None
    device: str = "auto"
    cache: bool = True
    references: str | None = None
    unsafe_load: bool = False
    input_range: str | None = None
    input_size: str | None = None  # "H,W": for models whose input size is not fixed
    preprocess: str | None = None  # caffe | tf | torch | mean=..,std=..[,bgr] | module:function
    output: str | None = None
    parametrization: str = "fourier"
    stop: float = DEFAULT_STOP  # the stop rule's change threshold; 0: every step runs
    learning_rate: float = DEFAULT_LEARNING_RATE
    max_batch: int = 0  # 0: auto
    lanes: int = 0  # 0: auto
    focus_exclude: str | None = None
    # zero-code audits: named suspects for assert_ignores (ini: one "KIND key=value ..." each)
    suspects: tuple[Artifact, ...] = ()
    shard: str | None = None  # "K/N": this job audits only its share of the classes
    cache_dir: str | None = None  # the result cache's folder (default .pytest_cache/actaudit)
    summary: str | None = None  # a Markdown summary file (and $GITHUB_STEP_SUMMARY)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply marker kwargs (the highest precedence), validated like the options.
        Only per-test settings: the model, its engine and the report are one per
        session, so a marker naming them would be silently ignored; it is an error."""
        fields = {f.name for f in dataclasses.fields(self)} - {"enabled", "thresholds"}
        session_wide = sorted(set(overrides) & (fields - set(MARKER_KEYS)))
        if session_wide:
            where = ", ".join(
                f"--actaudit-{name.replace('_', '-')} / actaudit_{name}" for name in session_wide
            )
            raise ValueError(
                f"actaudit marker argument(s) {session_wide} apply to the whole session: set "
                f"them on the command line or in the ini ({where}); a marker accepts "
                f"{list(MARKER_KEYS)}"
            )
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(
                f"unknown actaudit marker argument(s) {unknown}; valid: {list(MARKER_KEYS)}"
            )
        parsed = {
            name: PARSERS.get(name, _identity)(value, name) for name, value in overrides.items()
        }
        return dataclasses.replace(self, **parsed)


def _identity(value: Any, name: str) -> Any:
    return value


# What a marker (and ActauditFixture.maximize) may set per test; the rest is per session.
MARKER_KEYS = ("seeds", "steps", "classes", "baseline", "generate_baseline")

# name -> parser(value, option name); shared by the command line, ini and markers.
PARSERS: dict[str, Any] = {
    "seeds": positive_int,
    "steps": positive_int,
    "max_batch": auto_or_positive,
    "lanes": lambda v, n: auto_or_positive(v, n, example=2),
    "parametrization": parametrization,
    "stop": stop_change,
    "learning_rate": learning_rate,
    "device": lambda v, n: device(v),
    "classes": lambda v, n: class_list(v),
    "self_contained": boolean,
    "cache": boolean,
    "unsafe_load": boolean,
    "input_size": lambda v, n: input_size(v, n),
    "preprocess": lambda v, n: preprocess(v, n),
    "shard": lambda v, n: parse_shard(v, n),
    "suspects": lambda v, n: _suspects(v),
}


def _suspects(value: Any) -> tuple[Artifact, ...]:
    from .checks.artifacts import parse_lines

    try:  # every line now: a typo stops the run before any model is loaded
        return parse_lines(value)
    except ValueError as exc:
        raise ValueError(f"actaudit_suspects: {exc}") from None


def parse_shard(value: str, name: str = "--actaudit-shard") -> str:
    """``"K/N"`` with 1 ≤ K ≤ N, normalized; anything else names the fix."""
    text = str(value).strip()
    parts = text.split("/")
    try:
        index, count = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        index, count = 0, 0
    if count < 1 or not 1 <= index <= count:
        sep = " = " if name.startswith("actaudit_") else " "  # the ini's form or the flag's
        raise ValueError(
            f"{name} must be K/N with 1 <= K <= N (job K of N, counted from 1), got "
            f"{value!r}; for example {name}{sep}1/4 … 4/4 in four CI jobs"
        )
    return f"{index}/{count}"


THRESHOLD_KEYS = {
    "min_probability": "actaudit_min_probability",
    "min_logit": "actaudit_min_logit",
    "min_consistency": "actaudit_min_consistency",
    "max_focus_share": "actaudit_max_focus_share",
    "min_baseline_similarity": "actaudit_min_baseline_similarity",
    "max_flip_rate": "actaudit_max_flip_rate",
    "max_pull": "actaudit_max_pull",
    "max_rise": "actaudit_max_rise",
}


def resolve(cli: Mapping[str, Any], ini: Mapping[str, Any], enabled: bool) -> Settings:
    """Merge command line over ini over defaults; ``None``/empty means "not given"."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name in {"enabled", "thresholds"}:
            continue
        if f.name == "focus_exclude" and ini.get(f.name):
            from .checks.regions import validate_region

            try:  # the syntax now (a typo stops the run); sizes once the model is known
                validate_region(str(ini[f.name]))
            except ValueError as exc:
                raise ValueError(f"actaudit_focus_exclude: {exc}") from None
        raw = cli.get(f.name)
        name = _option_name(f.name)
        if raw is None or raw == "":
            raw, name = ini.get(f.name), f"actaudit_{f.name}"  # name what the user wrote
        if raw is None or raw == "":
            continue
        try:
            values[f.name] = PARSERS.get(f.name, _identity)(raw, name)
        except ValueError as exc:
            if name in str(exc):
                raise
            raise ValueError(f"{name}: {exc}") from None
    thresholds: dict[str, float] = {}
    for key, ini_name in THRESHOLD_KEYS.items():
        raw = ini.get(key)
        if raw not in (None, ""):
            if key in ("min_logit", "max_rise"):
                try:
                    thresholds[key] = float(raw)
                except ValueError:
                    raise ValueError(f"{ini_name} must be a number, got {raw!r}") from None
                if key == "max_rise" and not thresholds[key] >= 0:
                    raise ValueError(f"{ini_name} is in nats, ≥ 0; got {raw!r}")
            else:
                thresholds[key] = probability(raw, ini_name)
    if "min_consistency" in thresholds and values.get("seeds", DEFAULT_SEEDS) < 2:
        raise ValueError(
            "actaudit_min_consistency compares the seeds' images with each other: with "
            f"{values['seeds']} seed it is undefined (not a pass); set seeds to 2 or more "
            "or drop the key"
        )
    if bool(values.get("focus_exclude")) != ("max_focus_share" in thresholds):
        given, missing = (
            ("actaudit_focus_exclude", "actaudit_max_focus_share")
            if values.get("focus_exclude")
            else ("actaudit_max_focus_share", "actaudit_focus_exclude")
        )
        raise ValueError(f"{given} is set without {missing}: the focus check needs both")
    return Settings(enabled=enabled, thresholds=thresholds, **values)


def _option_name(name: str) -> str:
    return "--actaudit-" + name.replace("_", "-")
