"""A short Markdown summary of a report for CI (``--actaudit-summary FILE.md``,
``actaudit merge --summary``): failed audits first, each failed check with its values
and threshold, then a count of the rest, and where the report is. Appended to
``$GITHUB_STEP_SUMMARY`` when that is set (GitHub Actions shows it on the run's page).
Plain data in, text out: no pytest, no TensorFlow."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_FAILED_ROWS = 200  # a 1000-class model with everything failing stays readable
MAX_PASSED_NAMES = 100


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _values(check: Mapping[str, Any]) -> str:
    values = [float(v) for v in check.get("values", [])]
    return ", ".join(f"{v:.3g}" for v in values)


def _model(audit: Mapping[str, Any]) -> str:
    return Path(str(audit.get("model", ""))).name or str(audit.get("model", ""))


def gate_failed(audit: Mapping[str, Any]) -> bool:
    """Failed as pytest counts it (what fails a CI job): its test failed or errored. An
    expected failure (xfail) or a skipped test is not a failure, whatever the report's
    card shows; an audit whose test outcome is unknown counts by its checks."""
    outcome = audit.get("test_outcome", "unknown")
    if outcome in ("failed", "error"):
        return True
    if outcome in ("passed", "xpassed", "xfailed", "skipped"):
        return False
    return audit.get("status") == "failed"


def markdown(results: Mapping[str, Any], report: str) -> str:
    """The summary of one ``results.json`` (a run, or a merge of shards)."""
    audits: Sequence[Mapping[str, Any]] = results.get("audits", [])
    failed = [a for a in audits if gate_failed(a)]
    expected = [a for a in audits if a.get("test_outcome") == "xfailed"]
    passed = [a for a in audits if not gate_failed(a) and a.get("test_outcome") != "xfailed"]
    run = results.get("run", {})
    shards = run.get("shards")
    where = f" over {len(shards)} shards" if shards else ""
    lines = [
        f"## actaudit: {len(failed)} of {len(audits)} audits failed{where}"
        if failed
        else f"## actaudit: no audit failed, of {len(audits)}{where}"
        + (f" ({len(expected)} expected failure(s))" if expected else ""),
        "",
        f"Report: `{report}` ({run.get('seeds', '?')} seeds, {run.get('steps', '?')} steps)",
        "",
    ]
    if failed:
        lines += [
            "| model | class | check | values per seed | required | test |",
            "|---|---|---|---|---|---|",
        ]
        rows = 0
        for audit in failed:
            bad = [c for c in audit.get("checks", []) if not c.get("passed")]
            if not bad:  # the test failed outside the checks (an error, an exception)
                outcome = audit.get("test_outcome", "failed")
                bad = [{"name": f"test {outcome}", "metric": "", "values": []}]
            for check in bad:
                if rows == MAX_FAILED_ROWS:
                    break
                rows += 1
                required = (
                    f"{check['comparison'].replace('>=', '≥').replace('<=', '≤')} "
                    f"{float(check['threshold']):g}"
                    if "threshold" in check
                    else ""
                )
                name = check["name"] + (f": {check['metric']}" if check.get("metric") else "")
                lines.append(
                    f"| {_cell(_model(audit))} | {_cell(audit.get('label', ''))} "
                    f"| {_cell(name)} | {_values(check)} | {required} "
                    f"| `{_cell(audit.get('nodeid', ''))}` |"
                )
        total = sum(max(1, sum(not c.get("passed") for c in a.get("checks", []))) for a in failed)
        if total > rows:
            lines.append(f"\n… and {total - rows} more failed checks: see the report.")
        lines.append("")
    if expected:
        lines += [
            f"{len(expected)} expected failure(s) (xfail), not counted: "
            + ", ".join(f"{_cell(_model(a))} {_cell(a.get('label', ''))}" for a in expected[:20]),
            "",
        ]
    if passed:
        names = ", ".join(_cell(a.get("label", "")) for a in passed[:MAX_PASSED_NAMES])
        extra = len(passed) - MAX_PASSED_NAMES
        more = f" and {extra} more" if extra > 0 else ""
        lines += [
            f"<details><summary>{len(passed)} audits passed</summary>",
            "",
            names + more,
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def write(path: str | Path | None, text: str) -> list[Path]:
    """Write the summary to ``path`` (atomically) and append it to
    ``$GITHUB_STEP_SUMMARY`` when set; returns where it went."""
    from .writer import atomic_write

    written = []
    if path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text.encode("utf-8"))
        written.append(target)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        written.append(Path(step))
    return written
