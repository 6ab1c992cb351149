"""The model on finished and real images (uint8, N×H×W×C): its predictions, the
attribution of a class, its last bank of detectors, the penultimate features of a
neutral image, and how well each known input range or preprocessing reads labelled
images. The optimization's images are evaluated here too (``Inference.evaluate``), by
the same function as the references, so both are measured alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from ..model import RANGES
from ..preprocess import Preprocess, parse_preprocess
from .device import Aside
from .objective import Scorer, flat, model_autograph_on_demand
from .targets import detector_model


@dataclass(frozen=True)
class InputReading:
    """How many labelled images the model reads right when they are fed one known way:
    an input range of ``model.RANGES`` (``kind="range"``) or a preprocessing mode
    (``kind="preprocess"``), by ``name``."""

    kind: Literal["range", "preprocess"]
    name: str
    accuracy: float


class Inference:
    """Reads uint8 images with one model, in chunks of ``max_batch`` on ``device``."""

    def __init__(self, scorer: Scorer, device: str, max_batch: int, loss_scale: float) -> None:
        self.scorer = scorer
        self.spec = scorer.spec
        self.device = device
        self.max_batch = max_batch
        self.loss_scale = loss_scale  # float16 models: see Engine._lane
        self._neutral: NDArray[np.float64] | None = None
        self._detector_model: Any = None  # built on first use; False: the model has none
        self._build_functions()
        scorer.on_autograph(self._build_functions)

    def _build_functions(self) -> None:
        # One trace for any batch: the optimization's chunks, their remainder, the
        # probe's references. An engine's first chunk traces it on a helper thread
        # while its loop runs.
        self.evaluate_traced = False  # or being traced aside (trace_aside)
        self.evaluate = tf.function(
            self._evaluate_graph,
            autograph=False,
            input_signature=[
                tf.TensorSpec([None, *self.spec.shape], tf.uint8),
                tf.TensorSpec([None], tf.int32),
            ],
        )
        self._predict = tf.function(self._predict_graph, reduce_retracing=True, autograph=False)

    def trace_aside(self) -> Aside | None:
        """Start tracing ``evaluate`` on a helper thread, once: an engine's loop runs
        its first chunk in TensorFlow's runtime without Python's lock, so the
        evaluation's tracing (Python) and first instantiation overlap with it instead of
        following it (docs/engine-speed.md, a user's first call). The evaluation is a
        function of its own, not part of the loop's graph, so a first call does not
        optimize and instantiate both in one piece either. The caller joins the thread
        and raises its error (``Engine._join``)."""
        if self.evaluate_traced:
            return None
        self.evaluate_traced = True
        aside = Aside(self._warm_evaluation, self.device)
        aside.start()
        return aside

    def _warm_evaluation(self) -> None:
        blank = tf.zeros([1, *self.spec.shape], tf.uint8)
        self.evaluate(blank, tf.zeros([1], tf.int32))

    def _evaluate_graph(
        self, images: tf.Tensor, targets: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Target logit, probability, attribution map and penultimate features of
        uint8 images.

        Attribution is gradient × input relative to mid-grey, |·| summed over channels:
        how much each pixel's departure from a neutral image raises the target logit.
        """
        unit = tf.cast(images, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            tape.watch(unit)
            logits, probs, features = self.scorer.scores(unit, with_features=True)
            target_logits = tf.gather(logits, targets, axis=1, batch_dims=1)
            scaled = target_logits * self.loss_scale
        grad = tape.gradient(scaled, unit) / self.loss_scale
        attribution = tf.reduce_sum(tf.abs(grad * (unit - 0.5)), axis=-1)
        probs = tf.gather(probs, targets, axis=1, batch_dims=1)
        if features is None:
            return target_logits, probs, attribution, self.scorer.features(unit)
        return target_logits, probs, attribution, flat(features)

    def _chunks(self, images: NDArray[np.uint8]) -> range:
        return range(0, len(images), self.max_batch)

    @model_autograph_on_demand
    def neutral_features(self) -> NDArray[np.float64]:
        """Penultimate features of a mid-grey image: the origin that the feature
        consistency metric centres on (uncentred ReLU features all look alike)."""
        if self._neutral is None:
            grey = tf.fill([1, *self.spec.shape], 0.5)
            with tf.device(self.device):
                self._neutral = self.scorer.features(grey).numpy()[0].astype(np.float64)
        return self._neutral

    @model_autograph_on_demand
    def attribution(self, images: NDArray[np.uint8], target: int) -> NDArray[np.float32]:
        """Attribution maps (N×H×W) of uint8 images for one class, in chunks."""
        maps = []
        with tf.device(self.device):
            for start in self._chunks(images):
                chunk = images[start : start + self.max_batch]
                targets = tf.fill([len(chunk)], tf.constant(target, tf.int32))
                maps.append(self.evaluate(tf.constant(chunk), targets)[2].numpy())
        return np.concatenate(maps)

    @model_autograph_on_demand
    def detectors(
        self, images: NDArray[np.uint8]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The last spatial layer's channels at their strongest place, for uint8 images
        N×H×W×C: (maxima N×K, places N×K×2 as (y, x) centres in input pixels). Empty
        (K = 0) for a model without a spatial layer."""
        if self._detector_model is None:
            self._detector_model = detector_model(self.scorer.model) or False
        if self._detector_model is False:
            return np.zeros((len(images), 0)), np.zeros((len(images), 0, 2))
        maxima, places = [], []
        height, width = self.spec.shape[:2]
        with tf.device(self.device):
            for start in self._chunks(images):
                chunk = tf.constant(images[start : start + self.max_batch])
                unit = tf.cast(chunk, tf.float32) / 255.0
                maps = self.scorer.call(self._detector_model, self.scorer.to_input(unit))
                maps = maps.numpy()
                n, h, w, k = maps.shape
                flat_maps = maps.reshape(n, h * w, k).astype(np.float64)
                where = flat_maps.argmax(axis=1)
                maxima.append(flat_maps.max(axis=1))
                ys = (where // w + 0.5) * height / h
                xs = (where % w + 0.5) * width / w
                places.append(np.stack([ys, xs], axis=-1))
        return np.concatenate(maxima), np.concatenate(places)

    @model_autograph_on_demand
    def rank_inputs(
        self, images: NDArray[np.uint8], labels: NDArray[np.int64]
    ) -> list[InputReading]:
        """How many of labelled uint8 ``images`` the model reads right when they are fed in
        each known input range or preprocessing, best first."""
        # A range LOW-HIGH is the preprocessing (x - mean) / std of 0-255 pixels with
        # std = 255 / (HIGH - LOW) and mean = -LOW * std: one code path for every candidate.
        candidates: list[tuple[Literal["range", "preprocess"], str, Preprocess]] = [
            ("range", name, Preprocess(name, (-low * 255 / (high - low),), (255 / (high - low),)))
            for name, (low, high) in RANGES.items()
        ]
        if self.spec.channels == 3:
            candidates += [("preprocess", m, parse_preprocess(m)) for m in ("caffe", "torch")]
        readings = []
        with tf.device(self.device):
            for kind, name, candidate in candidates:
                feed = candidate.tf_function(self.spec.channels)
                right = 0
                for start in self._chunks(images):
                    chunk = tf.cast(tf.constant(images[start : start + self.max_batch]), tf.float32)
                    logits = self.scorer.call(self.scorer.models.logits, feed(chunk))
                    predicted = np.argmax(np.asarray(logits), axis=1)
                    right += int(np.sum(predicted == labels[start : start + self.max_batch]))
                readings.append(InputReading(kind, name, right / max(1, len(images))))
        return sorted(readings, key=lambda reading: -reading.accuracy)

    @model_autograph_on_demand
    def predict(self, images: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(logits, probabilities) of uint8 images N×H×W×C, all classes, in chunks."""
        logits, probs = [], []
        with tf.device(self.device):
            for start in self._chunks(images):
                chunk = tf.constant(images[start : start + self.max_batch])
                lo, pr = self._predict(chunk)
                logits.append(lo.numpy())
                probs.append(pr.numpy())
        return np.concatenate(logits), np.concatenate(probs)

    def _predict_graph(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        logits, probs, _ = self.scorer.scores(tf.cast(images, tf.float32) / 255.0)
        return logits, probs
