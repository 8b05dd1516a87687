"""Peer segmenters from other libraries behind pixelwise's model contract, for benchmarks/segmentation_peers.py.

segmentation_models_pytorch (Unet and FPN on ResNet-18) and torchvision (LRASPP and DeepLabV3 on
MobileNetV3-Large), all randomly initialized (nothing downloads), each wrapped so that it takes images
(N, C, H, W) float in [0, 1] and returns logits (N, K, H, W) at the input size: ImageNet normalization
inside, zero padding (the mean colour once normalized) up to the net's size multiple, logits cropped back.
They are optional benchmark dependencies: `pip install pixelwise[bench]` (smp; torchvision is pinned).

`register_peers()` adds them to the model registry (names in PEERS) so that the engine trains them with
the same recipe as SwiftNet; `unregister_peers()` removes them again. Their run folders reload only in a
process that registered them.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from pixelwise.errors import PixelwiseError
from pixelwise.models.normalize import Normalize
from pixelwise.models.registry import list_models, register_model, unregister_model


class PeerSegmenter(nn.Module):
    """ImageNet normalization, padding to `multiple`, a library's segmenter, logits cropped to the input.

    net: maps (N, 3, H', W') normalized images with H', W' multiples of `multiple` to logits at that size
    (a torchvision segmenter's dict is read at `out_key`). Input (N, C, H, W) float in [0, 1], C = 1 or 3.
    """

    def __init__(self, net: nn.Module, multiple: int = 1, out_key: str | None = None):
        super().__init__()
        self.normalize = Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
        self.net, self.multiple, self.out_key = net, multiple, out_key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.normalize(x)
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.net(x)
        if self.out_key is not None:
            out = out[self.out_key]
        return out[..., :h, :w]


def _smp():
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise PixelwiseError("segmentation_models_pytorch is not installed: the peer models are optional "
                             "benchmark dependencies, `pip install pixelwise[bench]`") from None
    return smp


def smp_unet_resnet18(num_classes: int = 19) -> PeerSegmenter:
    """smp.Unet on ResNet-18 (decoder 256-128-64-32-16, logits at full resolution); sizes padded to 32."""
    return PeerSegmenter(_smp().Unet("resnet18", encoder_weights=None, classes=num_classes), multiple=32)


def smp_fpn_resnet18(num_classes: int = 19) -> PeerSegmenter:
    """smp.FPN on ResNet-18 (pyramid 256, segmentation 128 channels, dropout 0.2, logits at stride 4
    upsampled x4, smp's defaults); sizes padded to 32."""
    return PeerSegmenter(_smp().FPN("resnet18", encoder_weights=None, classes=num_classes), multiple=32)


def lraspp_mobilenet_v3_large(num_classes: int = 19) -> PeerSegmenter:
    """torchvision LRASPP on a dilated MobileNetV3-Large (output upsampled to the input by torchvision)."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large as build
    return PeerSegmenter(build(weights=None, weights_backbone=None, num_classes=num_classes), out_key="out")


def deeplabv3_mobilenet_v3_large(num_classes: int = 19) -> PeerSegmenter:
    """torchvision DeepLabV3 (ASPP) on a dilated MobileNetV3-Large, without the auxiliary head."""
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large as build
    return PeerSegmenter(build(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False),
                         out_key="out")


PEERS: dict[str, Callable[..., PeerSegmenter]] = {
    "smp_unet_resnet18": smp_unet_resnet18,
    "smp_fpn_resnet18": smp_fpn_resnet18,
    "tv_lraspp_mobilenet_v3_large": lraspp_mobilenet_v3_large,
    "tv_deeplabv3_mobilenet_v3_large": deeplabv3_mobilenet_v3_large,
}


def register_peers() -> list[str]:
    """Register the peer factories (taking num_classes) as segmentation models; returns their names."""
    for name, factory in PEERS.items():
        if name not in list_models():
            register_model(name, task="segmentation")(factory)
    return list(PEERS)


def unregister_peers() -> None:
    for name in PEERS:
        if name in list_models():
            unregister_model(name)
