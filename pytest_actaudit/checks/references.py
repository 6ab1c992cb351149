"""Reading real reference images from a folder: one subfolder per class name holding
PNG/JPEG files, or a flat folder of photos of anything whose classes the model reads
itself (a many-class model's team has a few dozen photos, not a folder per class).

Every file is checked before it is trusted: a JPEG or PNG cut short decodes partly
(OpenCV fills the rest with grey) and would be a wrong reference; such files are
skipped and named, all of them. Conversions to the model's input (another size,
grey photos for a colour model) are counted so the caller can say so.

numpy and OpenCV only; the model is reached through ``classify`` (uint8 images →
class indices) for a flat folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ActauditError

SUFFIXES = {".png", ".jpg", ".jpeg"}
Classify = Callable[[NDArray[np.uint8]], NDArray[np.int64]]


class References(tuple):  # type: ignore[type-arg]
    """Trusted references: a 2-tuple ``(images, labels)`` (uint8 N × H × W × C, int N),
    so ``images, labels = references`` works, with where they came from.

    ``read_by_model``: the labels are the model's own readings (argmax of its
    probabilities, through the same preprocessing as every check), not given classes —
    the model's accuracy on them is 100% by construction. ``folder``: the folder read
    (None when given in memory). ``skipped``: files not used, each with why.
    ``conversions``: what was done to fit the model's input, in words."""

    read_by_model: bool
    folder: str | None
    skipped: list[str]
    conversions: list[str]

    def __new__(
        cls,
        images: Any,
        labels: Any,
        *,
        read_by_model: bool = False,
        folder: str | None = None,
        skipped: list[str] | None = None,
        conversions: list[str] | None = None,
    ) -> References:
        self = super().__new__(cls, (images, labels))
        self.read_by_model = read_by_model
        self.folder = folder
        self.skipped = list(skipped or [])
        self.conversions = list(conversions or [])
        return self

    def __reduce__(self) -> Any:  # pickling (xdist, copies) keeps the attributes
        return (
            _rebuild,
            (tuple(self), self.read_by_model, self.folder, self.skipped, self.conversions),
        )

    @property
    def images(self) -> NDArray[np.uint8]:
        return self[0]  # type: ignore[no-any-return]

    @property
    def labels(self) -> NDArray[np.int64]:
        return self[1]  # type: ignore[no-any-return]

    def describe(self) -> str:
        """One line for the run's header and the report: how many, from where, and
        where the classes come from."""
        where = f" from {self.folder}" if self.folder else ""
        count = len(self.images)
        if self.read_by_model:
            classes = len(np.unique(self.labels))
            text = (
                f"{count} photos{where}, classes read by the model (no class folders): "
                f"{classes} class{'es' if classes != 1 else ''} among them"
            )
        else:
            text = f"{count} images of {len(np.unique(self.labels))} classes{where}"
        return "; ".join([text, *self.conversions])

    def warnings(self) -> list[str]:
        """What a user must hear about: files skipped, references converted."""
        out = []
        if self.skipped:
            out.append(
                f"{len(self.skipped)} reference file(s) in {self.folder} skipped: "
                + "; ".join(self.skipped)
            )
        if self.conversions:
            out.append(f"references in {self.folder}: " + "; ".join(self.conversions))
        return out


def _rebuild(
    pair: tuple[Any, Any],
    read_by_model: bool,
    folder: str | None,
    skipped: list[str],
    conversions: list[str],
) -> References:
    return References(
        *pair,
        read_by_model=read_by_model,
        folder=folder,
        skipped=skipped,
        conversions=conversions,
    )


def read_by_model(images: Any, classify: Classify, folder: str | None = None) -> References:
    """References whose classes are the model's own readings of ``images``."""
    images = np.asarray(images, np.uint8)
    labels = np.asarray(classify(images), np.int64)
    return References(images, labels, read_by_model=True, folder=folder)


