"""The shared Adam update (engine/adam.py) against Adam written out in NumPy, in both ε forms."""

from __future__ import annotations

import numpy as np
import pytest


def numpy_adam(grads, rate, corrected_epsilon):
    b1, b2, eps = 0.9, 0.999, 1e-8
    x = np.zeros_like(grads[0])
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        if corrected_epsilon:  # Kingma and Ba, Algorithm 1
            x = x - rate * m_hat / (np.sqrt(v_hat) + eps)
        else:  # ε on √v: the paper's "more efficient" ordering
            x = x - rate * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
    return x


@pytest.mark.parametrize("corrected_epsilon", [True, False])
@pytest.mark.parametrize("scale", [1.0, 1e-8])  # ordinary gradients, and gradients near ε
def test_adam_is_adam(corrected_epsilon, scale):
    import tensorflow as tf

    from pytest_actaudit.engine.adam import adam

    rng = np.random.default_rng(0)
    grads = [(rng.normal(size=(4, 5)) * scale).astype(np.float32) for _ in range(6)]
    x = m = v = tf.zeros([4, 5])
    for t, g in enumerate(grads):
        x, m, v = adam(x, tf.constant(g), m, v, tf.constant(t), 0.05, corrected_epsilon)
    want = numpy_adam([g.astype(np.float64) for g in grads], 0.05, corrected_epsilon)
    np.testing.assert_allclose(x.numpy(), want, rtol=1e-4, atol=1e-7)


def test_the_two_epsilon_forms_differ_only_for_gradients_near_epsilon():
    rng = np.random.default_rng(1)
    for scale, differ in ((1.0, False), (1e-9, True)):
        grads = [rng.normal(size=(8,)) * scale for _ in range(3)]
        a, b = numpy_adam(grads, 0.05, True), numpy_adam(grads, 0.05, False)
        assert (not np.allclose(a, b, rtol=1e-3)) == differ, scale
