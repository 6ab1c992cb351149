"""The report files, rendered from records and re-rendered from results.json."""

from __future__ import annotations

import json

from pytest_actaudit.cli import main as cli_main
from pytest_actaudit.report.images import slug
from tests.reportdata import HOSTILE, report_dir  # noqa: F401  (fixture)


def test_results_json_is_the_source_and_lists_failed_audits(report_dir):  # noqa: F811
    results = json.loads((report_dir / "results.json").read_text())
    assert results["schema"] == 1
    statuses = {a["label"]: a["status"] for a in results["audits"]}
    assert statuses == {"circle": "passed", "square": "failed", HOSTILE: "passed"}
    for audit in results["audits"]:
        assert len(audit["images"]) == 3
        for path in audit["images"]:
            assert (report_dir / path).is_file() and "/" not in path.removeprefix("images/")
    assert not list(report_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def test_failed_first_and_labels_escaped(report_dir):  # noqa: F811
    html = (report_dir / "index.html").read_text()
    cards = html[html.index('<section id="cards">') :]
    assert cards.index('data-label="square"') < cards.index('data-label="circle"')
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_rerender_from_results_json(report_dir):  # noqa: F811
    (report_dir / "index.html").unlink()
    assert cli_main(["report", str(report_dir)]) == 0
    assert (report_dir / "index.html").read_text().count("<article") == 3


def test_rerender_without_results_names_the_fix(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path)]) == 2
    assert "run `pytest --actaudit`" in capsys.readouterr().err


def test_self_contained_inlines_every_image(report_dir):  # noqa: F811
    cli_main(["report", str(report_dir), "--self-contained"])
    html = (report_dir / "index.html").read_text()
    # per card: 3 seeds + mean (PNG) + heat map (JPEG); per class in the grid: mean + heat
    # map; the circle's named suspect: 2 examples; the square's trigger: 5 pictures
    assert html.count('src="data:image/png;base64,') == 3 * 4 + 3 + 2 + 5
    assert html.count('src="data:image/jpeg;base64,') == 3 + 3
    assert 'src="images/' not in html


def test_slug_never_yields_path_parts():
    for label in ["../../etc/passwd", "a/b\\c", "..", "", "naïve cat"]:
        name = slug(label)
        assert name and "/" not in name and "\\" not in name and ".." not in name


def test_files_follow_the_umask(tmp_path):
    """A web server running as another user must be able to read the report: its files
    get the mode the umask gives new files (0644 under umask 022), not mkstemp's 0600."""
    import os
    import stat

    from pytest_actaudit.report.writer import ImageSink, audit_record, write_report
    from tests.reportdata import RUN, sample_audits

    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        folder = tmp_path / f"umask{umask:o}"
        old = os.umask(umask)
        try:
            sink = ImageSink(folder)
            records = [audit_record(audit, sink) for audit in sample_audits()]
            write_report(folder, run=RUN, records=records, outcomes={})
        finally:
            os.umask(old)
        files = [folder / "index.html", folder / "results.json", *folder.glob("images/*")]
        assert len(files) > 2
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: mode for f in files
        }