def truncation(path: Path, data: bytes) -> str | None:
    """Why a JPEG or PNG file is cut short (None if it is whole): decoders fill what is
    missing with grey and say so only on stderr."""
    if data[:2] == b"\xff\xd8":
        return None if _jpeg_complete(data) else "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return None if _png_complete(data) else "truncated PNG (no IEND chunk)"
    return None


def _jpeg_complete(data: bytes) -> bool:
    """The JPEG's markers lead to its end-of-image marker. Marker segments are skipped
    by their length (an EXIF thumbnail holds its own end marker; bytes after the end,
    such as a motion photo's video, are allowed); entropy-coded data is scanned for the
    next marker."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if i + 3 >= n:
            return False
        length = (data[i + 2] << 8) | data[i + 3]
        i += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while i + 1 < n:
                if data[i] == 0xFF and data[i + 1] != 0 and not 0xD0 <= data[i + 1] <= 0xD7:
                    break
                i += 1
    return False


def _png_complete(data: bytes) -> bool:
    i, n = 8, len(data)
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if i + 12 + length > n:
            return False
        if kind == b"IEND":
            return True
        i += 12 + length
    return False


def _decode(path: Path, channels: int) -> tuple[Any, str, int]:
    """(image with the file's own channels or None, why not, the file's channel count)."""
    import cv2

    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})", 0
    if not data:
        return None, "empty file", 0
    why = truncation(path, data)
    if why:
        return None, why, 0
    buffer = np.frombuffer(data, np.uint8)
    raw: Any = None
    try:
        raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
        image = None if raw is None or raw.size == 0 else cv2.imdecode(buffer, flag)
    except cv2.error:
        image = None
    if image is None:
        return None, "cannot be decoded as an image", 0
    own = 1 if raw.ndim == 2 else int(raw.shape[2])
    return image, "", own


class _Reader:
    """Reads files one by one into the model's input, counting what was converted."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.height, self.width, self.channels = shape
        self.images: list[NDArray[np.uint8]] = []
        self.skipped: list[str] = []
        self.sizes: dict[tuple[int, int], int] = {}
        self.grey_for_colour = 0
        self.colour_for_grey = 0
        self.alpha = 0

    def read(self, path: Path, name: str) -> bool:
        """Add the image of ``path`` (``name``: how messages call it), or skip it."""
        import cv2

        image, why, own = _decode(path, self.channels)
        if image is None:
            self.skipped.append(f"{name}: {why}")
            return False
        if image.shape[:2] != (self.height, self.width):
            key = (int(image.shape[0]), int(image.shape[1]))
            self.sizes[key] = self.sizes.get(key, 0) + 1
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if self.channels == 1:
            self.colour_for_grey += own >= 3
            image = image[..., None]
        else:
            self.grey_for_colour += own in (1, 2)
            self.alpha += own in (2, 4)
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            if self.channels == 4:
                image = np.concatenate([image, np.full_like(image[..., :1], 255)], axis=-1)
        self.images.append(np.asarray(image, np.uint8))
        return True

    def conversions(self) -> list[str]:
        out = []
        if self.sizes:
            count = sum(self.sizes.values())
            common = sorted(self.sizes, key=lambda k: -self.sizes[k])
            shown = ", ".join(f"{w}×{h}" for h, w in common[:4])
            aspect = any(abs(w / h - self.width / self.height) > 0.02 for h, w in self.sizes)
            out.append(
                f"{count} resized to the model's {self.width}×{self.height} from {shown}"
                + (" (aspect ratio changed)" if aspect else "")
            )
        if self.grey_for_colour:
            out.append(
                f"{self.grey_for_colour} grayscale, the model takes colour: their grey "
                "copied to R, G and B (where most references are grey, the shortcut probe "
                "does not measure its object-free edits: give colour references)"
            )
        if self.colour_for_grey:
            out.append(
                f"{self.colour_for_grey} in colour, the model takes grayscale: converted to grey"
            )
        if self.alpha:
            out.append(f"{self.alpha} with transparency: the alpha channel dropped")
        return out


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def layout(folder: str | Path) -> str:
    """What the folder holds, said without reading an image (the run's header):
    "class folders", "no class folders: classes read by the model", or why neither."""
    root = Path(folder)
    if not root.is_dir():
        return "not found"
    try:
        subfolders = any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir())
        loose = bool(_image_files(root))
    except OSError:
        return "unreadable"
    if subfolders and loose:
        return "class folders and loose images: an error"
    if subfolders:
        return "class folders"
    return "no class folders: classes read by the model" if loose else "no images"


