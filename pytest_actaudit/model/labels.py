"""Class names: read from a labels file (one per line, a JSON list, or keras's
``imagenet_class_index.json``), matched to a model's outputs, and class targets (names
or indices) resolved against them, with the valid choices in the error."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ActauditError
from .load import is_binary_head, num_classes


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names, one per line, a JSON list, or keras's imagenet_class_index.json."""
    p = Path(path)
    if not p.is_file():
        raise ActauditError(
            f"labels file not found: {str(p)!r}; pass --actaudit-labels PATH (one class name "
            "per line, or a JSON list)"
        )
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ActauditError(f"labels file {str(p)!r} is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            return _class_index(data, p)
        if not isinstance(data, list):
            raise ActauditError(f"labels file {str(p)!r} must hold a JSON list of names")
        return _unique([(n, str(item)) for n, item in enumerate(data)], p, "indices")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    return _unique(lines, p, "lines")


def _unique(numbered: list[tuple[int, str]], path: Path, where: str) -> list[str]:
    """The names, refused if one repeats: two items would audit the first index under one
    node id and the other class would never be audited."""
    seen: dict[str, list[int]] = {}
    for number, name in numbered:
        seen.setdefault(name, []).append(number)
    repeated = {name: numbers for name, numbers in seen.items() if len(numbers) > 1}
    if repeated:
        said = "; ".join(
            f"{name!r} on {where} {', '.join(map(str, numbers))}"
            for name, numbers in list(repeated.items())[:5]
        )
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise ActauditError(
            f"labels file {str(path)!r} names a class more than once: {said}{more}; "
            "each output needs its own name"
        )
    return [name for _, name in numbered]


def _class_index(data: dict[str, Any], path: Path) -> list[str]:
    """Keras's ``imagenet_class_index.json``: ``{"0": ["n01440764", "tench"], ...}`` (or
    index → name). Names that repeat (ImageNet has two "crane") get their id appended."""
    try:
        order = sorted(data, key=int)
    except ValueError:
        raise ActauditError(
            f"labels file {str(path)!r}: a JSON object must map class indices to names "
            '(like imagenet_class_index.json: {"0": ["n01440764", "tench"]})'
        ) from None
    if [int(k) for k in order] != list(range(len(order))):
        raise ActauditError(f"labels file {str(path)!r}: indices must run 0..{len(order) - 1}")
    entries = [data[k] if isinstance(data[k], list) else [None, data[k]] for k in order]
    names = [str(entry[-1]) for entry in entries]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    named = [
        f"{name} ({entry[0]})" if seen[name] > 1 and entry[0] else name
        for name, entry in zip(names, entries, strict=True)
    ]
    return _unique(list(enumerate(named)), path, "indices")


def resolve_labels(
    model: Any, labels: str | os.PathLike[str] | list[str] | None, model_path: str | None
) -> list[str]:
    """Labels from the argument, else ``labels.txt`` beside the model file, else indices.
    A binary sigmoid head takes two names (negative first) or one (the positive class;
    the other is "not <name>")."""
    n = num_classes(model)
    source = "given list"
    names: list[str] | None
    if isinstance(labels, list | tuple):
        names = [str(x) for x in labels]
    elif labels:
        names = read_labels(labels)
        source = str(labels)
    else:
        names = None
        if model_path:
            beside = Path(model_path).parent / "labels.txt"
            if beside.is_file():
                names, source = read_labels(beside), str(beside)
    if is_binary_head(model):  # index 0: the sigmoid near 0, index 1: near 1
        if names is None:
            return ["negative", "positive"]
        if len(names) == 1:
            return [f"not {names[0]}", names[0]]
    if names is None:
        return [str(i) for i in range(n)]
    if len(names) != n:
        raise ActauditError(
            f"labels from {source} name {len(names)} classes but model "
            f"{model_path or model.name!r} has {n} "
            "outputs; give one name per output, in output order"
        )
    return names


def resolve_target(target: str | int, labels: list[str]) -> int:
    """A class name or index → index, with the valid choices in the error."""
    if isinstance(target, bool):
        raise ActauditError(f"class target must be a name or an index, got {target!r}")
    if isinstance(target, int) or (
        isinstance(target, str) and target.strip().lstrip("-").isdigit()
    ):
        index = int(target)
        if not 0 <= index < len(labels):
            raise ActauditError(
                f"class index {index} is out of range: the model has {len(labels)} classes "
                f"(0..{len(labels) - 1})"
            )
        return index
    if target in labels:
        return labels.index(target)
    import difflib

    close = difflib.get_close_matches(str(target), labels, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    shown = ", ".join(map(repr, labels[:20])) + (" …" if len(labels) > 20 else "")
    raise ActauditError(f"unknown class {target!r}; {hint}valid names: {shown}")
