"""The end of a session on the controller: every worker's pieces merged, unfinished tests
recorded, ``results.json`` and the pages written, the CI summary, and the terminal lines
(the report, the shard, the time split with ``-v``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .records import input_assumption, models_meta, run_meta, time_split, unfinished_record

if TYPE_CHECKING:
    from .session import ActauditSession


def write_session_report(s: ActauditSession) -> None:
    """Merge, write the report (atomically) and the summary; nothing without records."""
    from ..report.writer import write_results

    began = time.perf_counter()
    records = list(s.records)
    models = models_meta(s.runners)
    stats = s._stats()
    started = list(s.started_nodes)
    finished = set(s.finished_nodes)
    workers: dict[str, str] = {}
    s._pieces.merge_into(records, started, finished, models, stats, workers)
    with_record = {r["nodeid"] for r in records}
    for nodeid in dict.fromkeys(started):
        if nodeid not in with_record and nodeid not in finished:
            records.append(unfinished_record(nodeid, s.outcomes.get(nodeid)))
    if not records and s.shard is None:
        return  # a shard writes its (empty) report all the same: the merge expects one
    records.sort(key=lambda r: (r["model"], r["index"], r["nodeid"]))
    s.models = models
    run = run_meta(s.started, s.settings, s.config, models, stats)
    if workers:
        run["workers"] = workers
    s.report_path, results = write_results(
        s.report_dir, run, records, s.outcomes, s.settings.self_contained
    )
    from ..report.summary import gate_failed

    # failed as pytest counts it: a check that failed, or a test that failed around it
    s.summary = (len(records), sum(1 for a in results["audits"] if gate_failed(a)))
    s._pieces.remove()
    if s.settings.summary:
        write_summary(s, results)
    # the pages' own writing is in the -v line, not in the header they carry
    stats["report_seconds"] += time.perf_counter() - began
    s.time_split = time_split(time.time() - s.started, stats)


def write_summary(s: ActauditSession, results: dict[str, Any]) -> None:
    """``--actaudit-summary FILE.md`` (and ``$GITHUB_STEP_SUMMARY``) from the report's
    results, as written."""
    from ..report import summary

    text = summary.markdown(results, str(s.report_path))
    try:
        s.summary_paths = summary.write(s.settings.summary, text)
    except OSError as exc:  # the report is written: say so, do not lose it
        s.report_error = f"could not write the summary {s.settings.summary!r}: {exc}"


def terminal_summary(s: ActauditSession, terminalreporter: Any) -> None:
    if s.shard_note:
        terminalreporter.write_line(f"actaudit: {s.shard_note}")
    if s.report_error:
        terminalreporter.write_line(f"actaudit: {s.report_error}", red=True)
    for meta in s.models:  # models the header could not read (a conftest.py fixture's)
        said = input_assumption(meta)
        if said and meta["name"] not in s.input_noted:
            terminalreporter.write_line(f"actaudit: {said}", yellow=True)
    if s.report_path:
        total, failed = s.summary
        terminalreporter.write_line(
            f"actaudit: report with {total} audit{'s' if total != 1 else ''} "
            f"({failed} failed) written to {s.report_path}"
        )
        for path in s.summary_paths:
            terminalreporter.write_line(f"actaudit: summary written to {path}")
        if s.config.getoption("verbose") > 0:
            terminalreporter.write_line(f"actaudit: time: {s.time_split}")
