"""Adam's update, in the graph: the one the maximization loop and the trigger search share.

Each element is its own (images and classes never interact). The bias corrections are
folded into scalars, in fewer passes over the tensor than (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε),
the update they give.
"""

from __future__ import annotations

import tensorflow as tf

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8


def adam(
    x: tf.Tensor,
    grad: tf.Tensor,
    m: tf.Tensor,
    v: tf.Tensor,
    t: tf.Tensor,
    rate: float,
    corrected_epsilon: bool = True,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Step ``t`` (from 0) of Adam at learning rate ``rate``: (x, m, v) after it.

    ``corrected_epsilon``: ε is added to √v̂ (the bias-corrected second moment), as in
    Kingma and Ba; False adds it to √v itself, the form the trigger search's tables were
    measured with. The search's scores move with that detail (a mask's logits in a
    saturated sigmoid have gradients near ε): docs/trigger-search.md gives both."""
    count = tf.cast(t + 1, tf.float32)
    m = BETA1 * m + (1.0 - BETA1) * grad
    v = BETA2 * v + (1.0 - BETA2) * tf.square(grad)
    root = tf.sqrt(1.0 - BETA2**count)
    scale = rate * root / (1.0 - BETA1**count)
    epsilon = EPSILON * root if corrected_epsilon else EPSILON
    return x - scale * m / (tf.sqrt(v) + epsilon), m, v
