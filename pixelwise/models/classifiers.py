"""Classifiers for small images: the lecture's shallow model, a small CNN and a small-image ResNet."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from pixelwise.models.normalize import Normalize
from pixelwise.models.registry import register_model

FMNIST_MEAN, FMNIST_STD = (0.2860,), (0.3530,)


class LinearClassifier(nn.Module):
    """One projection of the raw pixels; softmax lives in the loss. Input (N, C, H, W) in [0, 1]."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, image_size: int = 28,
                 mean: Sequence[float] = FMNIST_MEAN, std: Sequence[float] = FMNIST_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.fc = nn.Linear(in_chans * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.normalize(x).flatten(1))


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Convolutions and poolings, then a projection: the lecture's classic layout.

    Two stages of (conv-BN-ReLU x2, max-pool), a hidden projection with ReLU and dropout, a classifier.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 32, hidden: int = 256,
                 dropout: float = 0.3, mean: Sequence[float] = FMNIST_MEAN,
                 std: Sequence[float] = FMNIST_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(in_chans, w), conv_bn_relu(w, w), nn.MaxPool2d(2),
            conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def residual_stages(widths: Sequence[int], depths: Sequence[int]) -> tuple[nn.Sequential, int]:
    """depths[i] BasicBlocks of widths[i] channels per stage, the first of each stage after the first at
    stride 2, on an input of widths[0] channels; (the blocks, their output channels)."""
    blocks, cin = [], widths[0]
    for i, (w, d) in enumerate(zip(widths, depths)):
        for j in range(d):
            blocks.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1))
            cin = w
    return nn.Sequential(*blocks), cin


class SmallResNet(nn.Module):
    """A ResNet adapted to small images: a 3x3 stem without pooling, stages of BasicBlocks.

    `widths[i]` channels and `depths[i]` blocks in stage i; every stage after the first halves the
    resolution. Defaults suit 28x28 inputs (28 -> 14 -> 7).
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 1,
                 widths: Sequence[int] = (32, 64, 128), depths: Sequence[int] = (2, 2, 2),
                 mean: Sequence[float] = FMNIST_MEAN, std: Sequence[float] = FMNIST_STD):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = conv_bn_relu(in_chans, widths[0])
        self.stages, cin = residual_stages(widths, depths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(self.normalize(x)))).flatten(1))


@register_model("linear", input_size=(1, 28, 28))
def linear(**kwargs) -> LinearClassifier:
    """The shallow model: softmax regression on raw pixels."""
    return LinearClassifier(**kwargs)


@register_model("cnn", input_size=(1, 28, 28))
def cnn(**kwargs) -> SmallCNN:
    return SmallCNN(**kwargs)


@register_model("resnet_small", input_size=(1, 28, 28))
def resnet_small(**kwargs) -> SmallResNet:
    return SmallResNet(**kwargs)
