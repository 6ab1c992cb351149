"""Size of the report for many classes: ``python benchmarks/report_size.py [--classes 100]``.

Builds records for N classes × 4 seeds of 64 px class-maximization-like images (smooth
noise, as the Fourier parametrization makes), a shortcut probe and a heat map per class,
writes the report both ways and prints the sizes: the folder's files by kind (seed
images, mean, heat map, probe pictures) and the self-contained page.
``--classes 1000 --seeds 1 --side 96 --no-probe`` is an ImageNet-sized zero-code run
(docs/report.md). ``--folder DIR`` measures a report folder already written instead
(e.g. the demo's ``actaudit-report``).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pytest_actaudit import ClassAudit
from pytest_actaudit.checks.probe import Evidence, ProbeResult
from pytest_actaudit.report.writer import ImageSink, audit_record, write_report


def smooth_noise(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    small = rng.integers(0, 256, (n, side // 4, side // 4, 3)).astype(np.uint8)
    return np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC) for s in small])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--no-probe", action="store_true", help="no shortcut probe pictures")
    parser.add_argument("--no-self-contained", action="store_true", help="the folder form only")
    parser.add_argument("--folder", type=Path, help="measure this report folder instead")
    args = parser.parse_args()
    if args.folder:
        print(f"{args.folder}: {folder_sizes(args.folder)}")
        return
    rng = np.random.default_rng(0)
    audits = []
    for k in range(args.classes):
        images = smooth_noise(rng, args.seeds, args.side)
        audit = ClassAudit(
            label=f"class {k}",
            index=k,
            images=images,
            logits=np.full(args.seeds, 5.0),
            probabilities=np.full(args.seeds, 0.99),
            seeds=list(range(args.seeds)),
            steps=128,
            curves=np.cumsum(rng.uniform(0, 1, (args.seeds, 128)), axis=1),
            attribution=rng.uniform(0, 1, (args.seeds, args.side, args.side)).astype(np.float32),
            model_name="model.keras",
            nodeid=f"test_x.py::test[{k}]",
        )
        examples = list(smooth_noise(rng, 4, args.side))
        if args.no_probe:
            audits.append(audit)
            continue
        audit.probe_result = ProbeResult(
            evidence=[
                Evidence(
                    kind=kind,
                    where="",
                    flip_rates=np.zeros(args.seeds),
                    control_rate=0.0,
                    examples=examples if kind == "window" else [],
                    component=examples[0],
                )
                for kind in ("window", "unseen detail", "colour", "low frequencies")
            ],
            references_of_class=20,
            references_of_others=60,
            class_accuracy=1.0,
        )
        audits.append(audit)
    run = {
        "models": [],
        "seeds": args.seeds,
        "steps": 128,
        "device_setting": "auto",
        "wall_seconds": 0.0,
        "optimize_seconds": 0.0,
        "optimized_images": 0,
        "cache_hits": 0,
        "command": "pytest --actaudit",
    }
    for self_contained in (False, True)[: 1 if args.no_self_contained else 2]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            began = time.perf_counter()
            sink = ImageSink(folder)
            records = [audit_record(a, sink) for a in audits]
            index = write_report(
                folder, run=run, records=records, outcomes={}, self_contained=self_contained
            )
            seconds = time.perf_counter() - began
            what = f"{args.classes} classes × {args.seeds} seeds at {args.side} px"
            if self_contained:
                print(
                    f"{what}, self-contained: index.html {index.stat().st_size / 1e6:.1f} MB, "
                    f"written in {seconds:.1f} s"
                )
            else:
                print(f"{what}, folder: {folder_sizes(folder)}; written in {seconds:.1f} s")


# label-kind-digest: what an image is, from its name (report/writer.py names them)
KIND = re.compile(
    r"-(seed\d+|mean|heat|base\d+|diff\d+|probe-part|probe\d+|suspect\d+-\d+)-[0-9a-f]{12}$"
)


def folder_sizes(folder: Path) -> str:
    """The folder's total, its pages, and its images by kind (from the file names)."""
    kinds: dict[str, list[int]] = defaultdict(list)
    for path in (folder / "images").glob("*"):
        found = KIND.search(path.stem)
        kind = re.sub(r"\d+", "N", found.group(1) if found else "other") + path.suffix
        kinds[kind].append(path.stat().st_size)
    pages = sum(p.stat().st_size for p in folder.glob("*.html"))
    results = (folder / "results.json").stat().st_size
    images = sum(sum(sizes) for sizes in kinds.values())
    parts = ", ".join(
        f"{kind} {len(sizes)} × {sum(sizes) / len(sizes) / 1e3:.1f} kB"
        for kind, sizes in sorted(kinds.items())
    )
    return (
        f"{(pages + results + images) / 1e6:.1f} MB in all: pages {pages / 1e6:.2f} MB, "
        f"results.json {results / 1e6:.2f} MB, images {images / 1e6:.1f} MB "
        f"in {sum(len(v) for v in kinds.values())} files ({parts})"
    )


if __name__ == "__main__":
    main()
