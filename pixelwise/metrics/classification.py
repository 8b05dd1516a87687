"""Classification metrics that accumulate over a whole dataset."""
from __future__ import annotations

from typing import Sequence

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose target is among the k highest logits, for each k.

    logits: (N, K); targets: (N,) int. k larger than K counts every sample as correct.
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top == targets.unsqueeze(1)
    return {k: int(hit[:, :min(k, kmax)].any(1).sum()) for k in ks}


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int,
                     ignore_index: int | None = None) -> torch.Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class.

    preds, targets: integer tensors of equal shape (any shape: labels of images or of pixels).
    Targets equal to `ignore_index` are left out; other targets outside [0, K) are an error.
    """
    preds, targets = preds.reshape(-1).long(), targets.reshape(-1).long()
    if ignore_index is not None:
        keep = targets != ignore_index
        preds, targets = preds[keep], targets[keep]
    if targets.numel() and (targets.min() < 0 or targets.max() >= num_classes):
        bad = targets[(targets < 0) | (targets >= num_classes)][0].item()
        raise ValueError(f"target value {bad} outside [0, {num_classes})")
    return torch.bincount(targets * num_classes + preds, minlength=num_classes ** 2).reshape(
        num_classes, num_classes)


class ClassificationMeter:
    """Accumulates top-1/top-5 counts, the loss sum and the confusion matrix over batches."""

    def __init__(self, num_classes: int, ks: Sequence[int] = (1, 5)):
        self.num_classes, self.ks = num_classes, tuple(ks)
        self.n, self.loss_sum = 0, 0.0
        self.correct = {k: 0 for k in self.ks}
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, logits: torch.Tensor, targets: torch.Tensor, loss_sum: float = 0.0) -> None:
        logits, targets = logits.detach().float().cpu(), targets.detach().cpu()
        for k, c in topk_correct(logits, targets, self.ks).items():
            self.correct[k] += c
        self.cm += confusion_matrix(logits.argmax(1), targets, self.num_classes)
        self.n += len(targets)
        self.loss_sum += float(loss_sum)

    def merge(self, other: "ClassificationMeter") -> None:
        self.n += other.n
        self.loss_sum += other.loss_sum
        self.cm += other.cm
        for k in self.ks:
            self.correct[k] += other.correct[k]

    def summary(self) -> dict:
        n = max(self.n, 1)
        out = {f"top{k}": self.correct[k] / n for k in self.ks}
        out.update(loss=self.loss_sum / n, n=self.n)
        return out
