#!/usr/bin/env python
"""Speed at a real model's size: EfficientNet-Lite0 at 224 px, cold, each run in a fresh
process, with the quality each run's images reach.

    python benchmarks/speed_224.py [--classes goldfish] [--jobs project:fourier:128,...]

A job is ``contender:param:steps[:lr][:field=value...]`` (``project`` and ``tkv``: the
learning rate and any ``EngineSettings`` field, e.g. ``stop_change=0``; the engine's
defaults otherwise). The default jobs run every step at lr 0.05, the images before the
stop rule. Contenders, on the classes × 3 seeds:

* ``bare``      the bare compiled loop (``bench_engine.Bare``: forward, backward, plain
                update, nothing else), from the engine's pixel starts;
* ``barexla``   the same loop compiled with XLA (``jit_compile=True``);
* ``project``   ``pytest_actaudit.maximize`` as a user calls it (``param`` is its
                parametrization, ``lr`` its learning rate when given); the stop rule
                is on by default (``steps`` is then a cap, not equal steps with the
                bare loop): ``:stop_change=0`` runs every step;
* ``tkv``       tf-keras-vis ``ActivationMaximization``, one batched call
                (``tfkv_reference.Reference``, pixel parametrization, the engine's
                regularizers and learning rate).

Cold = the first call (building, tracing, first execution, every step, reading back);
TensorFlow's import and the model's loading are not timed (every contender pays them).
Quality, measured after the timing: Lite0's probability of the class on the quantized
images, and the share EfficientNet-Lite1 reads as the class (top-1).

Internal: ``--worker JSON`` runs one job and prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# run as a script: the repository root on the path, for `benchmarks.*`
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SEEDS = 3
JOBS = "bare:pixel:128,barexla:pixel:128,project:fourier:128:0.05:stop_change=0,tkv:pixel:128:0.05"


def _quantize(x: np.ndarray, low: float, high: float) -> np.ndarray:
    unit = np.clip((np.asarray(x, np.float64) - low) / (high - low), 0.0, 1.0)
    return np.round(unit * 255.0).astype(np.uint8)


def _extra(job: dict[str, Any]) -> dict[str, Any]:
    """The job's ``lr`` and ``field=value`` parts as ``EngineSettings`` fields."""
    from pytest_actaudit.engine.loop import EngineSettings

    extra: dict[str, Any] = {"learning_rate": float(job["lr"])} if job.get("lr") else {}
    for key, value in job.get("fields", {}).items():
        extra[key] = type(getattr(EngineSettings(), key))(value)
    return extra


def worker(job: dict[str, Any]) -> dict[str, Any]:
    import tensorflow as tf

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "examples" / "imagenet"))
    import efficientnet_lite as lite

    import pytest_actaudit
    from benchmarks import bench_engine as bench
    from pytest_actaudit.model.inputs import input_spec

    model = pytest_actaudit.load_model(lite.make_model("lite0"))
    labels = lite.LABELS.read_text(encoding="utf-8").splitlines()
    classes = [labels.index(c) for c in job["classes"]]
    plan = [(c, s) for c in classes for s in range(SEEDS)]
    spec = input_spec(model)
    name, param, steps = job["contender"], job["param"], int(job["steps"])
    began, cpu_began = time.perf_counter(), time.process_time()
    if name in ("bare", "barexla"):
        from pytest_actaudit.engine.loop import Engine

        bare = bench.Bare(model, spec)
        if name == "barexla":
            bare._loop = tf.function(bare._graph, jit_compile=True)
        starts = Engine(model, spec, bench.pixel_settings(bench.default_settings()))
        unit = np.stack([starts._initial(seed) for _, seed in plan])
        init = tf.constant((spec.low + (spec.high - spec.low) * unit).astype(np.float32))
        targets = tf.constant(np.array([t for t, _ in plan], np.int32))
        images = _quantize(bare.run(init, targets, steps), spec.low, spec.high)
    elif name == "project":
        audits = pytest_actaudit.maximize(
            model, classes, seeds=SEEDS, steps=steps, parametrization=param, **_extra(job)
        )
        images = np.concatenate([a.images for a in audits])
    elif name == "tkv":
        from benchmarks.tfkv_reference import Reference

        settings = bench.pixel_settings(bench.default_settings(**_extra(job)))
        reference = Reference(model, spec, settings)
        images = np.stack([img for img, _ in reference.run(plan, steps, "batched")])
    else:
        raise SystemExit(f"unknown contender {name!r}")
    cold, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    owner = np.array([t for t, _ in plan])
    p = tf.nn.softmax(model.predict(images.astype(np.float32), verbose=0)).numpy()
    judge = lite.load("lite1")
    big = tf.image.resize(images.astype(np.float32), (240, 240), antialias=True).numpy()
    jp = judge.predict(big, verbose=0)
    return {
        **job,
        "cold": round(cold, 2),
        "cpu": round(cpu, 2),
        "p": [round(float(v), 4) for v in p[np.arange(len(p)), owner]],
        "top1": float(np.mean(jp.argmax(axis=1) == owner)),
        "stopped": [a.stopped_steps for a in audits] if name == "project" else [],
    }


def run(job: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.worker import run_worker as run_in_new_process

    return run_in_new_process(__file__, job, ROOT, tail=8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", default="goldfish")
    parser.add_argument("--jobs", default=JOBS)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    results = []
    for r in range(args.rounds):
        for spec in args.jobs.split(","):
            contender, param, steps, *rest = spec.split(":")
            lr = [item for item in rest if "=" not in item]
            fields = dict(item.split("=", 1) for item in rest if "=" in item)
            job = {
                "contender": contender,
                "param": param,
                "steps": int(steps),
                "lr": lr[0] if lr else "",
                "fields": fields,
                "classes": args.classes.split(","),
                "round": r,
            }
            found = run(job)
            results.append(found)
            print(json.dumps(found), flush=True)
    print(summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def summary(results: list[dict[str, Any]]) -> str:
    """Per job: the median cold wall time and CPU time over the rounds, and each job's
    ratio to the bare loop at the same steps. CPU time (all threads of the worker) moves
    less than wall time when other work shares the machine; both are given."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for found in results:
        if "error" not in found:
            key = f"{found['contender']}:{found['param']}:{found['steps']}"
            key += f":{found['lr']}" if found["lr"] else ""
            key += "".join(f":{k}={v}" for k, v in sorted(found.get("fields", {}).items()))
            jobs.setdefault(key, []).append(found)
    medians = {
        key: (
            float(np.median([f["cold"] for f in runs])),
            float(np.median([f["cpu"] for f in runs])),
        )
        for key, runs in jobs.items()
    }
    lines = [
        "| job | rounds | cold wall, median (s) | CPU, median (s) | ÷ bare, wall | ÷ bare, CPU |"
    ]
    lines.append("|---|---|---|---|---|---|")
    for key, (wall, cpu) in medians.items():
        steps = key.split(":")[2]
        bare = next(
            (v for k, v in medians.items() if k.startswith("bare:") and k.split(":")[2] == steps),
            None,
        )
        ratio = (f"{wall / bare[0]:.2f}", f"{cpu / bare[1]:.2f}") if bare else ("–", "–")
        lines.append(
            f"| {key} | {len(jobs[key])} | {wall:.1f} | {cpu:.1f} | {ratio[0]} | {ratio[1]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
