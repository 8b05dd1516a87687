"""A dense, anchor-free detector on SwiftNet: CenterNet's heads (Zhou et al., "Objects as Points", 2019)
on SwiftNet's backbone, spatial pyramid pooling and ladder upsampling path (pixelwise.models.swiftnet).

At stride 4 the ladder's features feed three heads: a per-class centre heatmap (sigmoid logits), the
box size (w, h) and the sub-cell offset of the centre, both in grid cells. Detections are the heatmap's
local maxima (a 3x3 max-pooling keeps a cell only where it equals its neighbourhood's maximum, which
replaces NMS), the top 100 over all classes, each box centred at its peak plus offset with the
predicted size. Any timm `features_only` backbone with strides 4-32 works (create_backbone), including
the ImageNet-pretrained EfficientNet-Lite0.

Forward follows torchvision's detectors: `model(images)` gives one dict per image ("boxes" (K, 4)
xyxy pixels float32, "scores" (K,), "labels" (K,) int64 1..num_classes); `model(images, targets)` gives
the training losses {"heatmap", "size", "offset"}. `model.dense(images)` gives the maps themselves
(`DenseMaps`), what ONNX export runs (peak picking stays outside the graph: `decode_detections`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import REDUCTIONS, Pretrained, create_backbone
from pixelwise.models.center_targets import centernet_losses, encode_targets
from pixelwise.models.layers import BNReluConv, LadderDecoder
from pixelwise.models.registry import register_model

STRIDE = 4
HEATMAP_PRIOR_BIAS = -2.19   # sigmoid(-2.19) = 0.1: CenterNet's start, so the focal loss begins small


class DenseMaps(NamedTuple):
    """A CenterNet's output maps at stride 4 (h = H / 4, w = W / 4): heatmap (N, K, h, w) logits of an
    object centre of each class, size (N, 2, h, w) box (w, h) in grid cells, offset (N, 2, h, w) the
    centre's (x, y) inside its cell, in cells."""
    heatmap: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor


class CenterNetHeads(nn.Module):
    """Three heads on the stride-4 features: each a 3x3 unit of `width` channels and a 1x1 output
    (CenterNet's head), or the 1x1 output alone with width 0. (N, C, h, w) -> DenseMaps."""

    def __init__(self, channels: int, num_classes: int, width: int = 64):
        super().__init__()

        def head(out: int) -> nn.Sequential:
            hidden = [BNReluConv(channels, width, k=3)] if width else []
            return nn.Sequential(*hidden, BNReluConv(width or channels, out, k=1, bias=True))

        self.heatmap, self.size, self.offset = head(num_classes), head(2), head(2)
        nn.init.constant_(self.heatmap[-1].conv.bias, HEATMAP_PRIOR_BIAS)

    def forward(self, x: torch.Tensor) -> DenseMaps:
        return DenseMaps(self.heatmap(x), self.size(x), self.offset(x))


def decode_detections(maps: DenseMaps, image_size: Sequence[int], top_k: int = 100,
                      stride: int = STRIDE) -> list[dict[str, torch.Tensor]]:
    """Per image the top_k heatmap peaks as boxes: {"boxes" (K, 4) xyxy pixels float32 clipped to the
    image, "scores" (K,) sigmoid of the peak in (0, 1), "labels" (K,) int64 1..num_classes}, by score.

    A peak is a cell equal to the maximum of its 3x3 neighbourhood (CenterNet's NMS). Box: centre
    (x + offset_x, y + offset_y) * stride, size * stride. image_size: (H, W) of the input in pixels.
    """
    heat = torch.sigmoid(maps.heatmap.float())
    n, k, h, w = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    scores, index = peaks.reshape(n, -1).topk(min(top_k, k * h * w), dim=1)
    labels, cell = index // (h * w), index % (h * w)
    size = maps.size.float().reshape(n, 2, -1).gather(2, cell[:, None].expand(-1, 2, -1))       # (N, 2, K)
    offset = maps.offset.float().reshape(n, 2, -1).gather(2, cell[:, None].expand(-1, 2, -1))
    cx = ((cell % w).float() + offset[:, 0]) * stride
    cy = ((cell // w).float() + offset[:, 1]) * stride
    half_w, half_h = size[:, 0].clamp(min=0) * stride / 2, size[:, 1].clamp(min=0) * stride / 2
    boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=2)
    height, width = image_size
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width)
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height)
    return [{"boxes": boxes[i], "scores": scores[i], "labels": labels[i] + 1} for i in range(n)]


