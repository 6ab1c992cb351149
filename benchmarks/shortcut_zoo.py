"""The shortcut zoo: how often ``assert_no_shortcut()`` (defaults) catches a planted
shortcut, how often it flags a clean class, and what the probe costs.

    python benchmarks/shortcut_zoo.py                # whole zoo (trains what is not cached)
    python benchmarks/shortcut_zoo.py --quick        # 3 models: CI smoke
    python benchmarks/shortcut_zoo.py --json out.json
    python benchmarks/shortcut_zoo.py --held-out     # models the defaults never saw
    python benchmarks/shortcut_zoo.py --novel        # the kinds drawn otherwise, never seen
    python benchmarks/shortcut_zoo.py --architectures  # every kind on two other architectures
    python benchmarks/shortcut_zoo.py --suspects     # assert_ignores: each artifact named

Models come from :mod:`benchmarks.zoo` (cached by content hash under
``$ACTAUDIT_ZOO_CACHE`` or ``~/.cache/pytest-actaudit/zoo``; the whole zoo trains in about
40 minutes on 2 CPU cores, once). Every class of every model is audited as a user would:
``pytest_actaudit.maximize(model, "all", seeds=3, references=...)`` (default steps), then
``audit.assert_no_shortcut()`` with its default threshold, references = 20 trusted,
artifact-free images per class.

A planted class counts as a shortcut only where the artifact really pulls: pasted alone
into other classes' test images it makes the model read at least half of them as the
planted class (``pull`` ≥ 0.5, measured on fresh images). Models whose artifact pulls
less are listed apart: they did not learn a shortcut (the object was easier).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from typing import Any

# run as a script: the repository root on the path, for `benchmarks.*` (the zoo, the reference)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHORTCUT_PULL = 0.5


def audit_model(spec: Any, references: Any) -> dict[str, Any]:
    import keras

    import pytest_actaudit
    from benchmarks import zoo
    from pytest_actaudit import ActauditError, AuditFailure
    from pytest_actaudit.demo import LABELS

    path, info = zoo.train(spec)
    model = keras.models.load_model(path)
    began = time.perf_counter()
    audits = pytest_actaudit.maximize(
        model, "all", seeds=3, labels=list(LABELS), references=references
    )
    optimize_seconds = time.perf_counter() - began
    classes = []
    for audit in audits:
        began = time.perf_counter()
        try:
            audit.assert_no_shortcut()
            flagged = False
        except AuditFailure:
            flagged = True
        except ActauditError as exc:  # references the model cannot read: no comparison
            classes.append(
                {
                    "class": audit.label,
                    "planted": audit.index == spec.artifact_class,
                    "flagged": None,
                    "refused": str(exc),
                }
            )
            continue
        probe_seconds = time.perf_counter() - began
        result = audit.probe_result
        classes.append(
            {
                "class": audit.label,
                "planted": audit.index == spec.artifact_class,
                "flagged": flagged,
                "excess": [float(v) for v in result.excess],
                "evidence": result.strongest.kind,
                "where": result.strongest.describe(),
                "per_evidence": {e.kind: float(e.score) for e in result.evidence},
                "transplant_control": {e.kind: e.transplant_control for e in result.evidence},
                "flips_per_evidence": {
                    e.kind: [float(v) for v in e.flip_rates] for e in result.evidence
                },
                "excess_per_evidence": {
                    e.kind: [float(v) for v in e.excess] for e in result.evidence
                },
                "novelty": [
                    float(v) for e in result.evidence if e.novelty is not None for v in e.novelty
                ],
                "reference_accuracy": result.class_accuracy,
                "probe_seconds": probe_seconds,
            }
        )
    keras.backend.clear_session()
    return {
        "model": spec.name,
        "arch": spec.arch,
        "kind": spec.kind,
        "share": spec.share,
        "seed": spec.seed,
        "accuracy": info["accuracy"],
        "class_accuracy": info.get("class_accuracy"),
        "pull": info["pull"],
        "optimize_seconds": optimize_seconds,
        "classes": classes,
    }


def _refused(row: dict[str, Any]) -> bool:
    return any(c["flagged"] is None for c in row["classes"])


def _learned(row: dict[str, Any]) -> bool:
    """A shortcut model whose artifact really pulls, and whose references were read."""
    return row["kind"] is not None and row["pull"] >= SHORTCUT_PULL and not _refused(row)


def table(rows: list[dict[str, Any]]) -> str:
    out = []
    by_cell: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] is not None:
            by_cell[(row["kind"], row["share"])].append(row)
    out.append(
        "| artifact | share | models | learned it (pull ≥ 0.5) | caught | recall | "
        "clean references read right | strongest evidence when caught |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for (kind, share), cell in sorted(by_cell.items()):
        learned = [r for r in cell if _learned(r)]
        caught = [r for r in learned if any(c["planted"] and c["flagged"] for c in r["classes"])]
        evidence = sorted(
            {c["evidence"] for r in caught for c in r["classes"] if c["planted"] and c["flagged"]}
        )
        recall = f"{len(caught) / len(learned):.0%}" if learned else "–"
        accuracy = ", ".join(f"{r['class_accuracy']:.0%}" for r in cell)
        pulls = ", ".join(f"{r['pull']:.2f}" for r in cell)
        out.append(
            f"| {kind} | {share:g} | {len(cell)} | {len(learned)} (pull {pulls}) | "
            f"{len(caught)} | {recall} | {accuracy} | {', '.join(evidence) or '–'} |"
        )
    refused = [r["model"] for r in rows if _refused(r)]
    kept = [r for r in rows if not _refused(r)]
    clean = [c for r in kept if r["kind"] is None for c in r["classes"]]
    others = [c for r in kept if r["kind"] is not None for c in r["classes"] if not c["planted"]]
    out.append("")
    out.append("| clean classes | audited | flagged (false alarms) |")
    out.append("|---|---|---|")
    for name, group in (("of clean models", clean), ("unplanted, of shortcut models", others)):
        flagged = [c for c in group if c["flagged"]]
        out.append(f"| {name} | {len(group)} | {len(flagged)} |")
    if refused:
        out.append("")
        out.append(
            "Refused (the model reads its trusted references near chance, so nothing is "
            f"compared): {', '.join(refused)}."
        )
    optimize = sum(r["optimize_seconds"] / len(r["classes"]) for r in rows) / max(1, len(rows))
    probes = [c["probe_seconds"] for r in rows for c in r["classes"] if "probe_seconds" in c]
    probe = sum(probes) / max(1, len(probes))
    if optimize > 0:  # no model audited (an empty --cached run): no cost to give
        out.append("")
        out.append(
            f"Cost per class: optimization {optimize:.2f} s (3 seeds, default steps, whole "
            f"model in one batch, first call included), probe {probe:.2f} s: "
            f"probe ÷ optimization {probe / optimize:.2f}."
        )
    return "\n".join(out)


SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7)


def sweep(rows: list[dict[str, Any]], thresholds: tuple[float, ...] = SWEEP) -> str:
    """The default's neighbourhood on the same run: recall and false alarms at other
    ``max_flip_rate`` values, with every evidence and with each evidence alone. The check
    fails when the strongest evidence's score (its median excess over seeds, or a decisive
    seed's) is above the threshold, i.e. when any evidence's is."""
    learned = [r for r in rows if _learned(r)]
    positives = [c for r in learned for c in r["classes"] if c["planted"]]
    high = [c for r in learned if r["share"] >= 0.6 for c in r["classes"] if c["planted"]]
    kept = [r for r in rows if not _refused(r)]
    clean = [c for r in kept for c in r["classes"] if not c["planted"] or r["kind"] is None]
    kinds = list(dict.fromkeys(k for c in positives + clean for k in c["excess_per_evidence"]))

    def score(c: dict[str, Any], kind: str | None = None) -> float:
        per = c["per_evidence"]  # each evidence's score, as the check reads it
        chosen = [kind] if kind is not None else list(per)
        return max((float(per[k]) for k in chosen if k in per), default=0.0)

    def flagged(group: list[dict[str, Any]], t: float, kind: str | None = None) -> int:
        return sum(score(c, kind) > t for c in group)

    head = ["threshold", "recall", "at share ≥ 0.6", f"false alarms (of {len(clean)})"]
    head += [f"{k} alone: caught, false alarms" for k in kinds]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in thresholds:
        cells = [
            f"{t:g}",
            f"{flagged(positives, t)}/{len(positives)}",
            f"{flagged(high, t)}/{len(high)}",
            str(flagged(clean, t)),
        ]
        cells += [f"{flagged(positives, t, k)}, {flagged(clean, t, k)}" for k in kinds]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


SUSPECT_THRESHOLDS = (0.1, 0.25, 0.4, 0.5)


def public_suspects() -> dict[str, Any]:
    """The zoo's artifacts (64 px) as a user names them with ``pytest_actaudit.checks.artifacts``:
    pixel for pixel what the zoo painted (tested). The dot at random places and the
    replaced backgrounds have no public constructor; the zoo paints them."""
    from pytest_actaudit.checks import artifacts

    return {
        "fixed-patch": artifacts.square(x=5, y=50, size=6, colour=(255, 140, 0)),
        "square-patch": artifacts.square(x=48, y=8, size=5, colour=(0, 200, 0)),
        "strip": artifacts.band("bottom", 3, (255, 0, 255)),
        "side-strip": artifacts.band("left", 2, (255, 230, 0)),
        "frame": artifacts.frame(3, 128),
        "blue-frame": artifacts.frame(2, (30, 60, 255)),
        "cast": artifacts.cast((1.0, 0.85, 0.6), (50.0, 15.0, 0.0)),
        "cool-cast": artifacts.cast((0.7, 0.9, 1.0), (0.0, 10.0, 45.0)),
        "tag": artifacts.text("wm", x=40, y=58, scale=0.35, opacity=0.7),
        "logo": artifacts.text("(c)", x=4, y=10, scale=0.3, opacity=0.75),
    }


def suspect_model(spec: Any, references: Any) -> list[dict[str, Any]]:
    """``assert_ignores`` as a user would name a suspect: a shortcut model's own
    artifact against every class, and every kind of artifact (the zoo's and the novel
    ones) against every class of a clean model. ``references``: (images, labels,
    masks), the masks for the artifacts that replace the background. A model whose
    references ``assert_ignores`` would refuse (read near chance) gives no rows."""
    import keras
    import numpy as np

    from benchmarks import zoo
    from pytest_actaudit import ActauditError, artifacts
    from pytest_actaudit.checks.probe import check_references_are_read
    from pytest_actaudit.demo import LABELS

    images, labels, masks = references
    path, info = zoo.train(spec)
    model = keras.models.load_model(path)

    seen: dict[tuple[Any, ...], Any] = {}
    logits = zoo.outputs_logits(model)

    def predict(x: Any) -> Any:
        # measure() pastes a suspect into the same references for every class: predict
        # each edited set once. Probabilities, as the plugin gives them (a model with raw
        # logits is squashed, as the engine does).
        key = (x.shape, x.dtype.str, hashlib.sha256(x.tobytes()).digest())
        if key not in seen:
            out = np.asarray(model.predict(x, batch_size=512, verbose=0), np.float64)
            if logits:
                out = np.exp(out - out.max(axis=1, keepdims=True))
                out /= out.sum(axis=1, keepdims=True)
            out.setflags(write=False)
            seen[key] = out
        return seen[key]

    try:
        check_references_are_read(images, labels, predict(images))
    except ActauditError:
        keras.backend.clear_session()
        return []
    public = public_suspects() if spec.size == zoo.SIZE else {}  # else the zoo paints them
    rows = []
    for kind in [spec.kind] if spec.kind else list(zoo.ALL_KINDS):
        suspect = public.get(kind) or artifacts.Artifact(
            kind, lambda x, k=kind: zoo.apply_artifact(k, x, masks)
        )
        for index, label in enumerate(LABELS):
            reading = artifacts.measure(index, suspect, images, labels, predict)
            rows.append(
                {
                    "model": spec.name,
                    "model_kind": spec.kind,
                    "suspect": kind,
                    "class": label,
                    "planted": index == spec.artifact_class,
                    "learned": spec.kind is not None and info["pull"] >= SHORTCUT_PULL,
                    "pull": reading.pull,
                    "clearly": reading.clearly,
                    "own_without": reading.own_without,
                    "own_with": reading.own_with,
                }
            )
    keras.backend.clear_session()
    return rows


def suspect_table(rows: list[dict[str, Any]]) -> str:
    """Recall and alarms of ``assert_ignores`` at several ``max_pull``: a learned
    shortcut's planted class named with its own artifact should fail; every class of a
    clean model named with any artifact, and the other classes of a shortcut model named
    with its artifact, are the alarms (a shape-like artifact counted apart: a solid
    square *is* a shape in this data set)."""
    from benchmarks import zoo

    shape_like = set(zoo.SHAPE_LIKE_KINDS) | {"square-patch"}
    learned = [r for r in rows if r["planted"] and r["learned"]]
    clean = [r for r in rows if r["model_kind"] is None]
    unplanted = [r for r in rows if r["model_kind"] is not None and not r["planted"]]

    def over(group: list[dict[str, Any]], t: float) -> int:
        return sum(r["pull"] > t for r in group)

    out = [
        "| max_pull | learned shortcuts caught | clean models' classes × artifacts "
        "flagged (shape-like artifacts) | unplanted classes flagged |",
        "|---|---|---|---|",
    ]
    for t in SUSPECT_THRESHOLDS:
        like = [r for r in clean if r["suspect"] in shape_like]
        out.append(
            f"| {t:g} | {over(learned, t)}/{len(learned)} | {over(clean, t)}/{len(clean)} "
            f"({over(like, t)}) | {over(unplanted, t)}/{len(unplanted)} |"
        )
    if learned:
        from pytest_actaudit.checks.artifacts import DEFAULT_MAX_PULL

        weakest = min(learned, key=lambda r: r["pull"])
        out.append("")
        out.append(
            f"Weakest learned shortcut: {weakest['model']} ({weakest['class']}), pull "
            f"{weakest['pull']:.2f}. Clean pairs above 0.25: "
            + (
                ", ".join(
                    f"{r['model']} {r['class']} × {r['suspect']} {r['pull']:.2f}"
                    f"{' (above the default)' if r['pull'] > DEFAULT_MAX_PULL else ''}"
                    for r in clean
                    if r["pull"] > 0.25
                )
                or "none"
            )
            + "."
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write every class's numbers here")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--quick", action="store_true", help="3 zoo models (CI smoke)")
    models.add_argument(
        "--held-out", action="store_true", help="the held-out models (zoo.held_out_specs)"
    )
    models.add_argument(
        "--novel",
        action="store_true",
        help="the zoo's kinds drawn otherwise: other colours, places, shapes (zoo.novel_specs)",
    )
    models.add_argument(
        "--architectures",
        action="store_true",
        help="every kind on the architectures the zoo was not built of (zoo.architecture_specs)",
    )
    parser.add_argument("--cached", action="store_true", help="only models already trained")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the rows already in --json (same models)"
    )
    parser.add_argument(
        "--suspects",
        action="store_true",
        help="assert_ignores instead: each model's artifact named as a suspect",
    )
    args = parser.parse_args(argv)

    from benchmarks import zoo

    specs = (
        zoo.held_out_specs()
        if args.held_out
        else zoo.novel_specs()
        if args.novel
        else zoo.architecture_specs()
        if args.architectures
        else zoo.specs()
    )
    if args.quick:
        specs = [s for s in specs if s.name in ("tag-1-s1", "cast-1-s1", "clean-s1")]
    if args.cached:
        specs = [s for s in specs if zoo.is_cached(s)]
    if args.suspects:
        from pytest_actaudit.demo import LABELS
        from pytest_actaudit.demo.shapes import make_shapes_with_masks

        # the same images as zoo.references(20), with their masks, once per image size
        masked = {
            size: make_shapes_with_masks(20 * len(LABELS), seed=zoo.REFERENCE_SEED, size=size)
            for size in {spec.size for spec in specs}
        }
        rows = []
        for spec in specs:
            rows += suspect_model(spec, masked[spec.size])
            print(f"{spec.name:<22} named", flush=True)
        return _finish([suspect_table(rows)], rows, args.json)
    references = {size: zoo.references(20, size) for size in {spec.size for spec in specs}}
    done: dict[str, Any] = {}
    if args.resume and args.json and os.path.exists(args.json):
        with open(args.json, encoding="utf-8") as handle:
            done = {row["digest"]: row for row in json.load(handle) if "digest" in row}
    rows = []
    for spec in specs:
        row = done.get(spec.digest()) or audit_model(spec, references[spec.size])
        row["digest"] = spec.digest()
        rows.append(row)
        planted = [c for c in row["classes"] if c["planted"] and "excess" in c]
        flagged = [c["class"] for c in row["classes"] if c["flagged"]]
        print(
            f"{row['model']:<22} pull {row['pull']:.2f} "
            f"planted excess {planted[0]['excess'] if planted else '-'} "
            f"flagged {flagged}",
            flush=True,
        )
        if args.json:  # after each model: an interrupted run can --resume
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(rows, handle, indent=1)
    return _finish(tables(rows), rows, args.json)


def tables(rows: list[dict[str, Any]]) -> list[str]:
    """The recall table and the sweep; with models of several architectures, a recall
    table per architecture (rows without one are the zoo's CNN) and one sweep of all."""
    archs = list(dict.fromkeys(row.get("arch", "cnn") for row in rows))
    if len(archs) <= 1:
        return [table(rows), sweep(rows)]
    per_arch = [
        f"Architecture {arch}:\n\n" + table([r for r in rows if r.get("arch", "cnn") == arch])
        for arch in archs
    ]
    return [*per_arch, "All architectures:\n\n" + sweep(rows)]


def _finish(tables: list[str], rows: list[Any], path: str | None) -> int:
    """Print the tables; write every row to ``path`` when given."""
    for text in tables:
        print()
        print(text)
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
