"""Pictures of detections: labelled boxes on an image, and COCO precision-recall curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes

from pixelwise.viz.figures import plt, save_figure
from pixelwise.viz.overlays import palette_for


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                    scores: torch.Tensor | None = None, width: int = 1) -> np.ndarray:
    """(H, W, 3) uint8: image (C, H, W) float in [0, 1] (1 or 3 channels) with each box (K, 4) xyxy
    pixels drawn in its class colour and named "class score"; labels (K,) 1..len(classes)."""
    rgb = (image.detach().float().cpu().clamp(0, 1).expand(3, -1, -1) * 255).round().to(torch.uint8)
    if len(boxes) == 0:
        return rgb.permute(1, 2, 0).numpy()
    palette = palette_for(["background", *classes])
    labels = labels.detach().cpu().long()
    names = [classes[int(k) - 1] + ("" if scores is None else f" {float(s):.2f}")
             for k, s in zip(labels, scores.detach().cpu() if scores is not None else labels)]
    colors = [tuple(int(c) for c in palette[int(k) % len(palette)]) for k in labels]
    drawn = draw_bounding_boxes(rgb, boxes.detach().float().cpu().reshape(-1, 4), labels=names or None,
                                colors=colors or None, width=width)
    return drawn.permute(1, 2, 0).numpy()


def plot_precision_recall(precision: np.ndarray, recall_points: np.ndarray, classes: Sequence[str],
                          iou_thresholds: np.ndarray, path: str | Path, title: str = "") -> Path:
    """COCO's interpolated precision-recall curves: left, every class at IoU 0.5; right, the mean over
    classes at IoU 0.5, 0.75 and 0.95. precision: (T, R, K) as coco_map(curves=True) gives it (-1 = no
    ground truth); recall_points (R,); iou_thresholds (T,)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    at50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    for k, name in enumerate(classes):
        if (precision[at50, :, k] > -1).all():
            left.plot(recall_points, precision[at50, :, k], label=name)
    left.set_title("per class, IoU 0.5")
    for t in (0.5, 0.75, 0.95):
        i = int(np.argmin(np.abs(iou_thresholds - t)))
        valid = (precision[i] > -1).all(0)
        if valid.any():
            right.plot(recall_points, precision[i][:, valid].mean(1), label=f"IoU {iou_thresholds[i]:.2f}")
    right.set_title("mean over classes")
    for ax in (left, right):
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
