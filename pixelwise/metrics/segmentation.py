"""Segmentation metrics from one confusion matrix accumulated over the whole dataset."""
from __future__ import annotations

import torch

from pixelwise.metrics.classification import confusion_matrix
from pixelwise.labels import IGNORE_INDEX



def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """(K,) float64 intersection over union per class: TP / (TP + FP + FN); NaN where a class never occurs.

    cm: (K, K) counts, row = true class, column = predicted class.
    """
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in ground truth or prediction (NaN classes left out)."""
    iou = iou_per_class(cm)
    return float(iou.nanmean()) if (~iou.isnan()).any() else float("nan")


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of non-ignored pixels labelled correctly."""
    return float(cm.diag().sum()) / max(int(cm.sum()), 1)


class SegmentationMeter:
    """Accumulates the pixel confusion matrix and the summed loss over batches.

    update(logits (N, K, H, W), targets (N, H, W) with 255 = ignore); `summary()` gives mIoU,
    pixel accuracy and the mean loss per non-ignored pixel.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.loss_sum, self.pixels, self.images = 0.0, 0, 0

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: float = 0.0) -> None:
        self.update_preds(logits.detach().argmax(1), targets, loss_sum)

    def update_preds(self, preds: torch.Tensor, targets: torch.Tensor, loss_sum: float = 0.0) -> None:
        """Accumulate predicted labels (N, H, W) against targets (N, H, W)."""
        targets = targets.detach().cpu()
        self.cm += confusion_matrix(preds.detach().cpu(), targets, self.num_classes, self.ignore_index)
        self.loss_sum += float(loss_sum)
        self.pixels += int((targets != self.ignore_index).sum())
        self.images += int(targets.shape[0]) if targets.ndim == 3 else 1

    def merge(self, other: "SegmentationMeter") -> None:
        self.cm += other.cm
        self.loss_sum += other.loss_sum
        self.pixels += other.pixels
        self.images += other.images

    def per_class_iou(self) -> list[float]:
        return iou_per_class(self.cm).tolist()

    def summary(self) -> dict:
        return {"miou": mean_iou(self.cm), "pixel_accuracy": pixel_accuracy(self.cm),
                "loss": self.loss_sum / max(self.pixels, 1), "n": self.images}
