"""The report header's entry for one model's runner: its name and hash, its input, its
output's kind, the device and versions, and the engine's settings and batch layout with
where each came from. TensorFlow is imported when it is made (a runner exists then)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import load as model_mod

if TYPE_CHECKING:
    from ..engine.loop import Engine, EngineSettings
    from ..model.inputs import InputSpec


def model_meta(
    name: str,
    weights: str,
    spec: InputSpec,
    classes: int,
    settings: EngineSettings,
    engine: Engine,
) -> dict[str, Any]:
    """The header's entry: ``name`` (the model's file or name), ``weights`` (its hash)."""
    import tensorflow as tf

    from ..engine.device import device_description

    return {
        "name": name,
        "hash": weights,
        "input_shape": list(spec.shape),
        "input_size_source": spec.size_source,
        "input_range": [spec.low, spec.high],
        "input_range_source": spec.range_source,
        "output_kind": engine.scores.output_kind,
        "classes": classes,
        "device": device_description(engine.device),
        "tensorflow": tf.__version__,
        "keras": keras_version(),
        "engine": settings.to_dict(),
        "max_batch": engine.max_batch,
        "max_batch_source": engine.batch_source,
        "lanes": engine.lanes,
        "lanes_source": engine.lanes_source,
        "lane_width": engine.lane_width,
        "lane_width_source": engine.lane_width_source,
    }


def keras_version() -> str:
    """The Keras version: Keras 3's, or tf-keras's under ``TF_USE_LEGACY_KERAS=1``."""
    keras = model_mod.keras_module()
    version = getattr(keras, "__version__", "") or getattr(keras, "version", lambda: "")()
    model_module = getattr(getattr(keras, "Model", None), "__module__", "")
    if not version and model_module.startswith("tf_keras"):
        import tf_keras

        version = f"tf-keras {tf_keras.__version__}"
    return str(version)
