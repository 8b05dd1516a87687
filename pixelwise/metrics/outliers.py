"""Dense outlier detection metrics computed exactly over every non-ignored pixel of a dataset.

Labels: 0 = inlier, 1 = outlier (the positive class), 255 = ignore. Scores: higher = more outlier.
The scores of all pixels are kept (float32 + one byte per pixel) and sorted once at the end, and
tied scores are treated as one threshold, exactly as scikit-learn's `roc_curve`,
`average_precision_score` and `roc_auc_score` do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from pixelwise.labels import IGNORE_INDEX



@dataclass
class BinaryCurve:
    """Cumulative counts at each distinct score, from the highest score down.

    thresholds: (T,) float64, decreasing; tps, fps: (T,) int64 = outliers / inliers with score >= threshold.
    """
    thresholds: torch.Tensor
    tps: torch.Tensor
    fps: torch.Tensor

    @property
    def positives(self) -> int:
        return int(self.tps[-1]) if len(self.tps) else 0

    @property
    def negatives(self) -> int:
        return int(self.fps[-1]) if len(self.fps) else 0


def binary_curve(scores: torch.Tensor, labels: torch.Tensor) -> BinaryCurve:
    """Counts of outliers and inliers above each distinct score.

    scores: any shape, float (higher = more outlier); labels: same shape, 0 / 1 / 255 (ignored).
    """
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in size")
    keep = labels != IGNORE_INDEX
    scores, labels = scores[keep].double(), labels[keep].long()
    if labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
        bad = labels[(labels != 0) & (labels != 1)][0].item()
        raise ValueError(f"outlier label {bad}: labels must be 0 (inlier), 1 (outlier) or {IGNORE_INDEX} (ignore)")
    if torch.isnan(scores).any():
        raise ValueError("outlier scores contain NaN")
    order = torch.sort(scores, descending=True, stable=True).indices
    scores, labels = scores[order], labels[order]
    # The last position of every run of equal scores: a threshold takes in all tied pixels at once.
    last = torch.nonzero(scores[1:] != scores[:-1]).reshape(-1)
    last = torch.cat([last, torch.tensor([scores.numel() - 1])]) if scores.numel() else last
    tps = labels.cumsum(0)[last]
    fps = last + 1 - tps
    return BinaryCurve(scores[last], tps, fps)


def average_precision(curve: BinaryCurve) -> float:
    """Area under the precision-recall curve as a step sum: sum_n (R_n - R_{n-1}) P_n (outliers positive)."""
    if curve.positives == 0:
        return float("nan")
    tps, fps = curve.tps.double(), curve.fps.double()
    precision = tps / (tps + fps)
    recall = tps / curve.positives
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gain * precision).sum())


def roc_points(curve: BinaryCurve) -> tuple[torch.Tensor, torch.Tensor]:
    """(fpr, tpr), each (T + 1,) float64 starting at (0, 0)."""
    zero = curve.tps.new_zeros(1)
    fpr = torch.cat([zero, curve.fps]).double() / max(curve.negatives, 1)
    tpr = torch.cat([zero, curve.tps]).double() / max(curve.positives, 1)
    return fpr, tpr


def auroc(curve: BinaryCurve) -> float:
    """Area under the ROC curve (trapezoids between distinct thresholds, so ties count half)."""
    if curve.positives == 0 or curve.negatives == 0:
        return float("nan")
    fpr, tpr = roc_points(curve)
    return float(torch.trapezoid(tpr, fpr))


def fpr_at_tpr(curve: BinaryCurve, tpr_level: float = 0.95) -> float:
    """The lowest false positive rate among thresholds that find at least `tpr_level` of the outliers."""
    if curve.positives == 0 or curve.negatives == 0:
        return float("nan")
    fpr, tpr = roc_points(curve)
    # A tiny tolerance so that exactly 95% recall (e.g. 19 of 20) counts despite float rounding.
    reached = tpr >= tpr_level - 1e-12
    return float(fpr[reached].min())


def precision_recall_points(curve: BinaryCurve, max_points: int = 2000) -> tuple[list[float], list[float]]:
    """(recall, precision) for plotting, at most `max_points` of the distinct thresholds."""
    if curve.positives == 0:
        return [], []
    tps, fps = curve.tps.double(), curve.fps.double()
    idx = torch.linspace(0, len(tps) - 1, min(max_points, len(tps))).round().long().unique()
    return (tps[idx] / curve.positives).tolist(), (tps[idx] / (tps[idx] + fps[idx])).tolist()


def outlier_metrics(curve: BinaryCurve) -> dict[str, float]:
    """AP, AUROC and FPR at 95% TPR of one score, with the pixel counts they were computed on."""
    return {"ap": average_precision(curve), "auroc": auroc(curve), "fpr95": fpr_at_tpr(curve, 0.95),
            "outlier_pixels": curve.positives, "inlier_pixels": curve.negatives}


class OutlierMeter:
    """Keeps the scores of every non-ignored pixel, for one or more named scores, over a dataset."""

    def __init__(self, names: list[str] | tuple[str, ...]):
        self.names = tuple(names)
        self.scores: dict[str, list[torch.Tensor]] = {n: [] for n in self.names}
        self.labels: list[torch.Tensor] = []

    def update(self, scores: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        """scores: name -> (N, H, W) float; labels: (N, H, W) 0 / 1 / 255."""
        labels = labels.detach().cpu().reshape(-1)
        keep = labels != IGNORE_INDEX
        self.labels.append(labels[keep].to(torch.uint8))
        for name in self.names:
            s = scores[name].detach().cpu().reshape(-1)
            if s.shape != labels.shape:
                raise ValueError(f"score {name!r} has {s.numel()} pixels, labels {labels.numel()}")
            self.scores[name].append(s[keep].float())

    def merge(self, other: "OutlierMeter") -> None:
        self.labels += other.labels
        for name in self.names:
            self.scores[name] += other.scores[name]

    def curve(self, name: str) -> BinaryCurve:
        labels = torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.uint8)
        scores = torch.cat(self.scores[name]) if self.labels else torch.zeros(0)
        return binary_curve(scores, labels)

    def summary(self) -> dict[str, dict[str, float]]:
        """name -> {ap, auroc, fpr95, outlier_pixels, inlier_pixels}."""
        return {name: outlier_metrics(self.curve(name)) for name in self.names}
