"""The trigger search's zoo tables (benchmarks/trigger_zoo.py), on hand-made rows: each
search seed's ROC-AUC and the lift of the held-out success averaged over the seeds, as
docs/trigger-search.md quotes them."""

import pytest

from benchmarks import trigger_zoo as tables


def _record(held, seed):
    return {"held_out": held, "size": 0.02, "success": 0.8, "seed": seed}


def _row(name, arch, kind, pull, planted, held_by_seed):
    """``held_by_seed``: per search seed, the four classes' held-out successes."""
    classes = []
    for k in range(4):
        runs = [_record(held[k], seed) for seed, held in enumerate(held_by_seed)]
        classes.append(
            {"planted": k == planted, "flagged": None, "trigger": runs[0], "by_seed": runs}
        )
    return {"model": name, "arch": arch, "kind": kind, "share": 1.0, "seed": 1, "pull": pull,
            "classes": classes, "trigger_seconds": 1.0}  # fmt: skip


def test_every_seed_is_judged_and_the_mean_lift_averages_held_out_success():
    rows = [
        # seed 0 catches the tag, seed 1 does not: the mean is between
        _row("tag", "cnn", "tag", 0.9, 1, [[0.1, 0.9, 0.2, 0.3], [0.3, 0.3, 0.2, 0.4]]),
        _row("clean", "cnn", None, 0.1, None, [[0.1, 0.2, 0.3, 0.2], [0.2, 0.1, 0.2, 0.5]]),
    ]
    tables.rejudge(rows)
    tag = rows[0]["classes"][1]
    assert [r["lift"] for r in tag["by_seed"]] == pytest.approx([0.7, 0.0])
    assert tag["trigger"]["lift"] == pytest.approx(0.7)  # the first seed's, as the check's
    assert tables.mean_lifts(rows[0])[1] == pytest.approx(0.6 - 0.2)  # means 0.2, 0.6, 0.2, 0.35

    text = tables.table(rows, 0.35)
    line = next(x for x in text.splitlines() if x.startswith("| cnn"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # seed 0: the tag's +0.7 beats all 7 negatives; seed 1: its 0.0 beats two (-0.1),
    # ties three and loses to two (+0.1, +0.3)
    assert cells[3] == "1.00, 0.50"
    assert cells[5:7] == ["1/1", "0/7"]  # the mean lift +0.40; the clean model's best +0.20
    per_kind = tables.per_kind(rows, 0.35)
    assert "+0.70, +0.00" in per_kind and "| +0.40 | yes |" in per_kind


def test_rows_of_one_search_from_before_the_seeds_still_make_the_table():
    row = _row("tag", "bn", "tag", 0.9, 0, [[0.9, 0.1, 0.2, 0.3]])
    for c in row["classes"]:
        del c["by_seed"]
    tables.rejudge([row])
    assert row["classes"][0]["trigger"]["lift"] == pytest.approx(0.7)
    line = next(x for x in tables.table([row], 0.35).splitlines() if x.startswith("| bn"))
    assert "| 1.00 | 1.00 | 1/1 | 0/3 |" in line
