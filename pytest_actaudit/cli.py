"""The ``actaudit`` command: re-render a report, write the demo project."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


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
        skip = (".", "__pycache__", "actaudit-report", "keras_applications")  # not the demo
        if any(part.startswith(skip) for part in rel.parts):
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
    args = parser.parse_args(argv)

    try:
        if args.command == "report":
            from .report import rerender

            print(f"actaudit: wrote {rerender(args.folder, self_contained=args.self_contained)}")
        else:
            files = write_demo(args.folder)
            print(f"actaudit: wrote {len(files)} files to {args.folder}")
            print(
                f"next: cd {args.folder} && pytest --actaudit (report: actaudit-report/index.html)"
            )
    except (OSError, ValueError) as exc:
        print(f"actaudit: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
