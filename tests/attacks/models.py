"""Tiny models for attack tests: they follow the contract (raw [0, 1] input, normalization inside)."""
from __future__ import annotations

import torch
import torch.nn as nn

from pixelwise.models.normalize import Normalize
from pixelwise.models.outputs import SegmentationOutput


def linear_classifier(in_chans: int = 1, side: int = 8, classes: int = 5, seed: int = 0) -> nn.Module:
    """Softmax regression: its loss is convex in the image, so first-order claims hold exactly."""
    torch.manual_seed(seed)
    return nn.Sequential(Normalize([0.5] * in_chans, [0.25] * in_chans), nn.Flatten(),
                         nn.Linear(in_chans * side * side, classes)).eval()


class PointwiseSegmenter(nn.Module):
    """1x1 convolutions only: each pixel's logits depend on that pixel alone. Optional outlier head."""

    def __init__(self, in_chans: int = 3, classes: int = 4, outlier_head: bool = False):
        super().__init__()
        self.normalize = Normalize([0.5] * in_chans, [0.25] * in_chans)
        self.body = nn.Sequential(nn.Conv2d(in_chans, 8, 1), nn.Tanh(), nn.Conv2d(8, classes, 1))
        self.outlier = nn.Conv2d(in_chans, 1, 1) if outlier_head else None

    def forward(self, x: torch.Tensor):
        z = self.normalize(x)
        logits = self.body(z)
        return SegmentationOutput(logits, self.outlier(z)) if self.outlier is not None else logits


def conv_segmenter(in_chans: int = 3, classes: int = 4, seed: int = 0) -> nn.Module:
    """3x3 convolutions with batch norm: logits (N, K, H, W) at input resolution."""
    torch.manual_seed(seed)
    return nn.Sequential(Normalize([0.5] * in_chans, [0.25] * in_chans),
                         nn.Conv2d(in_chans, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, classes, 3, padding=1)).eval()
