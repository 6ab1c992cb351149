"""Trigger search (Neural Cleanse, Wang et al. 2019), batched: for every target class,
the smallest mask ``m`` (H × W, in [0, 1]) and pattern ``p`` (H × W × C) such that
``x' = (1 − m)·x + m·p`` turns trusted images of *other* classes into the class; its size
is the mask's mean (the share of the image the trigger covers).

Each target's trigger is fitted to its own images (``images_per_class`` trusted
references of other classes), with cross-entropy towards the target plus ``λ · size``.
``λ`` is adapted per target inside the loop, as Neural Cleanse does: raised while the
trigger turns at least ``success`` of the images, lowered while it does not; the
smallest trigger seen while it succeeded is kept (a target never turned keeps its
last). The kept trigger is then pasted into ``held_out`` further references of other
classes, never fitted to: the share it turns is its test (a learned artifact works on
them; an adversarial patch fitted to a few images mostly does not). Every target of a
chunk is one batch, the whole loop and the test one ``tf.function``: nothing leaves the
device between steps.

The judging (the score among the model's classes) is numpy, in
:mod:`pytest_actaudit.checks.trigger`; this module only optimizes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from ..model.inputs import InputSpec
from .adam import adam
from .objective import Scorer
from .targets import score_models


@dataclass(frozen=True)
class TriggerSettings:
    """How triggers are searched. ``max_images``: images per compiled call (fitted and
    held out); targets beyond it run in further calls of the same trace."""

    steps: int = 96
    images_per_class: int = 8
    held_out: int = 48  # further images per class, never fitted: the kept trigger's test
    learning_rate: float = 0.2
    success: float = 0.75  # share of a target's fitted images a trigger must turn to count
    initial_cost: float = 1.0  # λ at the start, per target
    cost_factor: float = 1.1  # λ's change per step: up on success, down otherwise
    max_images: int = 256
    grid: int = 32  # cells of the mask and pattern along the longer side
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trigger:
    """The smallest trigger found for one target class."""

    target: int
    mask: np.ndarray  # H × W float32 in [0, 1]
    pattern: np.ndarray  # H × W × C uint8
    mask_size: float  # mean of the mask; 1.0 when no mask reached ``success``
    success: float  # share of the images it was fitted to that the kept mask turns
    held_out: float  # share of the held-out images the kept mask turns
    held_out_rise: float  # mean rise of log p(target) it gives the held-out images, nats
    images: np.ndarray  # the target's own images (K × H × W × C uint8), others' classes
    seconds: float  # this target's share of its chunk's time

    def stamped(self, images: np.ndarray) -> np.ndarray:
        """``images`` (uint8) with the mask trigger applied."""
        m = self.mask[None, :, :, None]
        out = (1.0 - m) * images.astype(np.float32) + m * self.pattern.astype(np.float32)
        return np.asarray(np.clip(np.round(out), 0, 255), np.uint8)


def images_for_targets(
    labels: np.ndarray, targets: Sequence[int], per_class: int, seed: int = 0
) -> np.ndarray:
    """Per target, ``per_class`` indices of references of other classes (T × K), drawn
    round-robin over those classes so that no one class fills a target's set; with fewer
    references than ``per_class``, some are drawn twice (so a held-out image may be one
    the trigger was fitted to when references are few)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    out = np.zeros((len(targets), per_class), np.int64)
    for row, target in enumerate(targets):
        pools = [rng.permutation(np.flatnonzero(labels == k)) for k in np.unique(labels)]
        pools = [p for p, k in zip(pools, np.unique(labels), strict=True) if k != target]
        if not pools:
            raise ValueError(
                f"class {target}: the trigger search needs references of other classes; "
                "every reference given is of this class"
            )
        order = rng.permutation(len(pools))
        picked = [
            pools[order[i % len(pools)]][(i // len(pools)) % len(pools[order[i % len(pools)]])]
            for i in range(per_class)
        ]
        out[row] = picked
    return out


class TriggerSearch:
    """Searches triggers for one model. Build once; ``run`` many times."""

    def __init__(self, model: Any, spec: InputSpec, settings: TriggerSettings) -> None:
        self.model = model
        self.spec = spec
        self.settings = settings
        # the maximization's view of the model: its input range or preprocessing, its head
        self.scorer = Scorer(model, spec, score_models(model))
        # The mask and pattern live on a coarse grid (bilinear up to the image): a
        # trigger of single pixels is an adversarial example, which every class of a
        # small model has; a learned artifact is larger than a pixel.
        cell = max(1, round(max(spec.height, spec.width) / settings.grid))
        self.grid = (max(1, spec.height // cell), max(1, spec.width // cell))
        c = spec.channels
        # one trace for any number of targets: a chunk and its remainder share it
        self._loop = tf.function(
            self._optimize,
            autograph=False,
            input_signature=[
                tf.TensorSpec([None, None, spec.height, spec.width, c], tf.uint8),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, *self.grid, 1], tf.float32),
                tf.TensorSpec([None, *self.grid, c], tf.float32),
                tf.TensorSpec([], tf.int32),
            ],
        )

    # ------------------------------------------------------------------ host side
    def run(
        self, references: np.ndarray, labels: np.ndarray, targets: Sequence[int]
    ) -> list[Trigger]:
        """The triggers of ``targets`` (class indices) from ``references`` (uint8 N × H ×
        W × C, trusted) and their class indices."""
        s = self.settings
        targets = [int(t) for t in targets]
        chosen = images_for_targets(labels, targets, s.images_per_class + s.held_out, s.seed)
        per_chunk = max(1, s.max_images // (s.images_per_class + s.held_out))
        out: list[Trigger] = []
        for start in range(0, len(targets), per_chunk):
            rows = list(range(start, min(len(targets), start + per_chunk)))
            began = time.perf_counter()
            images = references[chosen[rows]]  # t × (K + M) × H × W × C
            found = self._loop(
                tf.constant(images, tf.uint8),
                tf.constant([targets[r] for r in rows], tf.int32),
                *self._initial([targets[r] for r in rows]),
                tf.constant(s.steps, tf.int32),
            )
            found = [np.asarray(value) for value in found]
            share = (time.perf_counter() - began) / len(rows)
            out += [
                self._trigger(targets[r], i, found, images[i, : s.images_per_class], share)
                for i, r in enumerate(rows)
            ]
        return out

    def _initial(self, targets: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
        """Each target's starting mask and pattern (raw), from the seed and the target
        alone: a trigger does not depend on what else is searched with it."""
        h, w = self.grid
        c = self.spec.channels
        masks, patterns = [], []
        for target in targets:
            rng = np.random.default_rng([self.settings.seed, target])
            masks.append(-4.0 + 0.1 * rng.standard_normal((h, w, 1)))  # about 2% cover
            patterns.append(rng.standard_normal((h, w, c)))
        return (
            tf.constant(np.stack(masks), tf.float32),
            tf.constant(np.stack(patterns), tf.float32),
        )

    def _trigger(
        self, target: int, i: int, found: list[np.ndarray], images: np.ndarray, seconds: float
    ) -> Trigger:
        mask, pattern, mask_size, mask_ok, held, rise = found
        return Trigger(
            target=target,
            mask=mask[i, :, :, 0].astype(np.float32),
            pattern=np.clip(np.round(255.0 * pattern[i]), 0, 255).astype(np.uint8),
            mask_size=float(mask_size[i]),
            success=float(mask_ok[i]),
            held_out=float(held[i]),
            held_out_rise=float(rise[i]),
            images=images,
            seconds=seconds,
        )

    # ----------------------------------------------------------------- device side
    def _log_probabilities(self, unit: tf.Tensor) -> tf.Tensor:
        """log p(class | image) for unit images, whatever the model's head."""
        z = self.scorer.logits(self.scorer.to_input(unit))
        if self.scorer.models.output_kind == "log":  # an opaque model giving probabilities
            z = tf.math.log(z + 1e-12)
        return tf.nn.log_softmax(z, axis=-1)

    def _stamped(self, x: tf.Tensor, params: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """(images with the trigger, its size) for unit images ``x`` (t × K × H × W × C)
        and the raw mask and pattern."""
        mask_raw, pattern_raw = params
        size = [self.spec.height, self.spec.width]
        mask = tf.image.resize(tf.sigmoid(mask_raw), size)[:, None]  # t × 1 × H × W × 1
        pattern = tf.image.resize(tf.sigmoid(pattern_raw), size)[:, None]
        return (1.0 - mask) * x + mask * pattern, tf.reduce_mean(mask, axis=[1, 2, 3, 4])

    def _hits(self, stamped: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(log p(target), whether it is the top class) per image, t × K each."""
        h, w, c = self.spec.height, self.spec.width, self.spec.channels
        t, k = tf.shape(stamped)[0], tf.shape(stamped)[1]
        logp = self._log_probabilities(tf.reshape(stamped, [t * k, h, w, c]))
        logp = tf.reshape(logp, [t, k, -1])
        top = tf.argmax(logp, -1, output_type=tf.int32) == targets[:, None]
        return tf.gather(logp, targets, axis=2, batch_dims=1), tf.cast(top, tf.float32)

    def _optimize(
        self,
        images: tf.Tensor,
        targets: tf.Tensor,
        mask_raw: tf.Tensor,
        pattern_raw: tf.Tensor,
        steps: tf.Tensor,
    ) -> Any:
        s = self.settings
        x = tf.cast(images, tf.float32) / 255.0
        x, test = x[:, : s.images_per_class], x[:, s.images_per_class :]
        t = tf.shape(x)[0]
        params = [mask_raw, pattern_raw]
        cost = tf.fill([t], s.initial_cost)
        best = tf.ones([t])  # no trigger succeeded yet: the largest size
        kept = [*params, tf.zeros([t])]

        def step(i: tf.Tensor, params: Any, m: Any, v: Any, cost: Any, best: Any, kept: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(params)
                stamped, size = self._stamped(x, params)
                logp, hits = self._hits(stamped, targets)
                loss = tf.reduce_sum(-tf.reduce_mean(logp, -1) + cost * size)
            grads = tape.gradient(loss, params)
            rate = tf.reduce_mean(hits, -1)
            ok = rate >= s.success
            better = ok & (size < best)
            best = tf.where(better, size, best)
            flag = better[:, None, None, None]
            kept = [
                tf.where(flag, params[0], kept[0]),
                tf.where(flag, params[1], kept[1]),
                tf.where(better, rate, kept[2]),
            ]
            cost = tf.where(ok, cost * s.cost_factor, cost / s.cost_factor)
            stepped = [
                adam(p, g, a, b, i, s.learning_rate, corrected_epsilon=False)
                for p, g, a, b in zip(params, grads, m, v, strict=True)
            ]
            params, m, v = ([part[k] for part in stepped] for k in range(3))
            return i + 1, params, m, v, cost, best, kept

        zeros = [tf.zeros_like(p) for p in params]
        start = (tf.constant(0), params, zeros, zeros, cost, best, kept)
        _, last, _, _, _, best, kept = tf.while_loop(lambda i, *_: i < steps, step, start)
        # a target never turned enough of its images keeps its last trigger (the largest
        # it was pushed to), with that trigger's share of its images, not its random start
        reached = best < 1.0
        last_rate = tf.reduce_mean(self._hits(self._stamped(x, last)[0], targets)[1], -1)
        flag = reached[:, None, None, None]
        kept = [
            tf.where(flag, kept[0], last[0]),
            tf.where(flag, kept[1], last[1]),
            tf.where(reached, kept[2], last_rate),
        ]
        # the kept trigger on the held-out images: nothing was fitted to them
        logp, hits = self._hits(self._stamped(test, kept[:2])[0], targets)
        rise = tf.reduce_mean(logp - self._hits(test, targets)[0], -1)
        held = tf.reduce_mean(hits, -1)
        size = [self.spec.height, self.spec.width]
        return (
            tf.image.resize(tf.sigmoid(kept[0]), size),
            tf.image.resize(tf.sigmoid(kept[1]), size),
            best,
            kept[2],
            held,
            rise,
        )


def search(
    model: Any,
    spec: InputSpec,
    references: np.ndarray,
    labels: np.ndarray,
    targets: Sequence[int],
    settings: TriggerSettings | None = None,
) -> list[Trigger]:
    """The triggers of ``targets``: see :class:`TriggerSearch`."""
    return TriggerSearch(model, spec, settings or TriggerSettings()).run(
        references, labels, targets
    )
