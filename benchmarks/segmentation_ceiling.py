"""How high FashionScenes test mIoU can go, and what the 0.80 target asks of a segmenter. No training.

Two limits on the 1000 test scenes, alone and together:
- Output stride: perfect class scores at stride s (one-hot labels averaged over s x s cells), upsampled
  bilinearly to the scene as SwiftNet upsamples its logits, then argmax: about what the geometry of a
  1x1 classifier at stride s allows (SwiftNet: s = 4; thin straps and gaps are lost). Not a strict
  bound: scores chosen for the upsampling could win back a little.
- Garment classification: every pixel of a garment gets the class that a Fashion-MNIST classifier gives
  the garment's item shown alone (28 x 28, whole, unoccluded, on black: optimistic). Errors drawn
  uniformly among the other classes at a given accuracy (5 draws each), and the predictions of a
  trained run: `--classifier RUN`, e.g. runs/cnn_fashion_mnist after
  `pixelwise train configs/cnn_fashion_mnist.yaml`.

    .venv/bin/python benchmarks/segmentation_ceiling.py [--classifier runs/cnn_fashion_mnist]

Writes results/segmentation_ceiling.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.data.fashion_mnist import load_fashion_mnist  # noqa: E402
from pixelwise.data.scenes import FASHION_SCENES_CLASSES, SPLITS, generate_scenes, scene_instances  # noqa: E402
from pixelwise.metrics.segmentation import SegmentationMeter  # noqa: E402

K = len(FASHION_SCENES_CLASSES)
STRIDES = (1, 2, 4, 8)
ACCURACIES = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 1.0)
TARGET_MIOU = 0.80


def ceiling(labelled: np.ndarray, masks: np.ndarray, stride: int, batch: int = 100) -> SegmentationMeter:
    """Meter of `labelled` (N, H, W) taken as perfect scores at `stride`, upsampled and scored against `masks`."""
    meter = SegmentationMeter(K)
    for i in range(0, len(masks), batch):
        scores = F.one_hot(torch.from_numpy(labelled[i:i + batch]).long(), K).permute(0, 3, 1, 2).float()
        if stride > 1:
            coarse = F.avg_pool2d(scores, stride)
            scores = F.interpolate(coarse, size=scores.shape[-2:], mode="bilinear", align_corners=False)
        meter.update_preds(scores.argmax(1), torch.from_numpy(masks[i:i + batch]).long())
    return meter


def classified(instances: np.ndarray, picked: list[list[int]], predicted: np.ndarray) -> np.ndarray:
    """Label maps whose garments carry the class `predicted` gives their item (+1; 0 stays background)."""
    out = np.zeros_like(instances)
    for i, (inst, garments) in enumerate(zip(instances, picked)):
        out[i] = np.concatenate([[0], predicted[garments] + 1]).astype(np.uint8)[inst]
    return out


def uniform_errors(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """`labels` with a fraction 1 - accuracy replaced by one of the other 9 classes, uniformly."""
    wrong = rng.random(len(labels)) >= accuracy
    out = labels.copy()
    out[wrong] = (labels[wrong] + rng.integers(1, 10, int(wrong.sum()))) % 10
    return out


def classifier_predictions(run: Path) -> np.ndarray:
    """A trained Fashion-MNIST run's classes for the 10000 test items."""
    from pixelwise.data.fashion_mnist import CLASSES
    from pixelwise.tasks import load_run
    model, config = load_run(run)
    if config.get("task") != "classification" or tuple(config.get("classes", ())) != CLASSES:
        raise SystemExit(f"--classifier {run}: not a Fashion-MNIST classifier run (classes "
                         f"{config.get('classes')}); train one with `pixelwise train configs/cnn_fashion_mnist.yaml`")
    items = load_fashion_mnist("test")[0]
    with torch.no_grad():
        model.eval()
        return torch.cat([model(items[i:i + 1000, None].float().div(255)).argmax(1)
                          for i in range(0, len(items), 1000)]).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classifier", default=None, help="a Fashion-MNIST run folder whose test predictions to use")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args()
    torch.set_num_threads(2)
    predicted = classifier_predictions(Path(args.classifier)) if args.classifier else None   # fail early
    n, seed = SPLITS["test"]
    _, masks = generate_scenes("test", n, seed, progress=False)
    instances, picked = scene_instances("test", n, seed)
    labels = load_fashion_mnist("test")[1].numpy()

    strides = {s: ceiling(masks, masks, s).summary()["miou"] for s in STRIDES}
    rng = np.random.default_rng(0)
    draws = {a: [classified(instances, picked, uniform_errors(labels, a, rng)) for _ in range(5 if a < 1 else 1)]
             for a in ACCURACIES}
    grid = {a: {s: float(np.mean([ceiling(d, masks, s).summary()["miou"] for d in ds])) for s in (1, 4)}
            for a, ds in draws.items()}
    # The accuracy at which the curve (mIoU rises with accuracy) crosses the target, by linear interpolation.
    needed = {s: float(np.interp(TARGET_MIOU, [grid[a][s] for a in ACCURACIES], ACCURACIES)) for s in (1, 4)}
    result = {"test_scenes": n, "strides": strides, "uniform_errors": grid, "accuracy_for_target": needed,
              "target_miou": TARGET_MIOU}
    lines = ["# FashionScenes test: mIoU ceilings (no training)", "",
             "Perfect class scores at output stride s, upsampled bilinearly (stride 1: the labels themselves):", "",
             "| output stride | " + " | ".join(str(s) for s in STRIDES) + " |",
             "| --- |" + " ---: |" * len(STRIDES),
             "| mIoU ceiling | " + " | ".join(f"{strides[s]:.4f}" for s in STRIDES) + " |", "",
             "Garments classified like their items alone (28 x 28, whole, unoccluded) by a classifier of this "
             "Fashion-MNIST accuracy, errors uniform over the other classes (mean of 5 draws); masks otherwise perfect:",
             "", "| classifier accuracy | mIoU, perfect masks | mIoU, perfect scores at stride 4 |",
             "| ---: | ---: | ---: |"]
    lines += [f"| {a:.2f} | {grid[a][1]:.4f} | {grid[a][4]:.4f} |" for a in ACCURACIES]
    lines += ["", f"mIoU {TARGET_MIOU} needs a garment accuracy of {needed[1]:.3f} with perfect masks, "
              f"{needed[4]:.3f} at stride 4 (linear interpolation)."]
    if predicted is not None:
        accuracy = float((predicted == labels).mean())
        labelled = classified(instances, picked, predicted)
        runs = {s: ceiling(labelled, masks, s) for s in (1, 4)}
        result["classifier"] = {"run": args.classifier, "test_accuracy": accuracy,
                                **{f"stride_{s}": {"miou": r.summary()["miou"], "per_class_iou": r.per_class_iou()}
                                   for s, r in runs.items()}}
        lines += ["", f"With the test predictions of `{args.classifier}` (Fashion-MNIST test accuracy {accuracy:.4f}):",
                  "", "| class | IoU, perfect masks | IoU, perfect scores at stride 4 |", "| --- | ---: | ---: |"]
        ious = {s: r.per_class_iou() for s, r in runs.items()}
        lines += [f"| {c} | {ious[1][i]:.4f} | {ious[4][i]:.4f} |" for i, c in enumerate(FASHION_SCENES_CLASSES)]
        lines += [f"| **mean** | **{runs[1].summary()['miou']:.4f}** | **{runs[4].summary()['miou']:.4f}** |"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation_ceiling.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "segmentation_ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
