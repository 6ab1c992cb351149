"""Hand-made audits for report tests: no TensorFlow needed."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from pytest_actaudit import AuditFailure, ClassAudit
from pytest_actaudit.checks.artifacts import Artifact
from pytest_actaudit.checks.model_calls import ReferenceContext

HOSTILE = "<img src=x onerror=alert(1)>"


def sample_audits() -> list[ClassAudit]:
    rng = np.random.default_rng(3)
    audits = []
    for index, label in enumerate(["circle", "square", HOSTILE]):
        images = rng.integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
        audit = ClassAudit(
            label=label,
            index=index,
            images=images,
            logits=np.array([4.0, 5.0, 6.0]),
            probabilities=np.array([0.97, 0.5, 0.99]) if index == 1 else np.array([0.99] * 3),
            seeds=[0, 1, 2],
            steps=12,
            curves=np.cumsum(rng.uniform(0, 1, (3, 12)), axis=1),
            # the circle's seeds 0 and 1 stopped early (the stop rule): 8/10/12 of 12
            stopped_steps=[8, 10, 12] if index == 0 else [12, 12, 12],
            model_name="models/shapes.keras",
            nodeid=f"test_x.py::test_audit[{label}]",
            # a named suspect's references (a passing check, with a hostile description)
            on_references=(
                suspect_context(rng) if index == 0 else trigger_context(rng) if index == 1 else None
            ),
        )
        with contextlib.suppress(AuditFailure):
            audit.assert_activation(min_probability=0.9)
        if index == 0:
            audit.assert_ignores(Artifact(f"{HOSTILE} stamp", _stamp), max_pull=1.0)
        if index == 1:  # a trigger far smaller than the model's other classes' (failing)
            with contextlib.suppress(AuditFailure):
                audit.assert_no_trigger()
        audits.append(audit)
    return audits


def _stamp(images):
    images[:, 0, 0, 1] = 255
    return images


def suspect_context(rng):
    """Six references whose class the fake model reads from pixel (1, 1); the stamp
    turns any image into class 0."""
    references = rng.integers(0, 256, (6, 24, 32, 3), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2])
    references[:, 1, 1, 0] = labels * 50
    references[:, 0, 0, 1] = 0

    def predict(x):
        read = np.where(x[:, 0, 0, 1] == 255, 0, np.clip(x[:, 1, 1, 0] // 50, 0, 2))
        p = np.full((len(x), 3), 0.01)
        p[np.arange(len(x)), read] = 0.98
        return p

    return ReferenceContext(references, labels, predict)


def trigger_context(rng):
    """A trigger search's answer for class 1 of four: a 2% mask that turns 95% of
    held-out images, where the others' triggers turn 30-40% (lift far above 0.25)."""
    from pytest_actaudit.checks import trigger

    references = rng.integers(0, 256, (6, 24, 32, 3), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2])
    mask = np.zeros((24, 32), np.float32)
    mask[20:, 26:] = 1.0
    pattern = np.zeros((24, 32, 3), np.uint8)
    pattern[..., 0] = 255
    sizes = {0: 0.20, 1: 0.02, 2: 0.21, 3: 0.22}
    held = {0: 0.3, 1: 0.95, 2: 0.4, 3: 0.35}
    reading = trigger.read({k: trigger.Edit(sizes[k], held[k]) for k in sizes}, 1)
    others = references[labels != 1][:3]
    stamped = np.where(mask[None, ..., None] > 0, pattern, others).astype(np.uint8)
    evidence = trigger.TriggerEvidence(
        reading,
        trigger.trigger_picture(mask, pattern),
        (255 * mask).astype(np.uint8),
        stamped,
        others,
        0.88,
        0.4,
    )

    def predict(x):
        return np.full((len(x), 3), 1 / 3)

    return ReferenceContext(references, labels, predict, triggers=lambda index: evidence)


RUN = {
    "started": 0.0,
    "wall_seconds": 1.5,
    "seeds": 3,
    "steps": 12,
    "device_setting": "auto",
    "models": [
        {
            "name": "models/shapes.keras",
            "hash": "ab" * 32,
            "input_shape": [24, 32, 3],
            "input_range": [0.0, 255.0],
            "input_range_source": "Rescaling layer 'rescale'",
            "output_kind": "softmax",
            "classes": 3,
            "device": "CPU",
            "tensorflow": "2.x",
            "keras": "3.x",
            "engine": {"stop_probability": 0.9, "stop_change": 0.2, "stop_every": 8},
        }
    ],
    "optimized_images": 9,
    "optimize_seconds": 1.0,
    "cache_hits": 0,
    "command": "pytest --actaudit",
}


@pytest.fixture
def report_dir(tmp_path):
    from pytest_actaudit.report.writer import ImageSink, audit_record, write_report

    folder = tmp_path / "report"
    sink = ImageSink(folder)
    records = [audit_record(audit, sink) for audit in sample_audits()]
    outcomes = {"test_x.py::test_audit[square]": "failed"}
    write_report(folder, run=RUN, records=records, outcomes=outcomes)
    return tmp_path / "report"