def read_references(
    folder: str | Path,
    labels: list[str],
    shape: tuple[int, int, int],
    classify: Classify | None = None,
) -> References:
    """The references of ``folder``, resized to the model's input ``shape`` and
    converted to its channel count. Class subfolders give the classes; a flat folder of
    images has them read by ``classify`` (the model: uint8 images → class indices).
    Files cut short or unreadable are skipped and named in ``References.skipped``."""
    root = Path(folder)
    if not root.is_dir():
        raise ActauditError(
            f"references folder not found: {str(root)!r}; pass --actaudit-references DIR "
            "(one subfolder per class name, or a flat folder of photos whose classes the "
            "model reads; PNG/JPEG images free of any suspected artifact)"
        )
    try:
        subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = _image_files(root)
    except OSError as exc:
        raise ActauditError(
            f"references folder {str(root)!r} cannot be read ({exc.strerror or exc}); give "
            "the user running pytest read access, or pass another --actaudit-references DIR"
        ) from None
    if subfolders and loose:
        raise ActauditError(
            f"references folder {str(root)!r} holds both class subfolders "
            f"({_names(p.name for p in subfolders)}) and loose images "
            f"({_names(p.name for p in loose)}): use one layout — move the loose images "
            "into the subfolder of their class, or put every image in the top folder "
            "(no subfolders) to let the model read their classes"
        )
    reader = _Reader(shape)
    if not subfolders:
        for path in loose:
            reader.read(path, path.name)
        _none_readable(root, reader, loose, flat=True)
        if classify is None:
            raise ActauditError(
                f"references folder {str(root)!r} has no class subfolders: its images' "
                "classes must be read by the model, which was not given"
            )
        refs = read_by_model(np.stack(reader.images), classify, str(root))
        refs.skipped, refs.conversions = reader.skipped, reader.conversions()
        return refs
    indices: list[int] = []
    seen: list[Path] = []
    for sub in subfolders:
        if sub.name not in labels:
            shown = ", ".join(map(repr, labels[:20]))
            raise ActauditError(
                f"references subfolder {sub.name!r} in {str(root)!r} is not a class name; "
                f"valid names: {shown} (or use a flat folder of photos, no subfolders, to "
                "let the model read their classes)"
            )
        for path in _image_files(sub):
            seen.append(path)
            if reader.read(path, f"{sub.name}/{path.name}"):
                indices.append(labels.index(sub.name))
    _none_readable(root, reader, seen, flat=False)
    return References(
        np.stack(reader.images),
        np.array(indices, np.int64),
        folder=str(root),
        skipped=reader.skipped,
        conversions=reader.conversions(),
    )


def _names(names: Any, limit: int = 5) -> str:
    listed = list(names)
    shown = ", ".join(listed[:limit])
    return shown + (f" and {len(listed) - limit} more" if len(listed) > limit else "")


def _none_readable(root: Path, reader: _Reader, files: list[Path], *, flat: bool) -> None:
    if reader.images:
        return
    layout = (
        f"{root}/*.png or *.jpg (a flat folder: the model reads their classes)"
        if flat
        else f"{root}/<class name>/*.png"
    )
    if not files:
        raise ActauditError(
            f"no PNG/JPEG images found in references folder {str(root)!r}; expected {layout}"
        )
    raise ActauditError(
        f"none of the {len(files)} PNG/JPEG files in references folder {str(root)!r} can "
        f"be used: " + "; ".join(reader.skipped) + f". Replace them with whole images ({layout})"
    )
