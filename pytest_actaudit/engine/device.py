"""Where the engine runs and how much it takes on at once: the device, the images per
compiled batch (from the memory one image needs), the lanes a batch runs side by side
and the place of every image in its lane. The figures behind the defaults are in
docs/engine-speed.md."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import ActauditError

AUTO_BATCH_LIMIT = 256  # beyond this a CPU gains nothing and a report waits longer
OPAQUE_BATCH = 64  # when the layers cannot be measured (a SavedModel through TFSMLayer)
GPU_BUDGET = 2 * 2**30  # TensorFlow does not tell a GPU's total memory portably
# float16 models: a static loss scale keeps small gradients from flushing to zero
FLOAT16_LOSS_SCALE = 256.0


def device_name(requested: str) -> str:
    """TensorFlow device string for ``auto|cpu|gpu|gpu:N``; a GPU that is not there
    is an error naming what is."""
    gpus = tf.config.list_logical_devices("GPU")
    if requested == "auto":
        return gpus[0].name if gpus else "/device:CPU:0"
    if requested == "cpu":
        return "/device:CPU:0"
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if index >= len(gpus):
        seen = ", ".join(g.name for g in gpus) or "none"
        raise ActauditError(
            f"--actaudit-device {requested} asks for GPU {index} but TensorFlow sees {seen}; "
            "use --actaudit-device auto or cpu, or check CUDA_VISIBLE_DEVICES and the "
            "tensorflow[and-cuda] install (pip install 'pytest-actaudit[gpu]')"
        )
    return str(gpus[index].name)


def device_description(name: str) -> str:
    """A human name for the report header: the GPU model, or CPU."""
    if "GPU" not in name.upper():
        return "CPU"
    try:
        physical = tf.config.list_physical_devices("GPU")
        index = int(name.rsplit(":", 1)[1])
        details = tf.config.experimental.get_device_details(physical[index])
        return f"{name} ({details.get('device_name', 'GPU')})"
    except Exception:  # details are cosmetic
        return name


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer of ``model``, nested models' layers included (after the model)."""
    for layer in getattr(model, "layers", None) or []:
        yield layer
        yield from all_layers(layer)


def computes_in_float16(model: Any) -> bool:
    """True for mixed-precision models (any layer computing in float16/bfloat16)."""
    return any(
        str(getattr(layer, "compute_dtype", "float32")) in ("float16", "bfloat16")
        for layer in all_layers(model)
    )


def bytes_per_image(model: Any, shape: Sequence[int]) -> int:
    """Memory one image needs in a step: every layer's output (kept for the backward
    pass, plus as much again for its gradient), and the optimizer's own tensors
    (parameters, Adam moments, image, view, gradients: about 12 images' worth)."""

    def activations(layer: Any) -> int:
        if getattr(layer, "layers", None):  # nested model: its layers count, not its output
            return 0
        try:
            out = layer.output
        except (AttributeError, ValueError, RuntimeError):  # shared/unbuilt layers
            return 0
        total = 0
        for tensor in out if isinstance(out, (list, tuple)) else [out]:
            dims = [d for d in tuple(getattr(tensor, "shape", ()))[1:] if d is not None]
            total += int(np.prod(dims)) if dims else 0
        return total

    floats = 2 * sum(activations(layer) for layer in all_layers(model))
    return 4 * (floats + 12 * int(np.prod(shape)))


def memory_budget(device: str) -> tuple[int, str]:
    """(bytes the engine may use, where that figure comes from): a quarter of the host
    memory available now on CPU; a fixed 2 GiB on a GPU."""
    if "GPU" in device.upper():
        return GPU_BUDGET, "GPU, assumed 2 GiB; set --actaudit-max-batch on a larger GPU"
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        available = int(info["MemAvailable"].split()[0]) * 1024
        return available // 4, f"¼ of {available / 2**30:.1f} GiB available"
    except (OSError, KeyError, ValueError):
        return 4 * 2**30, "4 GiB assumed (host memory unknown)"


