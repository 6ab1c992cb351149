"""Reading real reference images: one subfolder per class name holding PNG/JPEG files.
numpy and OpenCV only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .errors import ActauditError

SUFFIXES = {".png", ".jpg", ".jpeg"}


def read_references(
    folder: str | Path, labels: list[str], shape: tuple[int, int, int]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """(images N × H × W × C uint8, class indices N); images are resized to the model's
    input ``shape`` and converted to its channel count."""
    import cv2

    root = Path(folder)
    if not root.is_dir():
        raise ActauditError(
            f"references folder not found: {str(root)!r}; pass --actaudit-references DIR "
            "(one subfolder per class name, holding PNG/JPEG images the model should classify "
            "correctly and that are free of any suspected artifact)"
        )
    height, width, channels = shape
    images: list[NDArray[np.uint8]] = []
    indices: list[int] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name not in labels:
            shown = ", ".join(map(repr, labels[:20]))
            raise ActauditError(
                f"references subfolder {sub.name!r} in {str(root)!r} is not a class name; "
                f"valid names: {shown}"
            )
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() not in SUFFIXES:
                continue
            flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
            image = cv2.imread(str(path), flag)
            if image is None:
                raise ActauditError(f"reference image {str(path)!r} cannot be read")
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            if channels == 1:
                image = image[..., None]
            else:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                if channels == 4:
                    image = np.concatenate([image, np.full_like(image[..., :1], 255)], axis=-1)
            images.append(np.asarray(image, np.uint8))
            indices.append(labels.index(sub.name))
    if not images:
        raise ActauditError(
            f"no PNG/JPEG images found under {str(root)!r}; expected {root}/<class name>/*.png"
        )
    return np.stack(images), np.array(indices, np.int64)
