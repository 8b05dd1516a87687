"""Segmentation forecasting metrics: one confusion matrix per (method, horizon) over the whole test set,
mIoU over all classes and over the moving objects (mIoU-MO), and the share of the copy-last-to-oracle
gap that a forecast closes."""
from __future__ import annotations

from typing import Sequence

import torch

from pixelwise.metrics.segmentation import SegmentationMeter, iou_per_class


def miou_over(cm: torch.Tensor, classes: Sequence[int]) -> float:
    """Mean IoU over `classes` (indices into the confusion matrix cm (K, K)), those that occur in truth or
    prediction; NaN when none does."""
    iou = iou_per_class(cm)[list(classes)]
    return float(iou.nanmean()) if (~iou.isnan()).any() else float("nan")


def gap_closed(forecast: float, copy_last: float, oracle: float) -> float | None:
    """(forecast - copy-last) / (oracle - copy-last): 0 = no better than copying, 1 = as good as the oracle;
    None where the oracle is no better than copy-last (no gap to close)."""
    gap = oracle - copy_last
    return (forecast - copy_last) / gap if gap > 1e-12 else None


class ForecastMeter:
    """SegmentationMeters per (method, horizon) of forecast label maps against the true future labels.

    update(method, horizon, preds (N, H, W), targets (N, H, W) with 255 = ignore). summary(): for each
    method m and horizon h, `m_tH_miou` and `m_tH_miou_mo` (mIoU over `moving_classes`), the gap closed
    by every method but the references at each horizon (`m_tH_gap_closed`, left out where the oracle is no better than copy-last), and `miou` = the headline
    method's mIoU at the first horizon. `examples`: a few clips kept for the report's strips.
    """

    def __init__(self, num_classes: int, methods: Sequence[str], horizons: Sequence[int],
                 moving_classes: Sequence[int], headline: str = "f2f", references: tuple[str, str] = ("copy_last", "oracle")):
        self.num_classes, self.methods, self.horizons = num_classes, list(methods), list(horizons)
        self.moving_classes, self.headline, self.references = list(moving_classes), headline, references
        self.meters = {(m, h): SegmentationMeter(num_classes) for m in self.methods for h in self.horizons}
        self.clips = 0
        self.examples: list[dict] = []

    def update(self, method: str, horizon: int, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self.meters[(method, horizon)].update_preds(preds, targets)

    def miou(self, method: str, horizon: int) -> float:
        return miou_over(self.meters[(method, horizon)].cm, range(self.num_classes))

    def miou_mo(self, method: str, horizon: int) -> float:
        return miou_over(self.meters[(method, horizon)].cm, self.moving_classes)

    def summary(self) -> dict:
        out: dict = {}
        for h in self.horizons:
            for m in self.methods:
                out[f"{m}_t{h}_miou"] = self.miou(m, h)
                out[f"{m}_t{h}_miou_mo"] = self.miou_mo(m, h)
            low, high = self.references
            if low in self.methods and high in self.methods:
                for m in self.methods:
                    share = gap_closed(out[f"{m}_t{h}_miou"], out[f"{low}_t{h}_miou"], out[f"{high}_t{h}_miou"])
                    if m not in self.references and share is not None:
                        out[f"{m}_t{h}_gap_closed"] = share
        if self.headline in self.methods:
            out["miou"] = out[f"{self.headline}_t{self.horizons[0]}_miou"]
        out["n"] = self.clips
        return out