def auto_batch(model: Any, shape: Sequence[int], device: str) -> tuple[int, str]:
    """The chunk size for ``max_batch=0`` and a line saying how it was chosen."""
    if any(type(layer).__name__ == "TFSMLayer" for layer in getattr(model, "layers", [])):
        # a SavedModel's layers are opaque: no estimate, the former fixed bound
        return OPAQUE_BATCH, f"auto: {OPAQUE_BATCH} (SavedModel layers are opaque)"
    per_image = bytes_per_image(model, shape)
    budget, source = memory_budget(device)
    batch = int(max(1, min(AUTO_BATCH_LIMIT, budget // max(per_image, 1))))
    return batch, f"auto: {per_image / 2**20:.1f} MB per image, {source}"


# Seeds per lane by default: the default seed count, so the usual plan fills every lane.
LANE_WIDTH = 3
# Lanes a compiled batch runs at the same time at most (``lanes=0``): beyond it the
# gain was not measured.
AUTO_LANES = 16


def auto_lane_width() -> tuple[int, str]:
    """Images per lane for ``lane_width=0``: a constant, never a function of the plan,
    the memory free now, the cores or the device. CPU and GPU kernels choose their
    blocking (and so their float summation order) by the batch size, and may treat a
    row by its place in the batch; 128 steps of ascent amplify a last-bit difference
    into visible ones. So an image is reproducible only if its lane always has the same
    shape and the image the same row in it (``lane_layout``)."""
    return LANE_WIDTH, f"auto: {LANE_WIDTH} (one class's seeds per lane)"


def usable_cores() -> int:
    """CPU cores this process may run on: its CPU affinity (a cpuset), not the host's
    count; a CFS quota (docker --cpus) is not seen, set --actaudit-lanes there."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_lanes(device: str) -> tuple[int, str]:
    """Lanes a compiled batch runs at the same time, for ``lanes=0``: ``AUTO_LANES``
    (fewer where ``max_batch`` holds fewer), whose loops TensorFlow runs side by side;
    on a CPU this fills the cores that one small lane's ops leave idle. 1 on a CPU core
    of its own: under pytest-xdist the workers share the cores
    (``PYTEST_XDIST_WORKER_COUNT``, set in each worker), and 2 workers on 2 cores run
    one lane at a time each. On a GPU, where one stream runs the lanes' kernels in turn,
    the lanes of a batch still save a return to the host between them."""
    if "GPU" in device.upper():
        return AUTO_LANES, "auto: GPU"
    cores = usable_cores()
    source = f"auto: {cores} CPU core{'s' if cores != 1 else ''}"
    try:
        workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        workers = 1
    if workers > 1:
        source += f" shared by {workers} xdist workers"
    return (AUTO_LANES if cores // workers >= 2 else 1), source


def lane_layout(plan: Sequence[tuple[int, int]], width: int) -> list[list[tuple[int, int]]]:
    """The lanes that optimize ``plan``'s (target, seed) pairs: one lane per target and
    block of ``width`` seeds, the seed ``s`` always in row ``s % width`` of its lane.
    An image's place and its lane's shape are thus a function of the image alone, never
    of what else is planned: kernels may treat rows by their place in the batch (a
    matrix product's last block of rows, say) as well as by its size. Rows the plan
    does not ask for hold the same target's other seeds, optimized and dropped. Lanes
    come in the order of their first pair in ``plan``."""
    lanes: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for target, seed in plan:
        base = int(seed) - int(seed) % width
        key = (int(target), base)
        if key not in lanes:
            lanes[key] = [(int(target), base + row) for row in range(width)]
    return list(lanes.values())


def lane_sizes(batch: int, lanes: int) -> list[int]:
    """Sizes of ``lanes`` near-equal parts of a batch (larger ones first)."""
    return [batch // lanes + (1 if i < batch % lanes else 0) for i in range(lanes)]


class Aside(threading.Thread):
    """A daemon thread that runs ``work`` under ``device`` and keeps its error (for the
    caller's thread to raise)."""

    def __init__(self, work: Callable[[], None], device: str) -> None:
        super().__init__(name="actaudit-trace", daemon=True)
        self.work, self.device = work, device
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with tf.device(self.device):
                self.work()
        except BaseException as exc:  # handed to the caller's thread by Engine._join
            self.error = exc
