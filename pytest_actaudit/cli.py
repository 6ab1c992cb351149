"""The ``actaudit`` command: re-render a report, write the demo project, merge shards."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import ActauditError


def example_source() -> Path:
    """The example project: inside the installed package, else the checkout's examples/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "demo" / "example", here.parent / "examples"):
        if (candidate / "pytest.ini").is_file():
            return candidate
    raise FileNotFoundError(f"example project not found beside {here}; reinstall pytest-actaudit")


def write_demo(target: Path) -> list[Path]:
    """Copy the example project (pytest.ini, conftest.py, tests) into ``target``."""
    source = example_source()
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        # the other examples are not the demo
        skip = {"__pycache__", "actaudit-report", "keras_applications", "imagenet", "ci"}
        if any(part.startswith(".") or part in skip for part in rel.parts):
            continue
        dest = target / rel
        if path.is_dir():
            dest.mkdir(exist_ok=True)
        else:
            if dest.exists():
                raise FileExistsError(f"{dest} exists; choose an empty folder")
            shutil.copyfile(path, dest)
            written.append(dest)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="actaudit", description="pytest-actaudit: class-maximization audits of Keras models"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="re-render DIR/index.html from DIR/results.json")
    rep.add_argument("folder", type=Path, metavar="DIR")
    rep.add_argument("--self-contained", action="store_true", help="inline the images")
    demo = sub.add_parser("demo", help="write the demo model project into DIR")
    demo.add_argument("folder", type=Path, metavar="DIR")
    merge = sub.add_parser(
        "merge",
        help="one report in OUT from the report folders of --actaudit-shard jobs "
        "(exit 1 when an audit failed, as pytest)",
    )
    merge.add_argument("out", type=Path, metavar="OUT")
    merge.add_argument("folders", type=Path, nargs="+", metavar="DIR")
    merge.add_argument("--self-contained", action="store_true", help="inline the images")
    merge.add_argument(
        "--summary",
        metavar="FILE.md",
        help="also write the Markdown summary (and append it to $GITHUB_STEP_SUMMARY when set)",
    )
    args = parser.parse_args(argv)

    try:
        if args.command == "merge":
            return _merge(args)
        if args.command == "report":
            from .report import rerender

            print(f"actaudit: wrote {rerender(args.folder, self_contained=args.self_contained)}")
        else:
            files = write_demo(args.folder)
            print(f"actaudit: wrote {len(files)} files to {args.folder}")
            print(
                f"next: cd {args.folder} && pytest --actaudit (report: actaudit-report/index.html)"
            )
    except (OSError, ValueError, ActauditError) as exc:
        print(f"actaudit: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .report import summary
    from .report.merge import merge_reports

    index, results = merge_reports(args.out, args.folders, self_contained=args.self_contained)
    audits = results["audits"]
    failed = [a for a in audits if summary.gate_failed(a)]
    print(
        f"actaudit: merged {len(args.folders)} report folders, {len(audits)} audits "
        f"({len(failed)} failed) into {index}"
    )
    missing = results["run"].get("missing_shards") or []
    if missing:
        print(f"actaudit: warning: no report of shard(s) {', '.join(missing)}", file=sys.stderr)
    if args.summary:  # as the plugin: with --summary, also to $GITHUB_STEP_SUMMARY
        try:
            for path in summary.write(args.summary, summary.markdown(results, str(index))):
                print(f"actaudit: summary written to {path}")
        except OSError as exc:  # the report is merged: keep the audits' verdict
            print(f"actaudit: error: could not write the summary: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
