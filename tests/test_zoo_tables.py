"""The shortcut zoo's tables (benchmarks/shortcut_zoo.py), on hand-made rows: what the
docs' recall and false-alarm figures are counted from."""

import importlib.util
from pathlib import Path

ZOO = Path(__file__).resolve().parent.parent / "benchmarks" / "shortcut_zoo.py"


def _zoo():
    spec = importlib.util.spec_from_file_location("shortcut_zoo", ZOO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cls(name, planted, window, edit, flagged=None, scores=None):
    """``scores``: each evidence's score where it is not its median (a decisive seed)."""
    excess = {"window": window, "object-free edit": edit}
    score = {k: sorted(v)[1] for k, v in excess.items()} | (scores or {})
    strongest = max(score, key=lambda k: score[k])
    return {
        "class": name,
        "planted": planted,
        "flagged": (score[strongest] > 0.5) if flagged is None else flagged,
        "excess": excess[strongest],
        "evidence": strongest,
        "per_evidence": score,
        "excess_per_evidence": excess,
        "probe_seconds": 0.5,
    }


def _row(name, kind, share, pull, classes):
    return {
        "model": name,
        "kind": kind,
        "share": share,
        "seed": 1,
        "accuracy": 0.95,
        "class_accuracy": 0.9,
        "pull": pull,
        "optimize_seconds": 2.0,
        "classes": classes,
    }


ROWS = [
    # caught by the edit (median 0.8); a clean class flagged by one window seed only
    _row(
        "tag-0.75-s1",
        "tag",
        0.75,
        0.9,
        [
            _cls("a", True, [0.0, 0.1, 0.0], [0.8, 0.8, 0.8]),
            _cls("b", False, [0.9, 0.0, 0.1], [0.0, 0.0, 0.0]),
        ],
    ),
    # share 0.5, caught only at a lower threshold (0.45)
    _row(
        "tag-0.5-s1",
        "tag",
        0.5,
        0.7,
        [
            _cls("a", True, [0.0, 0.0, 0.0], [0.45, 0.45, 0.45]),
            _cls("b", False, [0.0, 0.0, 0.0], [0.2, 0.2, 0.2]),
        ],
    ),
    # not learned (pull < 0.5): neither a positive nor a clean class for its planted one
    _row(
        "cast-0.5-s1",
        "cast",
        0.5,
        0.2,
        [
            _cls("a", True, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
            _cls("b", False, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ],
    ),
    # a clean model with one false alarm (window, median 0.6)
    _row(
        "clean-s1",
        None,
        0.0,
        0.05,
        [
            _cls("a", False, [0.6, 0.6, 0.7], [0.0, 0.0, 0.0]),
            _cls("b", False, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ],
    ),
    # caught by one decisive seed (score 0.9, median 0.0): counted as the check counts it
    _row(
        "frame-1-s1",
        "frame",
        1.0,
        0.95,
        [
            _cls("a", True, [0.9, 0.0, 0.0], [0.0, 0.0, 0.0], scores={"window": 0.9}),
            _cls("b", False, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ],
    ),
]


def test_sweep_counts_what_the_table_counts_at_the_default():
    zoo = _zoo()
    table = zoo.table(ROWS)
    assert "| tag | 0.5 | 1 | 1 (pull 0.70) | 0 | 0% |" in table
    assert "| tag | 0.75 | 1 | 1 (pull 0.90) | 1 | 100% |" in table
    assert "| of clean models | 2 | 1 |" in table
    lines = {line.split(" | ")[0].strip("| "): line for line in zoo.sweep(ROWS).splitlines()}
    # threshold | recall | at share >= 0.6 | false alarms | window alone | edit alone
    assert lines["0.5"] == "| 0.5 | 2/3 | 2/2 | 1 | 1, 1 | 1, 0 |"
    assert lines["0.4"] == "| 0.4 | 3/3 | 2/2 | 1 | 1, 1 | 2, 0 |"
    # the clean model's window median is 0.6: not above 0.6
    assert lines["0.6"] == "| 0.6 | 2/3 | 2/2 | 0 | 1, 0 | 1, 0 |"
    assert lines["0.7"] == "| 0.7 | 2/3 | 2/2 | 0 | 1, 0 | 1, 0 |"
    assert "| frame | 1 | 1 | 1 (pull 0.95) | 1 | 100% |" in table
    # clean classes: the clean model's 2 and the shortcut models' 4 unplanted ones; the
    # planted class of the model that did not learn its artifact is neither
    assert "false alarms (of 6)" in lines["threshold"]
    assert "| unplanted, of shortcut models | 4 | 0 |" in table


def _named(model, model_kind, suspect, planted, learned, pull):
    return {
        "model": model,
        "model_kind": model_kind,
        "suspect": suspect,
        "class": "c",
        "planted": planted,
        "learned": learned,
        "pull": pull,
    }


def test_suspect_table_counts_learned_planted_classes_and_alarms_apart():
    rows = [
        _named("tag-1-s1", "tag", "tag", True, True, 0.9),
        _named("tag-1-s1", "tag", "tag", False, True, 0.3),  # unplanted: an alarm
        _named("tag-0.5-s1", "tag", "tag", True, False, 0.45),  # not learned: not counted
        _named("clean-s1", None, "tag", False, False, 0.05),
        _named("clean-s1", None, "fixed-patch", False, False, 0.45),  # shape-like
        _named("clean-s1", None, "checker", False, False, 0.2),
    ]
    lines = {
        line.split(" | ")[0].strip("| "): line for line in _zoo().suspect_table(rows).splitlines()
    }
    assert lines["0.1"] == "| 0.1 | 1/1 | 2/3 (1) | 1/1 |"
    assert lines["0.25"] == "| 0.25 | 1/1 | 1/3 (1) | 1/1 |"
    assert lines["0.5"] == "| 0.5 | 1/1 | 0/3 (0) | 0/1 |"
    assert (
        "Weakest learned shortcut: tag-1-s1 (c), pull 0.90. Clean pairs above 0.25: "
        "clean-s1 c × fixed-patch 0.45 (above the default)." in lines
    )


def test_models_of_other_architectures_get_a_table_each():
    zoo = _zoo()
    assert len(zoo.tables(ROWS)) == 2 and not zoo.tables(ROWS)[0].startswith("Architecture")
    assert not zoo.tables([])[0].startswith("Architecture")
    # the other architecture's models learned nothing: a table of its own says so
    other = [dict(row, arch="bn", model=row["model"] + "@bn48", pull=0.2) for row in ROWS]
    assert zoo.table(other) != zoo.table(ROWS)
    # rows without an architecture (an older --resume file) are the zoo's CNN
    printed = zoo.tables(ROWS[:1] + other + [dict(row, arch="cnn") for row in ROWS[1:]])
    assert [text.split(":")[0] for text in printed] == [
        "Architecture cnn",
        "Architecture bn",
        "All architectures",
    ]
    # each architecture's table counts its own models only, the sweep all of them
    assert printed[0].split("\n\n", 1)[1] == zoo.table(ROWS)
    assert printed[1].split("\n\n", 1)[1] == zoo.table(other)
    assert printed[2].split("\n\n", 1)[1] == zoo.sweep(ROWS + other)
