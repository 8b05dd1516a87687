"""The baseline detector: torchvision's FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object
Detection", ICCV 2019) on the same timm backbones as our detectors, through torchvision's
custom-backbone interface (a module returning an OrderedDict of feature maps, with `out_channels`).

A FeaturePyramidNetwork (torchvision.ops) turns the backbone's maps at `strides` (default 8, 16, 32:
FCOS's P3-P5; our 128 px scenes have no objects for P6-P7) into `num_features` channels each; one
anchor per location whose size is the level's stride, so that FCOS's size ranges per level are
[4s, 8s] (the finest from 0, the coarsest to infinity). torchvision's internal resize is set to the
scene size (min_size = max_size = `image_size`: 128 px scenes pass unchanged) and its normalization to
the identity, because the backbone normalizes itself exactly as in our detectors.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops import FeaturePyramidNetwork

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import Pretrained, create_backbone
from pixelwise.models.registry import register_model


class FCOSMaps(NamedTuple):
    """FCOS's raw head outputs over all levels' locations (L = sum of h_i * w_i): cls_logits (N, L, K + 1),
    bbox_regression (N, L, 4) (left, top, right, bottom distances, in anchor-size units), bbox_ctrness (N, L, 1)."""
    cls_logits: torch.Tensor
    bbox_regression: torch.Tensor
    bbox_ctrness: torch.Tensor


class PyramidBackbone(nn.Module):
    """A timm features_only backbone (create_backbone) plus an FPN over its maps at `strides`:
    images (N, C, H, W) in [0, 1] -> OrderedDict {"p3": ..., ...} of (N, out_channels, H / s, W / s)."""

    def __init__(self, backbone: str, pretrained: Pretrained, in_chans: int, out_channels: int,
                 strides: Sequence[int], backbone_kwargs: dict | None = None):
        super().__init__()
        self.body = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans, **(backbone_kwargs or {}))
        reductions = list(self.body.feature_info.reduction())
        missing = [s for s in strides if s not in reductions]
        if missing:
            raise PixelwiseError(f"FCOS strides {list(strides)}: backbone {backbone!r} has feature strides "
                                 f"{reductions}; pick strides among them")
        self.levels = [reductions.index(s) for s in strides]
        self.names = [f"p{s.bit_length() - 1}" for s in strides]
        channels = self.body.feature_info.channels()
        self.fpn = FeaturePyramidNetwork([channels[i] for i in self.levels], out_channels)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        features = self.body(images)
        return self.fpn(OrderedDict((n, features[i]) for n, i in zip(self.names, self.levels)))


class FCOSDetector(nn.Module):
    """torchvision FCOS on a pixelwise backbone, with our detectors' interface. Input (N, C, H, W) in [0, 1].

    `model(images)` -> list of N dicts {"boxes" (K, 4) xyxy pixels, "scores" (K,), "labels" (K,) 1..num_classes};
    in training mode `model(images, targets)` -> FCOS's losses {"classification", "bbox_regression",
    "bbox_ctrness"}. `.backbone` is the timm encoder (fine-tuned at optim.backbone_lr_mult), `.fcos` the
    torchvision model. num_classes: object classes; torchvision's FCOS gets num_classes + 1 outputs
    so that labels keep torchvision's convention (0 = background, never a target).
    Crowd boxes ("iscrowd" 1) are left out of the targets, as in CenterNet's.
    image_size: torchvision's resize target (min_size = max_size); score_thresh: the minimum class score
    kept before NMS (0.05, the COCO evaluation setting; torchvision's default 0.2 loses recall);
    head_convs: 3x3 GroupNorm units per FCOS head branch (4 in the paper).
    """

    def __init__(self, num_classes: int = 10, backbone: str = "resnet18", pretrained: Pretrained = False,
                 num_features: int = 128, strides: Sequence[int] = (8, 16, 32), in_chans: int = 3,
                 image_size: int = 128, head_convs: int = 4, score_thresh: float = 0.05, nms_thresh: float = 0.6,
                 top_k: int = 100, center_sampling_radius: float = 1.5, backbone_kwargs: dict | None = None):
        super().__init__()
        pyramid = PyramidBackbone(backbone, pretrained, in_chans, num_features, strides, backbone_kwargs)
        anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
        head = FCOSHead(num_features, 1, num_classes + 1, num_convs=head_convs)
        self.fcos = FCOS(pyramid, num_classes + 1, min_size=image_size, max_size=image_size,
                         image_mean=[0.0] * in_chans, image_std=[1.0] * in_chans, anchor_generator=anchors,
                         head=head, center_sampling_radius=center_sampling_radius, score_thresh=score_thresh,
                         nms_thresh=nms_thresh, detections_per_img=top_k)

    @property
    def backbone(self) -> nn.Module:
        """The timm encoder (a property, not a second registration: the weights file holds each tensor once)."""
        return self.fcos.backbone.body

    def dense(self, images: torch.Tensor) -> FCOSMaps:
        """The head's outputs on images that need no resize (what ONNX export runs; decoding outside)."""
        out = self.fcos.head(list(self.fcos.backbone(images).values()))
        return FCOSMaps(out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"])

    def forward(self, images: torch.Tensor, targets: Sequence[dict] | None = None):
        images = list(images)
        if targets is not None:
            targets = [{"boxes": t["boxes"].as_subclass(torch.Tensor).float()[keep], "labels": t["labels"][keep]}
                       for t in targets for keep in [t.get("iscrowd", torch.zeros_like(t["labels"])) == 0]]
            return self.fcos(images, targets)
        out = self.fcos(images)
        # Class 0 (background) never has a target, but its score may still pass the threshold.
        return [{k: d[k][d["labels"] > 0] for k in ("boxes", "scores", "labels")} for d in out]


@register_model("fcos", task="detection", input_size=(3, 128, 128), pretrained=True)
def fcos(**kwargs) -> FCOSDetector:
    """torchvision FCOS with an FPN on any timm backbone (`backbone=`, default resnet18)."""
    return FCOSDetector(**kwargs)


@register_model("fcos_rn18", task="detection", input_size=(3, 128, 128), pretrained=True)
def fcos_rn18(**kwargs) -> FCOSDetector:
    """torchvision FCOS on ResNet-18 features at strides 8-32."""
    return FCOSDetector(backbone="resnet18", **kwargs)
