"""Colour: each channel's mean moved to the maximization image's (a cast, lighting).

A window cannot carry it; the own references' colour is the control (colour that *is*
the object flips others from the real images too)."""

from __future__ import annotations

import numpy as np

from .evidence import Images
from .transfer import Batch, Plan, Sources, to_uint8


def colour_plan(sources: Sources, batch: Batch) -> Plan:
    """Each seed's channel means given to the other classes' references; the control:
    each own-class partner's channel means, given the same way."""
    images, others = sources.images, sources.others
    tests = [batch.add(_recolour(others, image[None])) for image in images]
    controls = [batch.add(_recolour(others, sources.pair))]
    means = [image.reshape(-1, image.shape[-1]).mean(axis=0) for image in images]
    where = ["colour cast: channel means " + ", ".join(f"{v:.0f}" for v in m) for m in means]
    components = [
        np.broadcast_to(to_uint8(m), image.shape).copy()
        for m, image in zip(means, images, strict=True)
    ]
    return Plan("colour", where, tests, controls, components)


def _recolour(targets: Images, sources: Images) -> Images:
    """``targets`` with each channel's mean moved to that of ``sources`` (one source
    for all, or one per target)."""
    t = targets.astype(np.float32)
    shift = sources.astype(np.float32).mean(axis=(-3, -2), keepdims=True)
    return to_uint8(t - t.mean(axis=(-3, -2), keepdims=True) + shift)
