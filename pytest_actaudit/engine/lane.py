"""A lane's step loop, plain or with the stop rule (steps to quality), in the graph.

A lane is one class's seeds, one image per row (``Engine._lane``); ``update`` is one
step of every row. The stop rule (docs/steps-to-quality.md): every ``stop_every`` steps an
image is checked; it is done when its target probability has reached
``stop_probability`` **and** its image has stopped changing: the mean absolute change of
its unit image since the previous check, over its mean absolute change since the start,
is below ``stop_change``. A done image is frozen (its parameters and Adam's moments no
longer update), so its numbers are those of a run capped at its stop step and never
depend on its lane-mates; the lane ends when every image in it is done, or at the step
count.

Outputs without a probability (a layer's units, a score being lowered) never stop: there
is no target to have reached. ``stop_change`` = 0 turns the rule off: the loop is then
traced exactly as without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import tensorflow as tf

from .objective import logsumexp_others


class StopSettings(Protocol):
    """The settings the rule reads (``EngineSettings`` has them)."""

    @property
    def stop_probability(self) -> float: ...
    @property
    def stop_change(self) -> float: ...
    @property
    def stop_every(self) -> int: ...
    @property
    def direction(self) -> int: ...


def stops(settings: StopSettings, kind: str) -> bool:
    """Whether images of this output ``kind`` (``ScoreModels.output_kind``) can stop."""
    s = settings
    return s.stop_change > 0 and s.stop_every > 0 and s.direction > 0 and kind != "unit"


def reached(outputs: tf.Tensor, targets: tf.Tensor, kind: str, level: float) -> tf.Tensor:
    """Per image: the target's probability is at least ``level``, from the score model's
    outputs (``Scorer.logits``), without forming probabilities: under softmax
    p_c ≥ q iff z_c − logsumexp_{j≠c} z_j ≥ log(q / (1 − q)); under a sigmoid (one
    output, or a binary head's two) iff z_c ≥ log(q / (1 − q)); "log" outputs are the
    probabilities themselves."""
    batch = tf.shape(outputs)[0]
    if level <= 0:
        return tf.ones([batch], tf.bool)
    if level >= 1:
        return tf.zeros([batch], tf.bool)
    hot = tf.one_hot(targets, tf.shape(outputs)[-1])
    own = tf.reduce_sum(outputs * hot, axis=1)
    if kind == "log":
        return own >= level
    odds = math.log(level / (1.0 - level))
    if kind == "sigmoid" or outputs.shape[-1] == 1:
        return own >= odds
    return own - logsumexp_others(outputs, hot) >= odds


def change(unit: tf.Tensor, last: tf.Tensor, first: tf.Tensor) -> tf.Tensor:
    """Per image: mean |u − u_last| / mean |u − u_first| (unit images B×H×W×C), the
    share of its change so far that the last interval made. Relative, so that one
    threshold serves models whose images move by different amounts per step."""
    axes = [1, 2, 3]
    moved = tf.reduce_mean(tf.abs(unit - last), axis=axes)
    total = tf.reduce_mean(tf.abs(unit - first), axis=axes)
    return moved / (total + 1e-12)


def rows(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A per-image boolean shaped to broadcast against ``like`` (B×…)."""
    return tf.reshape(mask, [-1] + [1] * (len(like.shape) - 1))


def end_curve(curve: tf.TensorArray, last: tf.Tensor, at: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    """The score curve (steps × B) of a lane that ended at step ``at``: the steps run,
    then each image's score at its stop held to the end (a frozen image's score)."""
    done = curve.gather(tf.range(at))
    tail = tf.tile(last[None], tf.stack([steps - at, 1]))
    return tf.concat([done, tail], 0)


Update = Callable[..., tuple[tf.Tensor, ...]]


def stopping_loop(
    update: Update,
    to_unit: Callable[[tf.Tensor], tf.Tensor],
    init: tf.Tensor,
    targets: tf.Tensor,
    steps: tf.Tensor,
    settings: StopSettings,
    kind: str,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """A lane's loop with the rule: (final parameters, score per step × image, failed
    step, stop step). ``update(t, x, m, v, failed)`` is one step of every image (x, m,
    v, failed, score, the score model's outputs); a done image's row keeps its old x,
    m, v and failed, so it is what a run capped at its stop step would give."""
    s = settings
    every, level, threshold = s.stop_every, s.stop_probability, s.stop_change
    batch = tf.shape(init)[0]
    first = to_unit(init)

    def step(
        t: tf.Tensor,
        x: tf.Tensor,
        m: tf.Tensor,
        v: tf.Tensor,
        failed: tf.Tensor,
        curve: tf.TensorArray,
        last: tf.Tensor,
        held: tf.Tensor,
        stopped: tf.Tensor,
    ) -> tuple[Any, ...]:
        new_x, new_m, new_v, new_failed, score, outputs = update(t, x, m, v, failed)
        live = stopped >= steps  # not done before this step

        def check() -> tuple[tf.Tensor, tf.Tensor]:
            unit = to_unit(x)  # the image after t updates, without this step's view
            near = reached(outputs, targets, kind, level)  # this step's view of it
            return unit, live & near & (change(unit, last, first) < threshold)

        last, done = tf.cond(
            (t > 0) & (t % every == 0), check, lambda: (last, tf.zeros([batch], tf.bool))
        )
        stopped = tf.where(done, t, stopped)
        going = stopped >= steps
        x = tf.where(rows(going, x), new_x, x)
        m = tf.where(rows(going, m), new_m, m)
        v = tf.where(rows(going, v), new_v, v)
        failed = tf.where(live, new_failed, failed)
        held = tf.where(live, tf.where(failed < 0, score, np.nan), held)
        return t + 1, x, m, v, failed, curve.write(t, held), last, held, stopped

    start = (
        tf.constant(0),
        init,
        tf.zeros_like(init),
        tf.zeros_like(init),
        tf.fill([batch], tf.constant(-1, tf.int32)),
        tf.TensorArray(tf.float32, size=steps),
        first,
        tf.zeros([batch]),
        tf.fill([batch], steps),
    )
    t, x, _, _, failed, curve, _, held, stopped = tf.while_loop(
        lambda t, *rest: (t < steps) & tf.reduce_any(rest[-1] >= steps), step, start
    )
    return x, end_curve(curve, held, t, steps), failed, stopped


def plain_loop(
    update: Update, init: tf.Tensor, steps: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Every step for every image: (final parameters, score per step × image, failed
    step, stop step = ``steps``)."""

    def step(
        t: tf.Tensor,
        x: tf.Tensor,
        m: tf.Tensor,
        v: tf.Tensor,
        failed: tf.Tensor,
        curve: tf.TensorArray,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.TensorArray]:
        x, m, v, failed, score, _ = update(t, x, m, v, failed)
        curve = curve.write(t, tf.where(failed < 0, score, np.nan))
        return t + 1, x, m, v, failed, curve

    # An explicit while loop, traced without AutoGraph: AutoGraph's conversion of
    # this code and everything it calls was most of the first call's time.
    failed = tf.fill([tf.shape(init)[0]], tf.constant(-1, tf.int32))
    start = (
        tf.constant(0),
        init,
        tf.zeros_like(init),
        tf.zeros_like(init),
        failed,
        tf.TensorArray(tf.float32, size=steps),
    )
    _, x, _, _, failed, curve = tf.while_loop(lambda t, *_: t < steps, step, start)
    return x, curve.stack(), failed, tf.fill(tf.shape(failed), steps)
