"""The numbers the README quotes about the demo models, measured in one run.

    python benchmarks/demo_metrics.py [--steps 96] [--seeds 3]

Per parametrization (fourier, pixel) and model (clean, shortcut): achieved probability,
cross-seed consistency by SSIM and by centred penultimate features, same-class vs
different-class values of both metrics, the shortcut probe's excess and the focus share
in the corners — everything the defaults were chosen and calibrated by.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from pytest_actaudit.engine.loop import EngineSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--params", default="fourier,pixel", help="parametrizations, comma-separated"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="an EngineSettings field to override (repeatable), e.g. --set rotate_every=1",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = type(getattr(EngineSettings(), field))(value)

    import pytest_actaudit
    from pytest_actaudit.checks.metrics import ssim
    from pytest_actaudit.demo import LABELS, models_dir
    from pytest_actaudit.demo.shapes import references
    from pytest_actaudit.runner import AuditRunner

    refs = references(20)
    ref_images = np.concatenate([refs[name] for name in LABELS])
    ref_labels = np.repeat(np.arange(len(LABELS)), 20)

    print(f"steps={args.steps} seeds={args.seeds} overrides={overrides}")
    for param in args.params.split(","):
        for name in ("clean", "shortcut"):
            model = pytest_actaudit.load_model(models_dir() / f"{name}.keras")
            runner = AuditRunner(
                model,
                model_path=str(models_dir() / f"{name}.keras"),
                engine_settings=EngineSettings(parametrization=param, **overrides),
            )
            began = time.perf_counter()
            audits = runner.maximize_many(LABELS, seeds=args.seeds, steps=args.steps)
            seconds = time.perf_counter() - began
            inference = runner.engine.inference
            same_ssim = [a.consistency for a in audits]
            same_feat = [float(np.mean(a.feature_similarity_per_seed)) for a in audits]
            diff_ssim, diff_feat = [], []
            for a, b in itertools.combinations(audits, 2):
                for x, y in itertools.product(range(args.seeds), repeat=2):
                    diff_ssim.append(ssim(a.images[x], b.images[y]))
                    fa, fb = a.features[x], b.features[y]
                    diff_feat.append(float(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb))))
            print(
                f"\n{param:7s} {name:8s} {seconds:5.1f}s  "
                f"SSIM same-class {np.mean(same_ssim):.3f} "
                f"vs different-class {np.mean(diff_ssim):.3f}; "
                f"features same-class {np.mean(same_feat):.3f} "
                f"vs different-class {np.mean(diff_feat):.3f}"
            )
            for audit in audits:
                audit.probe_context = lambda inference=inference: (
                    ref_images,
                    ref_labels,
                    lambda batch: inference.predict(batch)[1],
                    inference.attribution,
                    inference.detectors,
                )
                probe = audit.shortcut_probe()
                focus, _, _ = audit.focus_shares(exclude="corners:12")
                features = np.mean(audit.feature_similarity_per_seed)
                print(
                    f"  {audit.label:8s} p min {audit.probabilities.min():.3f}  "
                    f"ssim {audit.consistency:.3f}  features {features:.3f}  "
                    f"flip {np.round(probe.flip_rates, 2).tolist()} "
                    f"control {probe.control_rate:.2f} ({probe.strongest.kind}) "
                    f"ref-accuracy {probe.class_accuracy:.2f} "
                    f"excess max {probe.excess.max():+.2f}  "
                    f"corners:12 share max {focus.max():.2f}"
                )


if __name__ == "__main__":
    main()