class CenterNet(nn.Module):
    """SwiftNet's encoder and ladder with CenterNet heads. Input (N, C, H, W) float in [0, 1].

    `model(images)` -> list of N dicts {"boxes", "scores", "labels"} (decode_detections);
    `model(images, targets)` -> losses {"heatmap", "size", "offset"} for torchvision-style target dicts
    ("boxes" xyxy pixels, "labels" 1..num_classes, optional "iscrowd": crowd boxes get no peak).
    `.backbone` holds the (pretrainable) encoder, `.head` the SPP, ladder and detection heads.

    num_classes: object classes (labels 1..num_classes; 0 is the background, as in torchvision);
    backbone, pretrained, in_chans, backbone_kwargs: as SwiftNet's (create_backbone); num_features:
    width of the SPP and upsampling path (widths: per step, coarse to fine); head_width: channels of
    each head's 3x3 unit (0: 1x1 heads on the ladder's features); top_k: detections per image;
    min_overlap: CenterNet's IoU for the Gaussian radius; size_weight, offset_weight: loss weights.
    """

    def __init__(self, num_classes: int = 10, backbone: str = "resnet18", pretrained: Pretrained = False,
                 num_features: int = 128, widths: Sequence[int] | None = None, head_width: int = 64,
                 spp_grids: Sequence[int] = (8, 4, 2), in_chans: int = 3, top_k: int = 100,
                 min_overlap: float = 0.7, size_weight: float = 0.1, offset_weight: float = 1.0,
                 backbone_kwargs: dict | None = None):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans, **(backbone_kwargs or {}))
        if tuple(self.backbone.feature_info.reduction()) != REDUCTIONS:
            raise PixelwiseError(f"CenterNet needs backbone features at strides {list(REDUCTIONS)}; "
                                 f"{backbone!r} gives {self.backbone.feature_info.reduction()}")
        channels = self.backbone.feature_info.channels()
        widths = tuple(widths) if widths is not None else (num_features,) * (len(channels) - 1)
        # SwiftNet's decoder, its per-pixel classifier swapped for the detection heads.
        self.head = LadderDecoder(channels, 1, spp_size=num_features, widths=widths, spp_grids=spp_grids,
                                  level_size=num_features // len(spp_grids))
        self.head.heads = CenterNetHeads(widths[-1], num_classes, head_width)
        self.num_classes, self.top_k = num_classes, top_k
        self.min_overlap, self.size_weight, self.offset_weight = min_overlap, size_weight, offset_weight

    def dense(self, images: torch.Tensor) -> DenseMaps:
        """The output maps at stride 4 (DenseMaps) of images (N, C, H, W) in [0, 1]."""
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor, targets: Sequence[dict] | None = None):
        maps = self.dense(images)
        if targets is not None:
            encoded = encode_targets(targets, self.num_classes, tuple(maps.heatmap.shape[-2:]), STRIDE,
                                     self.min_overlap)
            return centernet_losses(maps, encoded, self.size_weight, self.offset_weight)
        return decode_detections(maps, images.shape[-2:], self.top_k)


@register_model("swiftnet_det", task="detection", input_size=(3, 128, 128), pretrained=True)
def swiftnet_det(**kwargs) -> CenterNet:
    """SwiftNet with CenterNet heads at stride 4 on any timm backbone (`backbone=`, default resnet18)."""
    return CenterNet(**kwargs)


@register_model("swiftnet_det_rn18", task="detection", input_size=(3, 128, 128), pretrained=True)
def swiftnet_det_rn18(**kwargs) -> CenterNet:
    """SwiftNet-RN18 with CenterNet heads at stride 4."""
    return CenterNet(backbone="resnet18", **kwargs)
