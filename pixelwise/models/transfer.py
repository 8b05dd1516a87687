"""Knowledge transfer: a pretrained backbone with its classifier cut off, and a new head for K classes.

The engine trains `model.backbone` at lr * optim.backbone_lr_mult and holds it still for the first
optim.freeze_backbone_steps steps, so "frozen backbone", "lower backbone learning rate" and "a schedule
that unfreezes" are all config keys of one model.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.models.normalize import Normalize
from pixelwise.models.backbones import create_timm_model
from pixelwise.models.pretrained import LITE0_MEAN, LITE0_STD, efficientnet_lite0_timm
from pixelwise.models.registry import register_model

LITE0 = "efficientnet_lite0"


def build_backbone(name: str, pretrained: bool | str | Path, in_chans: int) -> nn.Module:
    """A headless timm network returning pooled features (N, num_features).

    name: a timm model name, or 'efficientnet_lite0' (timm `tf_efficientnet_lite0` with the shipped
    ImageNet weights when pretrained is True). pretrained: False (random init), True (offline weights,
    EfficientNet-Lite0 only) or the path of a local timm/torchvision checkpoint of that architecture.
    in_chans != 3 adapts the first convolution (timm sums the RGB filters for 1 channel).
    """
    timm_name = "tf_efficientnet_lite0" if name == LITE0 else name
    if not timm.is_model(timm_name):
        raise PixelwiseError(f"model 'transfer': unknown backbone {name!r}; give a timm model name "
                             f"(e.g. resnet18, densenet121) or {LITE0!r}")
    if pretrained is True:
        if name != LITE0:
            raise PixelwiseError(f"model 'transfer': no offline weights for backbone {name!r}; pass "
                                 f"pretrained=/path/to/{name}.safetensors (a timm or torchvision checkpoint)")
        return efficientnet_lite0_timm(num_classes=0, in_chans=in_chans)
    # A local file loads as for every other timm model (pixelwise.models.backbones), first conv adapted.
    return create_timm_model(timm_name, pretrained=pretrained, in_chans=in_chans)


class TransferClassifier(nn.Module):
    """resize -> normalize -> pretrained backbone -> dropout -> new linear head.

    Input (N, C, H, W) float in [0, 1] with C = 1 or 3, any size (resized to input_size, bilinear).
    Output logits (N, num_classes).
    """

    def __init__(self, backbone: str = LITE0, num_classes: int = 10, in_chans: int = 3,
                 pretrained: bool | str = True, drop_rate: float = 0.2, input_size: int | None = 128,
                 adapt_first_conv: bool = False):
        super().__init__()
        if in_chans not in (1, 3):
            raise PixelwiseError(f"model 'transfer': in_chans must be 1 or 3, got {in_chans}")
        # Grayscale either goes through a 1-channel stem made from the RGB filters, or is replicated
        # to RGB by Normalize, which keeps the pretrained stem untouched.
        net_chans = in_chans if adapt_first_conv else 3
        self.backbone = build_backbone(backbone, pretrained, net_chans)
        cfg = self.backbone.pretrained_cfg
        mean, std = (LITE0_MEAN, LITE0_STD) if backbone == LITE0 else (cfg["mean"], cfg["std"])
        if net_chans == 1:
            mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        self.normalize = Normalize(mean, std)
        self.input_size = input_size
        self.head = nn.Sequential(nn.Dropout(drop_rate), nn.Linear(self.backbone.num_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.head(self.backbone(self.normalize(x)))


@register_model("transfer", input_size=(3, 128, 128), pretrained=True)
def transfer(backbone: str = LITE0, num_classes: int = 10, in_chans: int = 3, pretrained: bool | str = True,
             drop_rate: float = 0.2, input_size: int | None = 128, adapt_first_conv: bool = False) -> nn.Module:
    """A pretrained backbone (timm name or 'efficientnet_lite0') with a new head for `num_classes`."""
    return TransferClassifier(backbone, num_classes, in_chans, pretrained, drop_rate, input_size,
                              adapt_first_conv)
