"""Appearance embeddings: a small ResNet mapping object crops to unit vectors, trained with a cosine
softmax with an additive margin (CosFace, Wang et al. 2018).

The model holds the class centres of its training identities, so that a run folder rebuilds the whole
thing from config.json (`num_classes`); they serve training only. `model(crops)` gives the embedding,
`model(crops, labels)` the margin logits `scale * (cos(theta_ij) - margin [j = label_i])`, whose
cross-entropy is the CosFace loss (`cosface_loss` computes it from cosines, as the formula reads).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.models.classifiers import conv_bn_relu, residual_stages
from pixelwise.models.normalize import Normalize
from pixelwise.models.registry import register_model

CROP_MEAN, CROP_STD = (0.45,) * 3, (0.25,) * 3   # FS-Video garment crops, roughly


def cosface_logits(cosine: torch.Tensor, labels: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    """scale * (cosine - margin * one_hot(labels)): cosine (N, C) in [-1, 1], labels (N,) int64."""
    return scale * (cosine - margin * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype))


def cosface_loss(cosine: torch.Tensor, labels: torch.Tensor, scale: float = 16.0, margin: float = 0.2) -> torch.Tensor:
    """Mean CosFace loss -log(e^{s(cos_y - m)} / (e^{s(cos_y - m)} + sum_{j != y} e^{s cos_j}))."""
    return F.cross_entropy(cosface_logits(cosine, labels, scale, margin), labels)


class EmbeddingResNet(nn.Module):
    """A narrow ResNet on crops (N, C, S, S) float in [0, 1] -> embeddings (N, dim), unit L2 norm.

    3x3 stem (stride `stem_stride`), then stages of BasicBlocks (`widths`, `depths`; every stage after
    the first halves the resolution), global average pooling, a linear projection and batch norm, then
    L2 normalization.
    num_classes: training identities (class centres for the margin loss; 0 for none); scale, margin:
    CosFace's s and m.
    """

    def __init__(self, num_classes: int = 0, in_chans: int = 3, dim: int = 128,
                 widths: Sequence[int] = (32, 64, 128, 256), depths: Sequence[int] = (1, 1, 1, 1),
                 stem_stride: int = 1, scale: float = 16.0, margin: float = 0.2,
                 mean: Sequence[float] = CROP_MEAN, std: Sequence[float] = CROP_STD):
        super().__init__()
        self.scale, self.margin = scale, margin
        self.normalize = Normalize(tuple(mean)[:in_chans], tuple(std)[:in_chans])
        self.stem = conv_bn_relu(in_chans, widths[0], stem_stride)
        self.stages, cin = residual_stages(widths, depths)
        self.project = nn.Sequential(nn.Linear(cin, dim, bias=False), nn.BatchNorm1d(dim))
        self.centres = nn.Parameter(torch.randn(num_classes, dim) / dim ** 0.5) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings (N, dim) with unit norm; with labels (N,), the CosFace logits (N, num_classes)."""
        features = self.stages(self.stem(self.normalize(x))).mean((2, 3))
        embedding = F.normalize(self.project(features).float(), dim=1)
        if labels is None:
            return embedding
        if self.centres is None:
            raise ValueError("this embedding model has no class centres (num_classes=0): it cannot be trained")
        cosine = embedding @ F.normalize(self.centres.float(), dim=1).T
        return cosface_logits(cosine, labels, self.scale, self.margin)


@register_model("embedding_resnet", task="embedding", input_size=(3, 32, 32), mean=CROP_MEAN, std=CROP_STD)
def embedding_resnet(**kwargs) -> EmbeddingResNet:
    """Narrow ResNet (32-256 channels, one block a stage) for 32 x 32 crops, 128-d embeddings."""
    return EmbeddingResNet(**kwargs)
