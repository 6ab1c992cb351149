"""The second FER2013 model of the image-quality benchmark (benchmarks/fer_judge.py): its
Keras rebuild computes what the PyTorch network computes, checked against a NumPy forward
pass written from the PyTorch code (channels first, reflect padding, flattened C×H×W)."""

import numpy as np

from benchmarks import fer_judge


def _state(rng):
    state, channels = {}, 1
    for block, width in zip((1, 2, 3, 4), (32, 64, 128, 256), strict=True):
        conv, norm = f"conv_{block}.1.", f"conv_{block}.2."
        state[conv + "weight"] = rng.normal(0, 0.3, (width, channels, 3, 3)).astype(np.float32)
        state[conv + "bias"] = rng.normal(0, 0.1, width).astype(np.float32)
        state[norm + "weight"] = rng.uniform(0.5, 1.5, width).astype(np.float32)
        state[norm + "bias"] = rng.normal(0, 0.1, width).astype(np.float32)
        state[norm + "running_mean"] = rng.normal(0, 0.5, width).astype(np.float32)
        state[norm + "running_var"] = rng.uniform(0.5, 2.0, width).astype(np.float32)
        channels = width
    state["linear.0.weight"] = rng.normal(0, 0.02, (256, 256 * 6 * 6)).astype(np.float32)
    state["linear.0.bias"] = rng.normal(0, 0.1, 256).astype(np.float32)
    state["linear.2.weight"] = rng.normal(0, 0.2, (7, 256)).astype(np.float32)
    state["linear.2.bias"] = rng.normal(0, 0.1, 7).astype(np.float32)
    return state


def _torch_forward(state, x):
    """NetworkV2.forward of the package, in NumPy, on N×1×48×48."""
    for block, stride in zip((1, 2, 3, 4), (1, 2, 2, 2), strict=True):
        w, b = state[f"conv_{block}.1.weight"], state[f"conv_{block}.1.bias"]
        x = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
        size = (x.shape[2] - 3) // stride + 1
        out = np.zeros((x.shape[0], w.shape[0], size, size))
        for i in range(3):
            for j in range(3):
                patch = x[:, :, i : i + stride * size : stride, j : j + stride * size : stride]
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
        out += b[None, :, None, None]
        g, beta, mean, var = (
            state[f"conv_{block}.2.{k}"][None, :, None, None]
            for k in ("weight", "bias", "running_mean", "running_var")
        )
        x = np.maximum((out - mean) / np.sqrt(var + 1e-5) * g + beta, 0)
    x = x.reshape(len(x), -1)
    x = np.maximum(x @ state["linear.0.weight"].T + state["linear.0.bias"], 0)
    return 1 / (1 + np.exp(-(x @ state["linear.2.weight"].T + state["linear.2.bias"])))


def test_keras_rebuild_matches_the_pytorch_network():
    rng = np.random.default_rng(0)
    state = _state(rng)
    x = rng.uniform(-1, 1, (2, 48, 48)).astype(np.float32)
    keras_out = fer_judge.build(state).predict(x[..., None], verbose=0)
    np.testing.assert_allclose(keras_out, _torch_forward(state, x[:, None]), atol=2e-4)
