"""Tiny models for the bench tests, small enough to export, fold and time in a fraction of a second."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.models.outputs import SegmentationOutput


class TinySegmenter(nn.Module):
    """conv-BN-ReLU, a stride-2 conv-BN-ReLU, a 1x1 classifier, bilinear upsampling to input size.

    Input (N, 3, H, W) in [0, 1]; output logits (N, K, H, W), plus an outlier logit map
    (N, 1, H, W) when `outlier_head` is set.
    """

    def __init__(self, num_classes: int = 4, width: int = 8, outlier_head: bool = False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * width)
        self.head = nn.Conv2d(2 * width, num_classes, 1)
        self.outlier = nn.Conv2d(2 * width, 1, 1) if outlier_head else None

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        y = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        logits = F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
        if self.outlier is None:
            return logits
        return SegmentationOutput(logits, F.interpolate(self.outlier(y), size=size, mode="bilinear", align_corners=False))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm2d non-trivial statistics and affine parameters (fresh ones are identities)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.2)
            m.weight.data.copy_(torch.randn(c, generator=g))
            m.bias.data.copy_(torch.randn(c, generator=g))
    return model.eval()
