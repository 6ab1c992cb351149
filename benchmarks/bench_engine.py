#!/usr/bin/env python
"""Side-by-side timing of the class-maximization engine (issue 3).

    python benchmarks/bench_engine.py [--quick] [--json out.json] [--ablate]

In ONE run, on two models (the demo model, or a stand-in CNN when it is not there;
and MobileNetV2 α=0.35 at 96 px with random weights), over the SAME batch of
(target, seed) pairs and the same number of steps:

* ``bare``          a tf.function with a tf.range loop of forward + backward + plain
                    gradient update over the batch; no transforms, no regularizers,
                    no checks: the practical limit of this machine;
* ``project``       the project's engine, ``Engine.run(plan, steps)``, default settings;
* ``project_pixel`` the same with the pixel parametrization (only when the default is
                    not pixel): the like-for-like row for tf-keras-vis;
* ``tkv_batched``   tf-keras-vis ActivationMaximization, one call over the batch
                    (``benchmarks.tfkv_reference``, mode "batched");
* ``tkv_per_item``  tf-keras-vis, one call per (target, seed) (mode "per_item").

Every contender runs in its own fresh subprocess, so its peak memory (``ru_maxrss``) is
its own. Each is warmed up first with a small step count (the first call, with tracing,
is reported), the engine also once at the timed step count (the trace count shows that a
new step count does not trace again), then timed ``repeats`` times; the table uses the
fastest repeat (the machine is shared: the minimum is the least disturbed measurement),
wall and CPU time. The engines' subprocesses also time the bare loop interleaved with
the engine, pair by pair, for a same-process ratio. The eager tf-keras-vis contenders
get a time budget (``--no-budget`` lifts it): fewer repeats, and per-item times a subset
of its independent, equal-cost calls and scales it, labelled EXTRAPOLATED in the table.

The chunking check: MobileNetV2 at 96 px, 64 targets × 4 seeds through the engine
with ``EngineSettings(max_batch=32)``, against one chunk of 32 images; the ratio of
their peak RSS increases should be ≤ 1.5.

``--ablate`` adds, per model, a replica of the engine's loop with one part at a time
removed or replaced, timed interleaved with the bare loop in one process: where the
engine's time goes.

Internal: ``--worker JSON`` runs one measurement and prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# run as a script: the repository root on the path, for `benchmarks.*` (the reference)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DEMO_MODEL = ROOT / "pytest_actaudit" / "demo" / "models" / "clean.keras"

CONTENDERS = ("bare", "bare_lanes", "project", "project_pixel", "tkv_batched", "tkv_per_item")
TITLES = {
    "bare": "bare compiled loop",
    "bare_lanes": "bare compiled loop, engine's lanes",
    "project": "project engine (defaults)",
    "project_pixel": "project engine, pixel param.",
    "tkv_batched": "tf-keras-vis batched",
    "tkv_per_item": "tf-keras-vis per (class, seed)",
}


def default_settings(**overrides: Any) -> Any:
    """``EngineSettings`` as users get them, with ``overrides``, and every step run: the
    stop rule off (an engine that has it), so that the engine and the bare loop are timed
    at equal steps."""
    from pytest_actaudit.engine.loop import EngineSettings

    if "stop_change" in getattr(EngineSettings, "__dataclass_fields__", {}):
        overrides = {"stop_change": 0.0, **overrides}
    return EngineSettings(**overrides)


def pixel_settings(settings: Any) -> Any:
    """The same settings with the pixel parametrization (tf-keras-vis optimizes pixels;
    engines without a ``parametrization`` setting are pixel-only)."""
    import dataclasses

    if "parametrization" not in getattr(settings, "__dataclass_fields__", {}):
        return settings
    return dataclasses.replace(settings, parametrization="pixel")


def redundant(name: str) -> bool:
    """``project_pixel`` is skipped when the engine's default is already pixel (decided
    in the workers: the parent process never imports TensorFlow)."""
    default = getattr(default_settings(), "parametrization", "pixel")
    return name == "project_pixel" and default == "pixel"


FULL = {
    "steps": 60,
    "targets": 4,
    "seeds": 3,
    "warm_steps": 2,
    "repeats": {
        "bare": 4,
        "bare_lanes": 4,
        "project": 4,
        "project_pixel": 3,
        "tkv_batched": 2,
        "tkv_per_item": 1,
    },
    "pairs": 3,  # interleaved (project, bare, bare in lanes) triples in the project's subprocess
    # Most of the run is tf-keras-vis: each eager contender gets this many seconds of
    # timed work (estimated from its warm-up), so the full run stays under 15 minutes.
    # --no-budget times everything in full.
    "eager_budget": 100,
    "chunk": {"targets": 64, "seeds": 4, "max_batch": 32, "steps": 10},
    "ablate_repeats": 3,
    "baseline_rounds": 2,
}
QUICK = {
    "steps": 4,
    "targets": 2,
    "seeds": 2,
    "warm_steps": 4,  # = steps: no second trace in the smoke run
    "eager_warm_steps": 1,
    "repeats": {
        "bare": 1,
        "bare_lanes": 1,
        "project": 1,
        "project_pixel": 1,
        "tkv_batched": 1,
        "tkv_per_item": 1,
    },
    "pairs": 0,
    "chunk": {"targets": 64, "seeds": 4, "max_batch": 32, "steps": 1},
    "ablate_repeats": 1,
    "baseline_rounds": 1,
}

BARE_LEARNING_RATE = 0.05  # in unit ([0, 1]) terms; the bare loop's images are not judged


# ======================================================================= worker side
def _rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak resident set size of this process so far, MB (ru_maxrss is KB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _timed(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result). CPU time is the work done;
    wall time is what a user waits, and on a shared machine it also holds the time our
    threads waited for a core."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0, result


def build_model(name: str) -> tuple[Any, Any, str]:
    """(model, input spec, description)."""
    import keras

    from pytest_actaudit.model.inputs import input_spec

    if name == "demo":
        if DEMO_MODEL.is_file():
            from pytest_actaudit import load_model

            model = load_model(DEMO_MODEL)
            spec = input_spec(model)
            return model, spec, f"demo model {DEMO_MODEL.relative_to(ROOT)}"
        model = _fallback_cnn(64, 4)
        spec = input_spec(model)
        return (
            model,
            spec,
            (
                "stand-in 64 px CNN, random init (demo model "
                f"{DEMO_MODEL.relative_to(ROOT)} not found)"
            ),
        )
    if name == "mobilenet":
        keras.utils.set_random_seed(0)  # no initializer arguments here: seed globally
        model = keras.applications.MobileNetV2(
            alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=100
        )
        # MobileNetV2's preprocess_input maps pixels to [-1, 1].
        spec = input_spec(model, "-1-1")
        return model, spec, "MobileNetV2 alpha=0.35, 96 px, weights=None, 100 classes"
    if name == "cnn48":  # the cold-start table's small model
        model = _fallback_cnn(48, 4)
        return model, input_spec(model), "48 px CNN, random init, 4 classes"
    if name == "mobilenet8":
        keras.utils.set_random_seed(0)
        model = keras.applications.MobileNetV2(
            alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=8
        )
        return model, input_spec(model, "-1-1"), "MobileNetV2 alpha=0.35, 96 px, 8 classes"
    if name == "tiny":  # for the test suite's smoke test
        model = _fallback_cnn(16, 3, filters=(4, 8))
        return model, input_spec(model), "tiny 16 px CNN, random init (smoke test)"
    raise SystemExit(f"unknown model {name!r}")


def _fallback_cnn(size: int, classes: int, filters: tuple[int, ...] = (16, 32, 64)) -> Any:
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(
            f, 3, padding="same", activation="relu", kernel_initializer=init(seed=i)
        )(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        classes, activation="softmax", kernel_initializer=init(seed=99), name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=f"cnn{size}")


def make_plan(num_classes: int, targets: int, seeds: int) -> list[tuple[int, int]]:
    """``targets`` classes spread over the output, ``seeds`` seeds each."""
    chosen = [(i * num_classes) // targets for i in range(targets)]
    if len(set(chosen)) < targets:  # more targets than classes: wrap around
        chosen = [i % num_classes for i in range(targets)]
    return [(t, s) for t in chosen for s in range(seeds)]


class Bare:
    """Forward + backward + plain update over the batch, in one tf.function with the
    step loop inside the graph. Works in the model's input units directly. With
    ``lanes`` > 1 the batch runs as that many independent loops in the one graph, as
    the engine's lanes do: the like-for-like limit for an engine that uses them."""

    def __init__(self, model: Any, spec: Any, lanes: int = 1) -> None:
        import tensorflow as tf

        from pytest_actaudit.engine.targets import score_models

        self.logits = score_models(model).logits
        self.spec = spec
        self.lanes = lanes
        self.rate = BARE_LEARNING_RATE * (spec.high - spec.low)
        self._lane = tf.function(self._lane_graph)
        self._loop = tf.function(self._graph)

    def _lane_graph(self, x: Any, targets: Any, steps: Any) -> Any:
        import tensorflow as tf

        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = tf.gather(self.logits(x, training=False), targets, axis=1, batch_dims=1)
                total = tf.reduce_sum(score)
            x = x + self.rate * tape.gradient(total, x)
        return x

    def _graph(self, x: Any, targets: Any, steps: Any) -> Any:
        import tensorflow as tf

        from pytest_actaudit.engine.device import lane_sizes

        sizes = lane_sizes(int(x.shape[0]), max(1, min(self.lanes, int(x.shape[0]))))
        if len(sizes) == 1:
            return self._lane_graph(x, targets, steps)
        parts = zip(tf.split(x, sizes), tf.split(targets, sizes), strict=True)
        return tf.concat([self._lane(xs, ts, steps) for xs, ts in parts], 0)

    def run(self, init: Any, targets: Any, steps: int) -> Any:
        import tensorflow as tf

        return self._loop(init, targets, tf.constant(steps)).numpy()


