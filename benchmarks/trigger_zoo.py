"""The trigger search (its held-out lift, ``pytest_actaudit.checks.trigger``) measured on
the shortcut zoo's three architectures and on the real ImageNet model, beside today's
``assert_no_shortcut`` on the same models.

Per zoo model: every class's trigger from the trusted references (``zoo.references(20)``),
its lift among the model's 4 classes, and the automatic check's verdict
(``shortcut_zoo.audit_model``: ``maximize(..., seeds=3)`` at default steps, then
``assert_no_shortcut()``; ``--compare-from OLD.json`` takes those from an earlier run's
rows instead). Positives: the planted class of a model that learned its artifact (pull
≥ 0.5); negatives: every class of a clean model and the unplanted classes of the others.
Per architecture: ROC-AUC of the lift, recall and false alarms at the threshold beside
the automatic check's, cost per class beside the class's own maximization.

    python benchmarks/trigger_zoo.py --json trigger.json [--cached] [--real] [--search-seeds 0,1,2]

``--search-seeds``: the search again from each seed (its starting masks and patterns, and
which references it fits and tests on). The search is an optimization from a random start
on a few images: a class's held-out success moves from seed to seed, and so does a
one-seed ROC-AUC. The table gives each seed's ROC-AUC and the lift of the mean held-out
success over the seeds (the check's score with its search run once per seed).

``--real``: EfficientNet-Lite0 (examples/imagenet, offline once cached) on its 60 photo
views: carton (the ImageNet-W watermark's class, a learned shortcut, no planted trigger)
against a sample of 20 other classes as the null.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "imagenet"
CARTON = 478


def zoo_module() -> Any:
    """The zoo, wherever the layout keeps it."""
    try:
        from benchmarks import zoo
    except ImportError:  # the layout before the zoo left the wheel
        from pytest_actaudit.demo import zoo  # type: ignore[no-redef]
    return zoo


def the_specs(seeds: tuple[int, ...]) -> list[Any]:
    """The zoo's CNN models (shares 0.75 and 1.0) and both other architectures'."""
    zoo = zoo_module()
    cnn = [s for s in zoo.specs() if s.kind is None or s.share in (0.75, 1.0)]
    return cnn + zoo.architecture_specs(seeds=seeds)


def triggers_of(model: Any, references: Any, targets: list[int], settings: Any) -> Any:
    """(the readings per target, the triggers, seconds per class) of one model."""
    from pytest_actaudit.checks import trigger as judge
    from pytest_actaudit.engine.trigger import TriggerSearch
    from pytest_actaudit.model import inputs as model_mod

    images, labels = references
    search = TriggerSearch(model, model_mod.input_spec(model), settings)
    began = time.perf_counter()
    found = search.run(images, labels, targets)
    seconds = (time.perf_counter() - began) / len(targets)
    edits = {t.target: judge.Edit(t.mask_size, t.held_out) for t in found}
    return [judge.read(edits, t) for t in targets], found, seconds


def zoo_model(
    spec: Any, references: Any, settings: list[Any], compare: bool, earlier: dict[str, Any]
) -> dict[str, Any]:
    """One zoo model's row: the automatic check's (when ``compare``; from ``earlier``,
    an earlier run's row, when given) and the triggers', once per search settings (the
    first's is the row's ``trigger``, every one's in ``by_seed``)."""
    import keras

    from benchmarks import shortcut_zoo

    zoo = zoo_module()
    path, info = zoo.train(spec)
    if earlier:
        row = {k: v for k, v in earlier.items() if k != "trigger_seconds"}
        row["classes"] = [
            {k: v for k, v in c.items() if k not in ("trigger", "by_seed")} for c in row["classes"]
        ]
    elif compare:
        row = shortcut_zoo.audit_model(spec, references)
    else:
        row = {
            "model": spec.name,
            "arch": spec.arch,
            "kind": spec.kind,
            "share": spec.share,
            "seed": spec.seed,
            "pull": info["pull"],
            "classes": [{"planted": k == spec.artifact_class, "flagged": None} for k in range(4)],
        }
    model = keras.models.load_model(path)
    for number, one in enumerate(settings):
        readings, found, seconds = triggers_of(model, references, list(range(4)), one)
        if number == 0:
            row["trigger_seconds"] = seconds
        for c, reading, t in zip(row["classes"], readings, found, strict=True):
            record = {**reading.to_dict(), "success": t.success, "seed": one.seed}
            c.setdefault("by_seed", []).append(record)
            if number == 0:
                c["trigger"] = record
    keras.backend.clear_session()
    return row


def runs_of(c: dict[str, Any]) -> list[dict[str, Any]]:
    """A class's readings, one per search seed (a row from before the seeds: its one)."""
    runs: list[dict[str, Any]] = c.get("by_seed", [c["trigger"]])
    return runs


def rejudge(rows: list[dict[str, Any]]) -> None:
    """Each class's reading again (every search seed's, and its ``mean_lift`` over them)
    from the stored sizes and held-out shares, with today's judge: a change of the score
    needs no model run. The tables read what this derives."""
    from pytest_actaudit.checks.trigger import Edit, read

    for row in rows:
        classes = [c for c in row["classes"] if "trigger" in c]
        runs = [runs_of(c) for c in classes]
        for n in range(min(map(len, runs), default=0)):
            edits = {k: Edit(r[n]["size"], r[n]["held_out"]) for k, r in enumerate(runs)}
            for k, r in enumerate(runs):
                r[n].update(read(edits, k).to_dict())
        for c, value in zip(row["classes"], mean_lifts(row), strict=True):
            c["mean_lift"] = value


def _groups(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    positives, negatives = [], []
    for row in rows:
        learned = row["kind"] is not None and row["pull"] >= 0.5
        for c in row["classes"]:
            if c["planted"] and learned:
                positives.append(c)
            elif not c["planted"]:
                negatives.append(c)
    return positives, negatives


def mean_lifts(row: dict[str, Any]) -> list[float]:
    """Each class's lift from its held-out success averaged over the search seeds."""
    from pytest_actaudit.checks.trigger import lift

    held = {
        k: float(np.mean([r["held_out"] for r in runs_of(c)]))
        for k, c in enumerate(row["classes"])
    }
    return [lift(held, k) for k in held]


def seed_aucs(rows: list[dict[str, Any]]) -> str:
    """Each search seed's ROC-AUC of the lift, for rows of one architecture."""
    from pytest_actaudit.checks.trigger import roc_auc

    pos, neg = _groups(rows)
    runs = min((len(runs_of(c)) for c in pos + neg), default=0)
    aucs = [
        roc_auc([runs_of(c)[n]["lift"] for c in pos], [runs_of(c)[n]["lift"] for c in neg])
        for n in range(runs)
    ]
    return ", ".join(f"{a:.2f}" for a in aucs)


def table(rows: list[dict[str, Any]], threshold: float) -> str:
    """Per architecture: ROC-AUC (each search seed's, and of the lift of the mean
    held-out success over the seeds), recall and false alarms of that lift and of
    assert_no_shortcut; cost per class."""
    from pytest_actaudit.checks.trigger import roc_auc

    out = [
        "| architecture | models | shortcuts learned | ROC-AUC per search seed | "
        "trigger ROC-AUC (mean over seeds) | trigger recall | "
        "trigger false alarms | assert_no_shortcut recall | its false alarms | "
        "trigger s/class | maximization s/class |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch in dict.fromkeys(r.get("arch", "cnn") for r in rows):
        group = [r for r in rows if r.get("arch", "cnn") == arch]
        pos, neg = _groups(group)
        score = [c["mean_lift"] for c in pos]
        null = [c["mean_lift"] for c in neg]
        caught = sum(s > threshold for s in score)
        alarms = sum(s > threshold for s in null)
        judged = [c for c in pos if c["flagged"] is not None]
        judged_neg = [c for c in neg if c["flagged"] is not None]
        check = f"{sum(bool(c['flagged']) for c in judged)}/{len(judged)}" if judged else "–"
        check_alarms = (
            f"{sum(bool(c['flagged']) for c in judged_neg)}/{len(judged_neg)}"
            if judged_neg
            else "–"
        )
        optimize = [
            r["optimize_seconds"] / len(r["classes"]) for r in group if "optimize_seconds" in r
        ]
        out.append(
            f"| {arch} | {len(group)} | {len(pos)} | {seed_aucs(group)} | "
            f"{roc_auc(score, null):.2f} | "
            f"{caught}/{len(pos)} | {alarms}/{len(neg)} | {check} | {check_alarms} | "
            f"{np.mean([r['trigger_seconds'] for r in group]):.2f} | "
            f"{np.mean(optimize) if optimize else float('nan'):.2f} |"
        )
    return "\n".join(out)


def per_kind(rows: list[dict[str, Any]], threshold: float) -> str:
    """The planted class's lift per model (learned shortcuts only)."""
    out = [
        "| model | pull | lift, first seed (held out, rank) | lift per seed | mean-over-seeds "
        "lift | flagged by trigger | by assert_no_shortcut |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["kind"] is None or row["pull"] < 0.5:
            continue
        c = next(c for c in row["classes"] if c["planted"])
        t = c["trigger"]
        out.append(
            f"| {row['model']} | {row['pull']:.2f} | {t['lift']:+.2f} ({t['held_out']:.2f}, "
            f"{t['rank']} of {t['compared']}) | "
            f"{', '.join(format(r['lift'], '+.2f') for r in runs_of(c))} | "
            f"{c['mean_lift']:+.2f} | {'yes' if c['mean_lift'] > threshold else 'no'} | "
            f"{'–' if c['flagged'] is None else 'yes' if c['flagged'] else 'no'} |"
        )
    return "\n".join(out)


def real_model(settings: Any, null: int) -> dict[str, Any]:
    """Carton and a sample of ``null`` other classes of EfficientNet-Lite0."""
    import tempfile

    sys.path.insert(0, str(EXAMPLE))
    import efficientnet_lite  # type: ignore[import-not-found]

    from pytest_actaudit import load_model
    from pytest_actaudit.checks.trigger import null_classes

    model = load_model(efficientnet_lite.make_model("lite0"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = efficientnet_lite.write_references(tmp, size=224)
        _, images = efficientnet_lite.read_folder(folder)
    images = images.astype(np.uint8)
    read = np.argmax(model.predict(images.astype(np.float32), batch_size=20, verbose=0), 1)
    targets = null_classes(1000, [CARTON], sample=null)
    readings, found, seconds = triggers_of(model, (images, read), targets, settings)
    labels = (EXAMPLE / "labels.txt").read_text(encoding="utf-8").splitlines()
    return {
        "model": "efficientnet-lite0",
        "classes": [
            {
                "class": labels[r.index],
                "index": r.index,
                "trigger": r.to_dict(),
                "success": t.success,
                "rise": t.held_out_rise,
            }
            for r, t in zip(readings, found, strict=True)
        ],
        "trigger_seconds": seconds,
        "references": len(images),
    }


def main(argv: list[str] | None = None) -> int:
    from pytest_actaudit.checks.trigger import DEFAULT_MAX_LIFT
    from pytest_actaudit.engine.trigger import TriggerSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write every class's numbers here (and resume from it)")
    parser.add_argument("--cached", action="store_true", help="only models already trained")
    parser.add_argument("--no-compare", action="store_true", help="skip assert_no_shortcut")
    parser.add_argument("--compare-from", help="assert_no_shortcut's verdicts from this JSON")
    parser.add_argument("--real", action="store_true", help="the real ImageNet model instead")
    parser.add_argument("--null", type=int, default=20, help="sampled classes (--real)")
    parser.add_argument("--steps", type=int, default=TriggerSettings.steps)
    parser.add_argument("--real-steps", type=int, default=48, help="steps (--real)")
    parser.add_argument("--images", type=int, default=4, help="images per class (--real)")
    parser.add_argument("--held-out", type=int, default=16, help="held-out images (--real)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_MAX_LIFT)
    parser.add_argument(
        "--search-seeds", default="0", help="comma-separated seeds of the search (zoo)"
    )
    args = parser.parse_args(argv)
    if args.real:
        settings = TriggerSettings(
            steps=args.real_steps,
            max_images=48,
            images_per_class=args.images,
            held_out=args.held_out,
        )
        row = real_model(settings, args.null)
        for c in sorted(row["classes"], key=lambda c: -c["trigger"]["lift"]):
            print(
                f"{c['class']:<24} lift {c['trigger']['lift']:+.2f} "
                f"(held out {c['trigger']['held_out']:.2f}, rank {c['trigger']['rank']}) "
                f"mask {c['trigger']['size']:.4f} rise {c['rise']:.2f}"
            )
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=1), encoding="utf-8")
        print(f"trigger s/class {row['trigger_seconds']:.1f} ({row['references']} references)")
        return 0
    zoo = zoo_module()
    specs = the_specs((5,))
    if args.cached:
        specs = [s for s in specs if zoo.is_cached(s)]
    settings = [
        TriggerSettings(steps=args.steps, seed=int(seed)) for seed in args.search_seeds.split(",")
    ]
    done: dict[str, Any] = {}
    if args.json and Path(args.json).exists():
        done = {r["model"]: r for r in json.loads(Path(args.json).read_text(encoding="utf-8"))}
    earlier: dict[str, Any] = {}
    if args.compare_from:
        rows = json.loads(Path(args.compare_from).read_text(encoding="utf-8"))
        earlier = {r["model"]: r for r in rows}
    refs = {size: zoo.references(20, size) for size in {s.size for s in specs}}
    rows = []
    for spec in specs:
        row = done.get(spec.name) or zoo_model(
            spec, refs[spec.size], settings, not args.no_compare, earlier.get(spec.name, {})
        )
        rows.append(row)
        planted = [c["trigger"]["lift"] for c in row["classes"] if c["planted"]]
        print(
            f"{spec.name:<26} pull {row['pull']:.2f} planted lift "
            f"{planted[0] if planted else '-'} all "
            f"{[round(c['trigger']['lift'], 2) for c in row['classes']]}",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    rejudge(rows)
    print()
    print(table(rows, args.threshold))
    print()
    print(per_kind(rows, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
