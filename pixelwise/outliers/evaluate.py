"""Evaluation on scenes with outliers: inlier mIoU and AP / AUROC / FPR95 of every available score."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.metrics.classification import confusion_matrix
from pixelwise.metrics.outliers import OutlierMeter, outlier_metrics, precision_recall_points
from pixelwise.metrics.segmentation import iou_per_class, mean_iou, pixel_accuracy
from pixelwise.outliers.scores import outlier_scores, split_output
from pixelwise.labels import IGNORE_INDEX



class OutlierEvaluation:
    """Inlier confusion matrix and outlier scores accumulated over a whole dataset."""

    def __init__(self, num_classes: int, score_names: list[str], mode: str = "none"):
        self.num_classes, self.mode = num_classes, mode
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.meter = OutlierMeter(score_names)
        self.primary = "outlier_head" if "outlier_head" in score_names else "max_softmax"
        self._curves: dict | None = None

    def update(self, output, masks: torch.Tensor, outlier_masks: torch.Tensor, mode: str) -> None:
        """output of the model; masks (N, H, W) semantic labels (255 on outliers); outlier_masks (N, H, W) 0/1/255."""
        logits, _ = split_output(output, mode)
        self.cm += confusion_matrix(logits.argmax(1).cpu(), masks.cpu(), self.num_classes, ignore_index=IGNORE_INDEX)
        self.meter.update(outlier_scores(output, mode), outlier_masks)
        self._curves = None

    def curves(self) -> dict:
        """score name -> BinaryCurve over every non-ignored pixel so far (sorted once, then kept)."""
        if self._curves is None:
            self._curves = {name: self.meter.curve(name) for name in self.meter.names}
        return self._curves

    def iou(self) -> torch.Tensor:
        """(K,) float64 intersection over union of each inlier class (NaN where a class never occurs)."""
        return iou_per_class(self.cm)

    def metrics(self) -> dict[str, dict]:
        """score name -> {ap, auroc, fpr95, outlier_pixels, inlier_pixels} (computed once, then kept)."""
        return {name: outlier_metrics(curve) for name, curve in self.curves().items()}

    def summary(self) -> dict[str, float]:
        """Flat numbers: miou, pixel_accuracy (inlier pixels), ap / auroc / fpr95 of the primary score
        and {score}_{metric} of every score."""
        out = {"miou": mean_iou(self.cm), "pixel_accuracy": pixel_accuracy(self.cm)}
        metrics = self.metrics()
        out.update({k: metrics[self.primary][k] for k in ("ap", "auroc", "fpr95")})
        for name, m in metrics.items():
            out.update({f"{name}_{k}": m[k] for k in ("ap", "auroc", "fpr95")})
        return out

    def precision_recall(self) -> dict[str, tuple[list[float], list[float]]]:
        """score name -> (recall, precision) points of its curve, for plotting."""
        return {name: precision_recall_points(curve) for name, curve in self.curves().items()}


@torch.inference_mode()
def evaluate_outliers(model: nn.Module, dataset: Dataset, num_classes: int, mode: str, device: torch.device,
                      batch_size: int = 32, workers: int = 0, progress: bool = True) -> OutlierEvaluation:
    """Evaluate a segmenter on a dataset of (image, semantic mask, outlier mask) triples (e.g. FS-OOD).

    Datasets of (image, mask) pairs have no outliers: their outlier metrics come out NaN.

    mode: the run's outliers.mode ('none' = baselines only, 'two_heads', 'single_head').
    """
    was_training = model.training
    model.eval()
    names = ["max_softmax", "entropy", "max_logit"] + ([] if mode == "none" else ["outlier_head"])
    result = OutlierEvaluation(num_classes, names, mode)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in tqdm(loader, desc="eval outliers", leave=False, disable=not progress or None):
        x, masks = batch[0], batch[1]
        outlier_masks = batch[2] if len(batch) > 2 else torch.full_like(masks, IGNORE_INDEX)
        result.update(model(x.to(device)), masks, outlier_masks, mode)
    model.train(was_training)
    return result


def write_outlier_report(result: OutlierEvaluation, classes: list[str], out_dir: str | Path) -> dict:
    """metrics.json-style outliers.json, outliers.md table, per-class IoU and precision_recall.png in out_dir."""
    from pixelwise.files import write_json
    from pixelwise.viz.figures import plot_curves
    out_dir = Path(out_dir)
    summary = result.summary()
    metrics = result.metrics()
    iou = result.iou().tolist()
    write_json(out_dir / "outliers.json", {"summary": summary, "scores": metrics,
                                           "iou": dict(zip(classes, iou)), "confusion_matrix": result.cm.tolist()})
    lines = ["| score | AP | AUROC | FPR95 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {m['ap']:.4f} | {m['auroc']:.4f} | {m['fpr95']:.4f} |" for name, m in metrics.items()]
    lines += ["", f"inlier mIoU {summary['miou']:.4f}, pixel accuracy {summary['pixel_accuracy']:.4f}", "",
              "| class | IoU |", "| --- | --- |"] + [f"| {c} | {v:.4f} |" for c, v in zip(classes, iou)]
    (out_dir / "outliers.md").write_text("\n".join(lines) + "\n")
    curves = {f"{name} (AP {metrics[name]['ap']:.3f})": pr for name, pr in result.precision_recall().items()}
    plot_curves(curves, out_dir / "precision_recall.png", "recall", "precision",
                title="outlier detection: precision-recall (outlier = positive)")
    return summary