def _contender(name: str, model: Any, spec: Any, plan: list[tuple[int, int]], settings: Any):
    """A callable ``run(steps) -> list of final logits (or None)`` for one contender."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.tfkv_reference import Reference
    from pytest_actaudit.engine.loop import Engine

    if name in ("bare", "bare_lanes"):
        lanes = Engine(model, spec, settings).lanes if name == "bare_lanes" else 1
        bare = Bare(model, spec, lanes)
        # The engine's own starting images in pixels (an Engine built, never run).
        starts = Engine(model, spec, pixel_settings(settings))
        unit = np.stack([starts._initial(seed) for _, seed in plan])
        init = tf.constant(spec.low + (spec.high - spec.low) * unit)
        targets = tf.constant(np.array([t for t, _ in plan], np.int32))
        return lambda steps: (bare.run(init, targets, steps), None)[1]
    if name in ("project", "project_chunked", "project_pixel"):
        engine = Engine(
            model, spec, pixel_settings(settings) if name == "project_pixel" else settings
        )

        def run_engine(steps: int) -> list[float]:
            return [r.logit for r in engine.run(plan, steps)]

        run_engine.engine = engine  # type: ignore[attr-defined]
        return run_engine
    if name in ("tkv_batched", "tkv_per_item"):
        reference = Reference(model, spec, pixel_settings(settings))
        mode = "batched" if name == "tkv_batched" else "per_item"
        return lambda steps, items=plan: [logit for _, logit in reference.run(items, steps, mode)]
    raise SystemExit(f"unknown contender {name!r}")


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One contender on one model, in this (fresh) process."""
    if redundant(job["contender"]):
        return {"model": job["model"], "contender": job["contender"], "skipped": "default"}
    began = time.perf_counter()
    model, spec, description = build_model(job["model"])
    loaded = (model, spec, description, time.perf_counter() - began, _rss_mb(), _peak_mb())
    return _measure(job, job["contender"], loaded)


