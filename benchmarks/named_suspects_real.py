"""Named suspects on a real ImageNet classifier: what ``assert_ignores`` measures for the
ImageNet-W watermark (Li et al., CVPR 2023: ImageNet models read it as "carton") and for
neutral suspects, on the real photos of examples/imagenet, for every one of the 1000
classes at once.

For each suspect: the classes whose log-probability it raises most against its control
(the same edit without its content), with the rise, and the top-1 pull. The null of the
specific-rise evidence is the neutral suspects' top classes: the default ``max_rise``
must sit above them and below the watermark's carton.

    python benchmarks/named_suspects_real.py [--variant lite0|lite1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "imagenet"
CJK_FONT = Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-ExtraLight.ttc")


def suspects(size: int) -> dict[str, Any]:
    """The watermark as published, and suspects nobody expects a class to have learned."""
    from pytest_actaudit.checks import artifacts

    font = 36 if size == 224 else int(size / 6.22)
    x, y = int(0.01 * size), int(0.4 * size)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (size // 6, size // 6, 3), dtype=np.uint8)
    return {
        "imagenet-w watermark": artifacts.text(
            "捷径捷径捷径", x, y, opacity=0.5, font=CJK_FONT, size=font, face=2
        ),
        "latin text, same place": artifacts.text(
            "Shortcut", x, y, opacity=0.5, font=CJK_FONT, size=font, face=2
        ),
        "magenta square": artifacts.square(size // 10, size // 10, size // 8, (255, 0, 255)),
        "noise patch": artifacts.patch(noise, size // 2, size // 2),
        "green band": artifacts.band("bottom", size // 16, (0, 200, 0)),
        "grey frame": artifacts.frame(size // 20, 128),
        "warm cast": artifacts.cast((1.0, 0.85, 0.6), (50.0, 15.0, 0.0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="lite0", choices=("lite0", "lite1"))
    parser.add_argument("--json", help="write every suspect's numbers here")
    parser.add_argument("--top", type=int, default=5, help="classes shown per suspect")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(EXAMPLE))
    import efficientnet_lite  # type: ignore[import-not-found]

    from pytest_actaudit import artifacts, load_model

    labels = (EXAMPLE / "labels.txt").read_text(encoding="utf-8").splitlines()
    size = efficientnet_lite.variant_config(args.variant)["size"]
    model = load_model(efficientnet_lite.make_model(args.variant))
    with tempfile.TemporaryDirectory() as tmp:
        folder = efficientnet_lite.write_references(tmp, size=size)
        _, images = efficientnet_lite.read_folder(folder)
    images = images.astype(np.uint8)

    def predict(x: Any) -> Any:
        logits = np.asarray(model.predict(x.astype(np.float32), batch_size=20, verbose=0))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    read = np.argmax(predict(images), axis=1)
    rows = []
    print(
        f"{args.variant}: {len(images)} photo views; the suspects' classes by rise over "
        "their controls (nats), top-1 pull\n"
    )
    for name, suspect in suspects(size).items():
        # measured as assert_ignores measures it: every class's rise over the control
        carton = artifacts.measure(478, suspect, images, read, predict)
        specific = carton.specific_by_class
        order = np.argsort(-specific)
        top = [
            {"class": labels[k], "index": int(k), "specific": float(specific[k])}
            for k in order[: args.top]
        ]
        rows.append(
            {
                "suspect": name,
                "top": top,
                "carton_rank": carton.rank,
                "carton_specific": carton.specific_rise,
                "carton_pull": carton.pull,
            }
        )
        shown = ", ".join(f"{t['class']} {t['specific']:+.2f}" for t in top)
        print(f"{name:<24} {shown}")
        print(
            f"{'':<24} carton: rank {carton.rank}, {carton.specific_rise:+.2f} "
            f"(rise {carton.rise:+.2f}, control {carton.control_rise:+.2f}), "
            f"pull {carton.pull:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