def test_images_are_stored_at_their_size_lossless_and_once(tmp_path):
    """The report's size: the model's images are stored as they are (lossless PNG at the
    input's size; the page enlarges them), the heat map as JPEG, and the mean of one
    seed is that seed's file, not a copy."""
    import cv2
    import numpy as np

    from pytest_actaudit.report.writer import ImageSink, audit_record
    from tests.reportdata import sample_audits

    audit = sample_audits()[1]
    sink = ImageSink(tmp_path)
    record = audit_record(audit, sink)
    for path, image in zip(record["images"], audit.images, strict=True):
        stored = cv2.cvtColor(cv2.imread(str(tmp_path / path)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(stored, image)
    assert record["heatmap"].endswith(".jpg")
    heat = cv2.imread(str(tmp_path / record["heatmap"]))
    assert heat.shape == audit.images.shape[1:]
    audit.images, audit.seeds = audit.images[:1], audit.seeds[:1]
    audit.steps += 1  # other keys: written anew
    one = audit_record(audit, sink)
    assert one["mean_image"] == one["images"][0]
    assert one["images"] == record["images"][:1]  # the same pixels: the same file
    # 3 seeds, mean, heat map and the trigger's 5 pictures, then only the one-seed heat
    # map is new (the trigger's pictures are the same pixels: not written again)
    assert len(list((tmp_path / "images").iterdir())) == 3 + 1 + 1 + 5 + 1


def test_a_huge_self_contained_page_says_so(report_dir, monkeypatch):  # noqa: F811
    import warnings

    import pytest

    from pytest_actaudit.errors import ActauditWarning
    from pytest_actaudit.report import writer

    with warnings.catch_warnings():
        warnings.simplefilter("error", ActauditWarning)
        cli_main(["report", str(report_dir), "--self-contained"])  # small: nothing said
    monkeypatch.setattr(writer, "SELF_CONTAINED_WARN_BYTES", 10_000)
    with pytest.warns(ActauditWarning, match=r"index.html is \d+ MB.*Use the folder form"):
        cli_main(["report", str(report_dir), "--self-contained"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ActauditWarning)
        cli_main(["report", str(report_dir)])  # the folder form: nothing said


def test_curves_are_stored_to_four_significant_digits(report_dir):  # noqa: F811
    """Every step of every seed's score curve is in results.json: at full precision they
    were most of its size at 1000 classes; 4 digits draw the same line."""
    results = json.loads((report_dir / "results.json").read_text())
    values = [v for audit in results["audits"] for curve in audit["curves"] for v in curve]
    assert values and all(float(f"{v:.4g}") == v for v in values)


def test_where_each_seed_stopped_is_in_results_the_curve_and_the_card(report_dir):  # noqa: F811
    """The stop rule's stop steps: per seed in results.json, a dot on the curve where a
    seed stopped early (its line ends there), and "stopped at 8/10/12 of 12" on the card;
    a card whose seeds ran every step says nothing of it."""
    from pytest_actaudit.report.render import stops_text, svg_curve

    results = json.loads((report_dir / "results.json").read_text())
    steps = {a["label"]: a["stopped_steps"] for a in results["audits"]}
    assert steps["circle"] == [8, 10, 12] and steps["square"] == [12, 12, 12]
    html = (report_dir / "index.html").read_text()
    assert html.count("stopped at 8/10/12 of 12") == 1 and "stopped at 12/12/12" not in html
    assert "each seed stops once p ≥ 0.9" in html
    svg = str(svg_curve([[0.0, 1.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0, 4.0]], [2, 5]))
    assert svg.count("<circle") == 1 and "seed 0 stopped at step 2" in svg
    assert "seed 7 stopped" in str(svg_curve([[0.0, 1.0, 2.0]], [1], [7]))
    first = svg.split('points="')[1].split('"')[0]
    assert len(first.split()) == 3  # drawn to its stop, not along the held value
    assert stops_text(None, 12) == stops_text([12, 12], 12) == ""


def test_a_skipped_audit_is_neither_failed_nor_passed():
    from pytest_actaudit.report.summary import gate_failed
    from pytest_actaudit.report.writer import finalize

    records = [
        {"nodeid": "t::a", "passed": True, "label": "a"},
        {"nodeid": "t::b", "passed": True, "label": "b"},
        {"nodeid": "t::c", "passed": False, "label": "c"},
    ]
    final = finalize(records, {"t::a": "passed", "t::b": "skipped", "t::c": "failed"})
    assert [r["status"] for r in final] == ["passed", "skipped", "failed"]
    assert [gate_failed(r) for r in final] == [False, False, True]


def test_the_header_says_how_the_steps_ended_with_the_rule_and_without(tmp_path):
    import copy

    from pytest_actaudit.report.writer import ImageSink, audit_record, write_report
    from tests.reportdata import RUN, sample_audits

    for change, said in (
        (0.2, "and its last 8 steps changed its image by less than 0.2"),
        (0.2, "3 seeds · at most 12 steps"),  # the step count is a cap
        (0.0, "every seed runs every step"),
        (0.0, "3 seeds · 12 steps"),
    ):
        run = copy.deepcopy(RUN)
        run["models"][0]["engine"]["stop_change"] = change
        folder = tmp_path / f"stop{change}"
        records = [audit_record(audit, ImageSink(folder)) for audit in sample_audits()]
        write_report(folder, run=run, records=records, outcomes={})
        header = (folder / "index.html").read_text().split("</header>")[0]
        assert said in header