def measure_suite(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Every contender of ``job["contenders"]`` one after the other in this one process
    (``--quick``: fewer process start-ups; memory columns are then cumulative)."""
    began = time.perf_counter()
    model, spec, description = build_model(job["model"])
    loaded = (model, spec, description, time.perf_counter() - began, _rss_mb(), _peak_mb())
    results = []
    for name in job["contenders"]:
        try:
            results.append(_measure({**job, "contender": name}, name, loaded))
        except Exception as exc:
            results.append({"model": job["model"], "contender": name, "error": repr(exc)})
        results[-1]["shared_process"] = True
    return results


def _traces(run: Any) -> int | None:
    """How many times the contender's compiled loop was traced, where it tells."""
    engine = getattr(run, "engine", None)
    optimize = getattr(engine, "_optimize", None)
    count = getattr(optimize, "experimental_get_tracing_count", None)
    return int(count()) if count else None


def _measure(job: dict[str, Any], name: str, loaded: tuple) -> dict[str, Any]:
    """First call, steady-state times, peak memory of one contender."""
    import statistics

    import numpy as np

    model, spec, description, load_seconds, baseline_rss, baseline_peak = loaded
    if redundant(name):
        return {"model": job["model"], "contender": name, "skipped": "default"}
    num_classes = int(model.outputs[0].shape[-1])
    plan = make_plan(num_classes, job["targets"], job["seeds"])
    settings = default_settings(max_batch=job.get("max_batch", 64))
    run = _contender(name, model, spec, plan, settings)
    out: dict[str, Any] = {
        "model": job["model"],
        "model_description": description,
        "contender": name,
        "plan": len(plan),
        "steps": job["steps"],
        "input_shape": list(spec.shape),
        "input_range": [spec.low, spec.high],
        "settings": (
            pixel_settings(settings) if name.startswith(("tkv", "project_pixel")) else settings
        ).to_dict(),
        "load_seconds": load_seconds,
        "baseline_rss_mb": baseline_rss,
        "baseline_peak_mb": baseline_peak,
    }
    warm = job["warm_steps"]
    if name.startswith("tkv"):  # eager: nothing to trace, a short warm-up is enough
        warm = min(warm, job.get("eager_warm_steps", warm))
    steps = job["steps"]
    t0 = time.perf_counter()
    run(warm)
    out["first_call_seconds"] = time.perf_counter() - t0
    out["first_call_steps"] = warm
    out["traces"] = _traces(run)
    if name.startswith("project") and warm != steps:
        # Run the timed step count once, untimed, and report it with the trace count:
        # the engine traces once per batch size, not per step count, so this first
        # full call should cost what a steady one does.
        t0 = time.perf_counter()
        run(steps)
        out["first_full_call_seconds"] = time.perf_counter() - t0
        out["traces"] = _traces(run)

    repeats, items, scale = job["repeats"], None, 1.0
    if name.startswith("tkv"):
        # Eager: the warm-up is a faithful per-step estimate. Keep each contender within
        # its time budget: fewer repeats, and for per-item (independent, equal-cost calls)
        # a subset of the pairs, extrapolated linearly and labelled as such.
        estimate = out["first_call_seconds"] * steps / max(warm, 1)
        budget = float(job.get("eager_budget") or float("inf"))
        if budget < float("inf"):
            repeats = max(1, min(repeats, int(budget // max(estimate, 1e-9))))
        if name == "tkv_per_item" and estimate > budget:
            n = max(1, int(len(plan) * budget / estimate))
            picks = sorted({round(i) for i in np.linspace(0, len(plan) - 1, n)})
            items, scale = [plan[i] for i in picks], len(plan) / len(picks)
            out["extrapolated_from"] = [len(picks), len(plan)]
    times, cpu, logits = [], [], None
    for _ in range(repeats):
        if items is None:
            wall, used, logits = _timed(run, steps)
        else:
            wall, used, logits = _timed(run, steps, items)
        times.append(wall * scale)
        cpu.append(used * scale)
    out["times"] = times
    out["cpu_times"] = cpu
    out["seconds"] = min(times)
    out["median_seconds"] = statistics.median(times)
    out["cpu_seconds"] = min(cpu)
    out["peak_rss_mb"] = _peak_mb()
    out["rss_increase_mb"] = out["peak_rss_mb"] - baseline_rss
    if logits is not None:
        out["mean_logit"] = float(np.mean(logits))

    if job.get("pairs") and name in ("project", "project_pixel"):  # after the memory reading
        bare = _contender("bare", model, spec, plan, settings)
        bare_lanes = _contender("bare_lanes", model, spec, plan, settings)
        bare(warm)
        bare_lanes(warm)
        # (project wall, bare wall, project CPU, bare CPU, bare-with-lanes wall, CPU)
        pairs = []
        for _ in range(job["pairs"]):
            p_wall, p_cpu, _ = _timed(run, job["steps"])
            b_wall, b_cpu, _ = _timed(bare, job["steps"])
            l_wall, l_cpu, _ = _timed(bare_lanes, job["steps"])
            pairs.append((p_wall, b_wall, p_cpu, b_cpu, l_wall, l_cpu))
        out["pairs"] = pairs
        out["paired_ratio"] = min(p[0] for p in pairs) / min(p[1] for p in pairs)
        out["paired_ratio_median"] = statistics.median(p[0] / p[1] for p in pairs)
        out["paired_cpu_ratio"] = min(p[2] for p in pairs) / min(p[3] for p in pairs)
        out["paired_ratio_lanes"] = min(p[0] for p in pairs) / min(p[4] for p in pairs)
        out["paired_ratio_lanes_median"] = statistics.median(p[0] / p[4] for p in pairs)
        out["paired_cpu_ratio_lanes"] = min(p[2] for p in pairs) / min(p[5] for p in pairs)
        out["lanes"] = run.engine.lanes
    return out


# ------------------------------------------------------------------------- ablation
def _tv(engine: Any, x: Any) -> Any:
    """The engine's total variation term per image, differentiated by autodiff."""
    from pytest_actaudit.engine.objective import tv_value

    return tv_value(x, engine.settings.tv_weight)


def _norm(engine: Any, y: Any) -> Any:
    """The engine's norm term per image, differentiated by autodiff."""
    from pytest_actaudit.engine.objective import norm_value

    return norm_value(y, engine.settings.norm_weight, engine.settings.norm_p)


def ablate(job: dict[str, Any]) -> dict[str, Any]:
    """Where the engine's time goes: a replica of ``Engine._optimize_graph`` (pixel
    parametrization) with one part at a time removed or replaced, timed round-robin
    with the bare loop and the real engine in this one process."""
    import numpy as np
    import tensorflow as tf

    from pytest_actaudit.engine import transforms
    from pytest_actaudit.engine.loop import Engine
    from pytest_actaudit.engine.objective import class_objective
    from pytest_actaudit.engine.objective import penalty as engine_penalty

    tf.get_logger().setLevel("ERROR")  # "N retracings" notes: many functions on purpose
    model, spec, description = build_model(job["model"])
    plan = make_plan(int(model.outputs[0].shape[-1]), job["targets"], job["seeds"])
    defaults = default_settings()
    s = pixel_settings(defaults)
    engine = Engine(model, spec, s)
    steps = job["steps"]
    side = min(spec.height, spec.width)
    init = tf.constant(np.stack([engine._initial(seed) for _, seed in plan]))
    targets = tf.constant(np.array([t for t, _ in plan], np.int32))
    params = tf.constant(
        np.stack(
            [
                transforms.draw_params(
                    seed, steps, jitter=s.jitter * side, degrees=s.degrees, scale=s.scale
                )
                for _, seed in plan
            ]
        )
    )
    kernel = transforms.gaussian_kernel(s.blur_sigma, spec.channels)

    def fused_penalty_grad(x: Any) -> Any:
        """The engine's written-out gradient of TotalVariation2D(x) + Norm(2x − 1)
        (``objective.penalty``, a ``tf.custom_gradient``), alone."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(engine_penalty(x, engine.settings))
        return tape.gradient(value, x)

    def replica(
        reg: str = "autodiff", affine: bool = True, blur: bool = True, checks: str = "full"
    ) -> Any:
        def graph(x: Any, targets: Any, params: Any, steps: Any) -> Any:
            m = tf.zeros_like(x)
            v = tf.zeros_like(x)
            batch = tf.shape(x)[0]
            failed = tf.fill([batch], tf.constant(-1, tf.int32))
            curve = tf.TensorArray(tf.float32, size=steps)
            for t in tf.range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    moved = transforms.affine(x, params[:, t, :]) if affine else x
                    outputs = engine.scorer.logits(engine.scorer.to_input(moved))
                    score, objective = class_objective(
                        outputs, targets, engine.scores.output_kind, engine.settings
                    )
                    loss = -tf.reduce_sum(objective)
                    if reg == "autodiff":
                        loss += tf.reduce_sum(_tv(engine, x) + _norm(engine, 2.0 * x - 1.0))
                grad = tape.gradient(loss, x)
                if reg == "fused":
                    grad += fused_penalty_grad(x)
                if checks == "full":  # as the engine: score and whole gradient, masked
                    finite = tf.math.is_finite(score) & tf.reduce_all(
                        tf.math.is_finite(grad), axis=[1, 2, 3]
                    )
                    failed = tf.where((failed < 0) & ~finite, t, failed)
                    grad = tf.where(tf.reshape(failed < 0, [-1, 1, 1, 1]), grad, 0.0)
                elif checks == "score":  # a NaN gradient reaches the next step's score
                    failed = tf.where((failed < 0) & ~tf.math.is_finite(score), t, failed)
                step = tf.cast(t + 1, tf.float32)
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * tf.square(grad)
                update = (m / (1.0 - 0.9**step)) / (tf.sqrt(v / (1.0 - 0.999**step)) + 1e-8)
                x = tf.clip_by_value(x - s.learning_rate * update, 0.0, 1.0)
                if blur:
                    x = tf.cond(
                        (t + 1) % s.blur_every == 0,
                        lambda x=x: transforms.blur(x, kernel),
                        lambda x=x: x,
                    )
                curve = curve.write(t, score)
            return x, curve.stack(), failed

        return graph

    # The fused gradient must be the same gradient as autodiff's, or the comparison is moot.
    probe = tf.constant(np.random.default_rng(0).uniform(0, 1, init.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(probe)
        penalty = tf.reduce_sum(_tv(engine, probe) + _norm(engine, 2.0 * probe - 1.0))
    auto = tape.gradient(penalty, probe).numpy()
    fused = fused_penalty_grad(probe).numpy()
    fused_error = float(np.abs(auto - fused).max() / (np.abs(auto).max() + 1e-30))

    bare = Bare(model, spec)
    bare_init = tf.constant(spec.low + (spec.high - spec.low) * init.numpy())
    variants: dict[str, Any] = {
        "bare compiled loop": lambda st: bare.run(bare_init, targets, st),
        "project engine, pixel (Engine.run)": lambda st: engine.run(plan, st),
    }
    if getattr(defaults, "parametrization", "pixel") != "pixel":
        engine_default = Engine(model, spec, defaults)
        variants[f"project engine, {defaults.parametrization} (defaults)"] = lambda st: (
            engine_default.run(plan, st)
        )
    specs = {
        "replica: full engine loop": {},
        "replica − regularizers": {"reg": "none"},
        "replica, regularizer gradients fused": {"reg": "fused"},
        "replica − affine transform": {"affine": False},
        "replica − blur": {"blur": False},
        "replica − NaN/Inf checks": {"checks": "none"},
        "replica, NaN check on scores only": {"checks": "score"},
        "fused reg grads + score-only check": {"reg": "fused", "checks": "score"},
    }
    for label, kw in specs.items():
        fn = tf.function(replica(**kw))
        # Always the full params tensor (steps only as a loop bound): no retrace.
        variants[label] = lambda st, fn=fn: fn(init, targets, params, tf.constant(st))[0].numpy()
    xla_bare = tf.function(bare._graph, jit_compile=True)
    variants["bare loop, XLA (jit_compile=True)"] = lambda st: xla_bare(
        bare_init, targets, tf.constant(st)
    ).numpy()
    xla_full = tf.function(replica(), jit_compile=True)
    variants["replica full loop, XLA"] = lambda st: xla_full(
        init, targets, params, tf.constant(st)
    )[0].numpy()

    first: dict[str, Any] = {}
    for label, fn in list(variants.items()):
        t0 = time.perf_counter()
        try:
            # XLA compiles the loop bound in: warm it up at the timed step count.
            fn(steps if "XLA" in label else job["warm_steps"])
            if label.startswith("project"):
                fn(job["warm_steps"] + 1)
        except Exception as exc:  # e.g. an op XLA cannot compile on this device
            first[label] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            del variants[label]
            continue
        first[label] = time.perf_counter() - t0
    walls: dict[str, list[float]] = {label: [] for label in variants}
    cpus: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(job["repeats"]):
        for label, fn in variants.items():
            wall, cpu, _ = _timed(fn, steps)
            walls[label].append(wall)
            cpus[label].append(cpu)
    bare_wall, bare_cpu = min(walls["bare compiled loop"]), min(cpus["bare compiled loop"])
    rows = [
        {
            "variant": label,
            "seconds": min(walls[label]),
            "ms_per_step": 1000 * min(walls[label]) / steps,
            "ratio_to_bare": min(walls[label]) / bare_wall,
            "cpu_ms_per_step": 1000 * min(cpus[label]) / steps,
            "cpu_ratio_to_bare": min(cpus[label]) / bare_cpu,
            "times": walls[label],
            "cpu_times": cpus[label],
        }
        for label in variants
    ]
    return {
        "model": job["model"],
        "model_description": description,
        "plan": len(plan),
        "steps": steps,
        "fused_gradient_max_relative_error": fused_error,
        "first_call": first,
        "rows": rows,
        "settings": s.to_dict(),
        "components": _components(engine, init, params, kernel, fused_penalty_grad, job["repeats"]),
    }


def _components(
    engine: Any, init: Any, params: Any, kernel: Any, fused_grad: Any, repeats: int
) -> list[dict[str, Any]]:
    """Each extra part of the engine's step alone, on the same batch of images, in a
    compiled 50-step loop: ms per step (forward and, where the engine differentiates
    through it, backward)."""
    import numpy as np
    import tensorflow as tf

    from pytest_actaudit.engine import transforms

    def tv_norm_autodiff(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            penalty = tf.reduce_sum(_tv(engine, x) + _norm(engine, 2.0 * x - 1.0))
        return tape.gradient(penalty, x)

    def tv_autodiff(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            penalty = tf.reduce_sum(_tv(engine, x))
        return tape.gradient(penalty, x)

    def norm_autodiff(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            penalty = tf.reduce_sum(_norm(engine, 2.0 * x - 1.0))
        return tape.gradient(penalty, x)

    def affine_fwd_bwd(x: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            moved = tf.reduce_sum(transforms.affine(x, params[:, 0, :]) * x)
        return tape.gradient(moved, x)

    def checks(x: Any) -> Any:
        finite = tf.reduce_all(tf.math.is_finite(x), axis=[1, 2, 3])
        return tf.where(tf.reshape(finite, [-1, 1, 1, 1]), x, 0.0)

    def adam_clip(x: Any) -> Any:
        m = 0.9 * x + 0.1 * x
        v = 0.999 * x + 0.001 * tf.square(x)
        return tf.clip_by_value(x - 0.05 * (m / 0.1) / (tf.sqrt(v / 0.001) + 1e-8), 0.0, 1.0)

    parts: dict[str, Any] = {
        "TV + Norm, autodiff gradient (engine)": tv_norm_autodiff,
        "  TotalVariation2D alone, autodiff": tv_autodiff,
        "  Norm(p=6) alone, autodiff": norm_autodiff,
        "TV + Norm, fused gradient": fused_grad,
        "affine view, forward + backward": affine_fwd_bwd,
        "blur (engine: 1 step in blur_every)": lambda x: transforms.blur(x, kernel),
        "NaN/Inf check + masked gradient": checks,
        "Adam update + clip": adam_clip,
        "nothing (loop overhead)": lambda x: x * 1.0,
    }
    states = {label: init for label in parts}
    try:  # the Fourier parametrization, where the engine has one
        from pytest_actaudit.engine.params import make_param

        fourier = make_param("fourier", tuple(init.shape[1:]), engine.settings)
        spectrum = tf.constant(np.stack([fourier.initial(i) for i in range(init.shape[0])]))

        def fourier_fwd_bwd(z: Any) -> Any:  # z: spectrum; image → gradient on it
            with tf.GradientTape() as tape:
                tape.watch(z)
                total = tf.reduce_sum(fourier.to_unit(z) * init)
            return tape.gradient(total, z)

        label = "Fourier param. to image, fwd + bwd"
        parts[label], states[label] = fourier_fwd_bwd, spectrum
    except (ImportError, ValueError, TypeError):
        pass
    rows = []
    for label, part in parts.items():

        def loop(x: Any, steps: Any, part: Any = part) -> Any:
            for _ in tf.range(steps):
                x = x - 1e-6 * part(x)
            return x

        fn = tf.function(loop)
        state = states[label]
        fn(state, tf.constant(2)).numpy()
        best_wall = best_cpu = float("inf")
        for _ in range(max(2, repeats)):
            wall, cpu, _ = _timed(lambda fn=fn, state=state: fn(state, tf.constant(50)).numpy())
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        rows.append(
            {"part": label, "ms_per_step": best_wall * 20, "cpu_ms_per_step": best_cpu * 20}
        )
    return rows


# ==================================================================== parent side
WORKERS = {"measure": measure, "suite": measure_suite, "ablate": ablate}


def run_job(job: dict[str, Any], inline: bool) -> Any:
    """Run one worker job in a fresh subprocess (or here, with ``inline``)."""
    return run_jobs([job], inline)[0]


def run_jobs(jobs: list[dict[str, Any]], inline: bool) -> list[Any]:
    """Run worker jobs, each in its own fresh subprocess, all at the same time (only
    used together where their timings do not matter), or here one by one."""
    if inline:
        return [WORKERS[job.get("kind", "measure")](job) for job in jobs]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # a job with a "source" imports pytest_actaudit from that tree (--baseline)
            env={**env, "PYTHONPATH": job["source"]} if job.get("source") else env,
            cwd=str(ROOT),
        )
        for job in jobs
    ]
    return [_collect(job, proc, began) for job, proc in zip(jobs, procs, strict=True)]


def _collect(job: dict[str, Any], proc: subprocess.Popen, began: float) -> Any:
    stdout, stderr = proc.communicate()
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
            if isinstance(result, dict):
                result["process_seconds"] = time.perf_counter() - began
            return result
    tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
    error = {**job, "error": f"worker exited {proc.returncode}:\n{tail}"}
    if job.get("kind") == "suite":
        return [{**error, "contender": name} for name in job["contenders"]]
    return error


def export_revision(rev: str) -> str:
    """A temporary folder holding ``pytest_actaudit`` as of git revision ``rev``."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="actaudit-baseline-")
    archive = subprocess.run(
        ["git", "archive", rev, "pytest_actaudit"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def compare_with(
    rev: str, models: list[str], common: dict[str, Any], cfg: dict[str, Any], inline: bool
) -> list[dict[str, Any]]:
    """The project engine of this tree and of ``rev``, each in fresh processes, one
    after the other for ``cfg["baseline_rounds"]`` rounds (a shared machine's load
    drifts; alternating spreads it over both). Each job also times the bare loop
    interleaved with its engine, so each engine's ÷ bare is measured in its own
    process and the two can be compared across processes."""
    if inline:
        raise SystemExit("--baseline needs subprocesses (drop --inline)")
    source = export_revision(rev)
    rows = []
    for model in models:
        job = {
            **common,
            "model": model,
            "contender": "project",
            "repeats": cfg["repeats"]["project"],
            "pairs": max(1, cfg["pairs"]),
        }
        runs: dict[str, list[dict[str, Any]]] = {"this": [], rev: []}
        for _ in range(cfg["baseline_rounds"]):
            runs["this"].append(run_job({**job, "source": str(ROOT)}, inline))
            runs[rev].append(run_job({**job, "source": source}, inline))
        rows.append({"model": model, "runs": runs})
    print_comparison(rev, rows)
    return rows


def print_comparison(rev: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n## This tree against {rev} (project engine, fresh processes, alternating)\n")
    table = []
    for row in rows:
        best = {}
        for name, runs in row["runs"].items():
            ok = [r for r in runs if "error" not in r]
            if not ok:
                best[name] = None
                continue
            best[name] = {
                "wall": min(r["seconds"] for r in ok),
                "cpu": min(r["cpu_seconds"] for r in ok),
                "bare": min(r["paired_ratio"] for r in ok),
                "bare_cpu": min(r["paired_cpu_ratio"] for r in ok),
                "first": min(r["first_call_seconds"] for r in ok),
            }
        this, base = best["this"], best[rev]
        if this is None or base is None:
            table.append([row["model"], "failed"] + [""] * 5)
            continue
        table.append(
            [
                row["model"],
                f"{this['wall']:.2f} / {base['wall']:.2f} = {this['wall'] / base['wall']:.2f}",
                f"{this['cpu']:.2f} / {base['cpu']:.2f} = {this['cpu'] / base['cpu']:.2f}",
                f"{this['bare']:.2f} / {base['bare']:.2f} = {this['bare'] / base['bare']:.2f}",
                f"{this['bare_cpu']:.2f} / {base['bare_cpu']:.2f} = "
                f"{this['bare_cpu'] / base['bare_cpu']:.2f}",
                f"{this['first']:.1f} / {base['first']:.1f}",
            ]
        )
    _markdown(
        [
            "model",
            f"wall s: this / {rev}",
            "CPU s",
            "÷ bare, wall (paired in each process)",
            "÷ bare, CPU",
            "first call s",
        ],
        table,
    )
    print("(fastest of the rounds for each figure)")


def _fmt(value: Any, spec: str = ".2f", missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _markdown(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        rest = zip(r[1:], widths[1:], strict=True)
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        print("| " + " | ".join(cells) + " |")


def print_table(results: list[dict[str, Any]], inline: bool) -> None:
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    for model, rows in by_model.items():
        ok = {r["contender"]: r for r in rows if "error" not in r}
        first = next(iter(ok.values()), rows[0])
        print(f"\n## {first.get('model_description', model)}")
        if ok:
            print(
                f"{first['plan']} (target, seed) pairs, {first['steps']} steps, input "
                f"{'×'.join(map(str, first['input_shape']))} in "
                f"[{first['input_range'][0]:g}, {first['input_range'][1]:g}]; wall and CPU "
                "time: fastest timed repeat; first call: warm-up incl. tracing\n"
            )
        bare, project = ok.get("bare", {}), ok.get("project", {})
        laned = ok.get("bare_lanes", {})
        table = []
        for name in CONTENDERS:
            r = next((x for x in rows if x["contender"] == name), None)
            if r is None:
                continue
            if "error" in r:
                table.append([TITLES[name], "failed: " + r["error"].splitlines()[0][:60]])
                table[-1] += [""] * 10
                continue
            sec, cpu = r["seconds"], r["cpu_seconds"]
            label = TITLES[name] + (f" ×{len(r['times'])}" if len(r["times"]) > 1 else "")
            if "extrapolated_from" in r:
                done, total = r["extrapolated_from"]
                label += f" [EXTRAPOLATED: {done} of {total} pairs timed, ×{total / done:.1f}]"
            table.append(
                [
                    label,
                    f"{sec:.2f}",
                    _fmt(sec / bare["seconds"] if bare else None),
                    _fmt(sec / laned["seconds"] if laned else None),
                    _fmt(sec / project["seconds"] if project else None),
                    f"{cpu:.2f}",
                    _fmt(cpu / bare["cpu_seconds"] if bare else None),
                    _fmt(cpu / project["cpu_seconds"] if project else None),
                    f"{r['first_call_seconds']:.1f} ({r['first_call_steps']} st)",
                    f"{r['peak_rss_mb']:.0f}",
                    f"{r['rss_increase_mb']:.0f}",
                    _fmt(r.get("mean_logit"), ".3g"),
                ]
            )
        _markdown(
            [
                "contender (×timed repeats)",
                "wall s",
                "× bare",
                "× bare, lanes",
                "× project",
                "CPU s",
                "CPU × bare",
                "CPU × project",
                "first call s",
                "peak RSS MB",
                "RSS +MB",
                "mean logit",
            ],
            table,
        )
        print()
        for name in ("project", "project_pixel"):
            r = ok.get(name, {})
            if "paired_ratio" in r:
                print(
                    f"{TITLES[name]} ÷ bare, interleaved in one process, {len(r['pairs'])} "
                    f"triples: wall {r['paired_ratio']:.2f} (fastest of each; median of "
                    f"ratios {r['paired_ratio_median']:.2f}), CPU {r['paired_cpu_ratio']:.2f}"
                )
            if "paired_ratio_lanes" in r:
                print(
                    f"{TITLES[name]} ÷ bare in the engine's {r['lanes']} lane(s), like for "
                    f"like, same triples: wall {r['paired_ratio_lanes']:.2f} (median of "
                    f"ratios {r['paired_ratio_lanes_median']:.2f}), CPU "
                    f"{r['paired_cpu_ratio_lanes']:.2f}"
                )
        if project.get("settings", {}).get("parametrization"):
            print(
                f"project engine defaults: parametrization={project['settings']['parametrization']}"
                f", contrast={project['settings'].get('contrast', 0)}; the tf-keras-vis "
                "contenders use the same settings with the pixel parametrization"
            )
        for name in ("project", "project_pixel"):
            r = ok.get(name, {})
            if "first_full_call_seconds" in r:
                print(
                    f"{TITLES[name]}: first call {r['first_call_seconds']:.1f}s "
                    f"({r['first_call_steps']} steps, with tracing); first call at "
                    f"{r['steps']} steps {r['first_full_call_seconds']:.1f}s vs "
                    f"{r['seconds']:.1f}s steady ({r.get('traces')} trace(s) of the loop "
                    "after both step counts)"
                )
    if inline or any(r.get("shared_process") for r in results):
        print(
            "\n(contenders shared one process (--quick or --inline): the memory columns are "
            "cumulative high-water marks, not each contender's own)"
        )


def print_chunk(chunk: dict[str, Any]) -> None:
    many, one = chunk.get("many"), chunk.get("one")
    print("\n## Chunking check (issue 3): MobileNetV2 96 px, EngineSettings(max_batch=32)")
    for label, r in (("all pairs", many), ("one chunk", one)):
        if r is None:
            continue
        if "error" in r:
            print(f"{label}: failed: {r['error']}")
            continue
        print(
            f"{label:10s}: {r['plan']:4d} images, {r['steps']} steps: {r['seconds']:.1f}s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, +{r['rss_increase_mb']:.0f} MB over the "
            f"{r['baseline_rss_mb']:.0f} MB after model load"
        )
    if "ratio" in chunk:
        verdict = "OK" if chunk["ratio"] <= 1.5 else "OVER the 1.5 bound"
        print(f"peak RSS increase ratio (all ÷ one chunk): {chunk['ratio']:.2f} — {verdict}")


def print_ablation(result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"\n## Ablation {result.get('model')}: failed: {result['error']}")
        return
    print(
        f"\n## Ablation: {result['model_description']}\n{result['plan']} pairs, "
        f"{result['steps']} steps, one process, round-robin, fastest of "
        f"{len(result['rows'][0]['times'])}. Fused regularizer gradient vs autodiff: "
        f"max relative difference {result['fused_gradient_max_relative_error']:.1e}\n"
    )
    _markdown(
        ["variant", "wall ms/step", "× bare", "CPU ms/step", "CPU × bare"],
        [
            [
                row["variant"],
                f"{row['ms_per_step']:.1f}",
                f"{row['ratio_to_bare']:.2f}",
                f"{row['cpu_ms_per_step']:.1f}",
                f"{row['cpu_ratio_to_bare']:.2f}",
            ]
            for row in result["rows"]
        ],
    )
    for label, first in result["first_call"].items():
        if isinstance(first, str):
            print(f"{label}: {first}")
    print("\nEach part alone on the same images (compiled 50-step loop):\n")
    _markdown(
        ["part", "wall ms/step", "CPU ms/step"],
        [
            [c["part"], f"{c['ms_per_step']:.2f}", f"{c['cpu_ms_per_step']:.2f}"]
            for c in result["components"]
        ],
    )


def _git_state() -> dict[str, Any]:
    """Commit, and whether the engine's files differ from it (the engine may be edited
    while a benchmark runs: the JSON says what was measured)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "pytest_actaudit/engine"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.splitlines()
    except OSError:
        return {}
    return {"head": head, "engine_changes": dirty}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny CI smoke run (< 2 min)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    parser.add_argument("--ablate", action="store_true", help="also time the engine's parts")
    parser.add_argument(
        "--models", default="demo,mobilenet", help="comma list of demo, mobilenet, tiny"
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma list (project_pixel is skipped when the default is pixel)",
    )
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--seeds", type=int, help="override the seeds per target")
    parser.add_argument("--targets", type=int, help="override the number of targets")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time the project engine of git revision REV against this tree's, "
        "alternating fresh processes (a change's speed cost as ratios)",
    )
    parser.add_argument("--no-chunk-check", action="store_true")
    parser.add_argument(
        "--no-budget",
        action="store_true",
        help="time every tf-keras-vis repeat and every per-item pair in full",
    )
    parser.add_argument(
        "--inline", action="store_true", help="no subprocesses (for tests; memory not isolated)"
    )
    parser.add_argument(
        "--no-cold", action="store_true", help="skip the cold-start table (cold_start.py)"
    )
    parser.add_argument("--worker", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        job = json.loads(args.worker)
        result = WORKERS[job.get("kind", "measure")](job)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: v for k, v in (("seeds", args.seeds), ("targets", args.targets)) if v})
    steps = args.steps or cfg["steps"]
    models = [m for m in args.models.split(",") if m]
    contenders = [c for c in args.contenders.split(",") if c]
    began = time.perf_counter()
    print(
        f"# bench_engine ({'quick' if args.quick else 'full'}): {steps} steps, "
        f"{cfg['targets']} targets × {cfg['seeds']} seeds; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    cold: list[dict[str, Any]] = []
    if not args.no_cold and not args.inline:
        # What a user meets first: a cold call (build, trace, every step) against a cold
        # bare loop, each in a fresh process (benchmarks/cold_start.py), then the warm table.
        import cold_start

        cold_cfg = cold_start.QUICK if args.quick else cold_start.FULL
        cold = cold_start.measure_all(cold_cfg["models"], cold_cfg["steps"], cold_cfg["rounds"])
        cold_start.print_table(cold, cold_cfg["steps"])
        print("\n## Warm: the engine's steady state\n", flush=True)
    results: list[dict[str, Any]] = []
    for model in models:
        common = {
            "model": model,
            "steps": steps,
            "targets": cfg["targets"],
            "seeds": cfg["seeds"],
            "warm_steps": cfg["warm_steps"],
            "eager_warm_steps": cfg.get("eager_warm_steps", cfg["warm_steps"]),
            "eager_budget": None if args.no_budget else cfg.get("eager_budget"),
            "pairs": cfg["pairs"] if "bare" in contenders else 0,
        }
        if args.quick:  # one process per model: the smoke run stays under two minutes
            job = {**common, "kind": "suite", "contenders": contenders}
            job["repeats"] = 1
            found = run_job(job, args.inline)
        else:
            found = [
                run_job({**common, "contender": name, "repeats": cfg["repeats"][name]}, args.inline)
                for name in contenders
            ]
        for result in found:
            if "skipped" in result:  # project_pixel when pixel is the default
                continue
            results.append(result)
            status = (
                result["error"].splitlines()[0]
                if "error" in result
                else f"{result['seconds']:.2f}s"
            )
            print(f"  {model}/{result['contender']}: {status}", flush=True)
    print_table(results, args.inline)

    chunk: dict[str, Any] = {}
    if not args.no_chunk_check:
        c = cfg["chunk"]
        common = {
            "model": "mobilenet",
            "contender": "project_chunked",
            "steps": c["steps"],
            "warm_steps": c["steps"],  # same shapes as the timed run: no retrace
            "repeats": 1,
            "max_batch": c["max_batch"],
            "seeds": c["seeds"],
        }
        jobs = [
            {**common, "targets": c["targets"]},
            # One chunk: max_batch pairs (8 targets × 4 seeds), same model and settings.
            {**common, "targets": c["max_batch"] // c["seeds"]},
        ]
        if args.quick:  # side by side: only their memory matters here
            chunk["many"], chunk["one"] = run_jobs(jobs, args.inline)
        else:
            chunk["many"], chunk["one"] = (run_job(job, args.inline) for job in jobs)
        if "error" not in chunk["many"] and "error" not in chunk["one"]:
            chunk["ratio"] = chunk["many"]["rss_increase_mb"] / max(
                chunk["one"]["rss_increase_mb"], 1e-9
            )
        print_chunk(chunk)

    baseline: list[dict[str, Any]] = []
    if args.baseline:
        common = {
            "steps": steps,
            "targets": cfg["targets"],
            "seeds": cfg["seeds"],
            "warm_steps": cfg["warm_steps"],
        }
        baseline = compare_with(args.baseline, models, common, cfg, args.inline)

    main_seconds = time.perf_counter() - began
    print(f"\ntable and chunking check: {main_seconds:.0f}s", flush=True)
    ablations = []
    if args.ablate:
        for model in models:
            job = {
                "kind": "ablate",
                "model": model,
                "steps": steps,
                "targets": cfg["targets"],
                "seeds": cfg["seeds"],
                "warm_steps": cfg["warm_steps"],
                "repeats": cfg["ablate_repeats"],
            }
            ablations.append(run_job(job, args.inline))
            print_ablation(ablations[-1])

    total = time.perf_counter() - began
    print(f"\ntotal wall time {total:.0f}s; load average now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "mode": "quick" if args.quick else "full",
                    "config": {**cfg, "steps": steps},
                    "inline": args.inline,
                    "cpus": os.cpu_count(),
                    "results": results,
                    "cold_start": cold,
                    "chunk_check": chunk,
                    "ablations": ablations,
                    "baseline": {"revision": args.baseline, "models": baseline},
                    "wall_seconds": total,
                    "wall_seconds_without_ablation": main_seconds,
                    "git": _git_state(),
                },
                indent=2,
            )
        )
    failed = [r for r in results + cold if "error" in r] + [
        r for r in chunk.values() if isinstance(r, dict) and "error" in r
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
