"""Models from tf-keras (TF_USE_LEGACY_KERAS=1) go through the same engine.

Run in a subprocess: the Keras flavour is chosen when TensorFlow is first imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os
import numpy as np, tensorflow as tf
import pytest_actaudit
from pytest_actaudit.run.meta import keras_version

keras = tf.keras
inputs = keras.Input((16, 12, 3))
x = keras.layers.Rescaling(1 / 255.0)(inputs)
x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
dense = keras.layers.Dense(3, activation="softmax", name="predictions")
model = keras.Model(inputs, dense(x))
kernel = np.full((4, 3), -1.0, "float32"); kernel[0, 0] = 5.0
dense.set_weights([kernel, np.zeros(3, "float32")])
path = os.path.join(os.environ["OUT"], "legacy.h5")
model.save(path)
loaded = pytest_actaudit.load_model(path)
audits = pytest_actaudit.maximize(loaded, "all", seeds=2, steps=10, labels=["a", "b", "c"])
units = pytest_actaudit.maximize(loaded, [1], layer="conv", seeds=1, steps=3)

# A custom layer with a Python `if` on a tensor: tf-keras converts it with AutoGraph
# when AutoGraph is on around the call, which the engine's own functions do without.
class Gate(keras.layers.Layer):
    def call(self, x):
        if tf.reduce_mean(x) > 0.5:
            return x * 0.5
        return x

gated_in = keras.Input((16, 16, 3))
g = Gate()(keras.layers.Rescaling(1 / 255.0)(gated_in))
g = keras.layers.Conv2D(4, 3, activation="relu")(g)
gated = keras.Model(gated_in, keras.layers.Dense(2, activation="softmax")(
    keras.layers.GlobalAveragePooling2D()(g)))
gated_audits = pytest_actaudit.maximize(gated, "all", seeds=2, steps=4)
print(json.dumps({
    "module": type(loaded).__module__,
    "shape": list(audits[0].images.shape),
    "finite": bool(all(np.isfinite(a.logits).all() for a in audits)),
    "activation": loaded.layers[-1].activation.__name__,
    "unit": units[0].label,
    "keras": keras_version(),
    "gated": bool(all(np.isfinite(a.logits).all() for a in gated_audits)) and len(gated_audits),
}))
"""


def test_tf_keras_model_is_audited(tmp_path):
    pytest.importorskip("tf_keras")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", OUT=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2")
    # A file, not -c: AutoGraph reads the custom layer's source.
    script = tmp_path / "legacy_script.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("tf_keras")
    assert result["shape"] == [2, 16, 12, 3] and result["finite"]
    assert result["activation"] == "softmax"  # the user's model is untouched
    assert result["unit"] == "conv[1]" and result["keras"].startswith("tf-keras")
    assert result["gated"] == 2  # a custom layer that needs AutoGraph: retraced with it
