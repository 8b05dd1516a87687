"""The SwiftNet authors' checkpoints (github.com/orsic/swiftnet: `SemsegModel` around `resnet_single_scale`
or `resnet_pyramid`, saved with `torch.save(model.state_dict(), ...)`) loaded into pixelwise models.

Every key of their layout is renamed by a fixed rule and the result loads strictly (a key without a rule,
a missing key or a shape that differs is an error naming it). Their models take RGB images in 0-255 and
normalize with the buffers `backbone.img_mean` / `img_std` (Cityscapes configs: mean 73.15, 82.90, 72.3,
std 47.67, 48.49, 47.73) and `img_scale` (where scale != 1); pixelwise models take [0, 1] images, so the
constants are divided by 255 (and scaled) into the model's normalization: the loaded model gives their
logits for image / 255.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from pixelwise.errors import PixelwiseError
from pixelwise.models.pretrained import load_state, read_state_dict
from pixelwise.models.swiftnet import SwiftNet, SwiftNetPyramid

# Their Cityscapes configs (configs/rn18_single_scale.py, rn18_pyramid.py), on 0-255 RGB.
AUTHORS_MEAN = (73.15, 82.90, 72.3)
AUTHORS_STD = (47.67, 48.49, 47.73)
NORMALIZATION = ("backbone.img_mean", "backbone.img_std", "backbone.img_scale")
RESNET_DEPTHS = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34"}   # BasicBlock ResNets they build

_BACKBONE = (r"backbone\.(conv1|bn1|layer[1-4])\.(.+)", r"backbone.body.\1.\2")
_LOGITS = (r"logits\.(norm|conv)\.(.+)", r"head.heads.logits.\1.\2")
_SINGLE_SCALE = [_BACKBONE, _LOGITS,
                 (r"backbone\.spp\.spp\.spp_bn\.(.+)", r"head.spp.project.\1"),
                 (r"backbone\.spp\.spp\.spp(\d+)\.(.+)", r"head.spp.levels.\1.\2"),
                 (r"backbone\.spp\.spp\.spp_fuse\.(.+)", r"head.spp.fuse.\1"),
                 (r"backbone\.upsample\.(\d+)\.bottleneck\.(.+)", r"head.upsample.\1.lateral.\2"),
                 (r"backbone\.upsample\.(\d+)\.blend_conv\.(.+)", r"head.upsample.\1.blend.\2")]
_PYRAMID = [_BACKBONE, _LOGITS,
            (r"backbone\.upsample_blends\.(\d+)\.blend_conv\.(.+)", r"head.blend.\1.blend.\2")]
# Their projections are listed from the deepest stage (upsample_bottlenecks.0: layer4) to layer1.
_PYRAMID_LATERAL = re.compile(r"backbone\.upsample_bottlenecks\.(\d+)\.weight")


def is_pyramid(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether an authors' state dict is of the pyramid model (else single scale)."""
    return any(k.startswith("backbone.upsample_blends.") for k in state_dict)


def map_authors_keys(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Their key names -> pixelwise's (SwiftNet or SwiftNetPyramid), normalization buffers left out.

    Raises PixelwiseError for a key that no rule covers (e.g. `border_logits`, which pixelwise lacks).
    """
    pyramid = is_pyramid(state_dict)
    rules = _PYRAMID if pyramid else _SINGLE_SCALE
    lateral = [k for k in state_dict if _PYRAMID_LATERAL.fullmatch(k)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in NORMALIZATION:
            continue
        if pyramid and (m := _PYRAMID_LATERAL.fullmatch(key)):
            out[f"head.lateral.{len(lateral) - 1 - int(m.group(1))}.weight"] = value
            continue
        for pattern, replacement in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise PixelwiseError(f"{source}: key {key!r} is not part of the SwiftNet authors' "
                                 f"{'pyramid' if pyramid else 'single-scale'} model that "
                                 f"pixelwise maps; is it a checkpoint of github.com/orsic/swiftnet?")
    return out


def authors_normalization(state_dict: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per channel for [0, 1] images equal to the authors' normalization of 0-255 images:
    (255 x / scale - mean) / std = (x - mean scale / 255) / (std scale / 255). Without the buffers in the
    file, the constants of their Cityscapes configs."""
    mean = state_dict.get("backbone.img_mean", torch.tensor(AUTHORS_MEAN)).float().flatten()
    std = state_dict.get("backbone.img_std", torch.tensor(AUTHORS_STD)).float().flatten()
    scale = state_dict.get("backbone.img_scale", torch.ones(1)).float().flatten()
    return mean * scale / 255, std * scale / 255


def build_for_authors_state_dict(state_dict: dict[str, torch.Tensor],
                                 source: str = "checkpoint") -> SwiftNet | SwiftNetPyramid:
    """An untrained pixelwise model of the architecture an authors' state dict describes: single scale
    or pyramid (and its levels), ResNet-18 or -34, the upsampling width and the number of classes."""
    if "logits.conv.weight" not in state_dict:
        raise PixelwiseError(f"{source}: no 'logits.conv.weight'; is it a state dict of the SwiftNet authors' "
                             f"SemsegModel (github.com/orsic/swiftnet)?")
    num_classes, num_features = state_dict["logits.conv.weight"].shape[:2]
    depths = tuple(len({k.split(".")[2] for k in state_dict if k.startswith(f"backbone.layer{i}.")})
                   for i in range(1, 5))
    if depths not in RESNET_DEPTHS:
        raise PixelwiseError(f"{source}: ResNet with {depths} blocks per stage; the authors' SwiftNet "
                             f"checkpoints pixelwise maps are ResNet-18 {(2, 2, 2, 2)} or -34 {(3, 4, 6, 3)}")
    kw = dict(num_classes=int(num_classes), backbone=RESNET_DEPTHS[depths], num_features=int(num_features))
    if is_pyramid(state_dict):
        levels = len({k.split(".")[2] for k in state_dict if re.fullmatch(r"backbone\.bn1\.\d+\.weight", k)})
        return SwiftNetPyramid(pyramid_levels=levels, **kw)
    return SwiftNet(**kw)


def load_authors_checkpoint(checkpoint: str | Path | dict[str, torch.Tensor]) -> nn.Module:
    """A pixelwise SwiftNet (single scale or pyramid) with the weights and normalization of an authors'
    checkpoint (a file read weights-only, or its state dict). Returns the model in eval mode; it takes
    RGB images (N, 3, H, W) float in [0, 1] (their 0-255 images / 255) and gives their logits."""
    source = str(checkpoint) if not isinstance(checkpoint, dict) else "authors' state dict"
    state_dict = checkpoint if isinstance(checkpoint, dict) else read_state_dict(checkpoint)
    model = build_for_authors_state_dict(state_dict, source)
    mean, std = authors_normalization(state_dict)
    mapped = map_authors_keys(state_dict, source)
    mapped["backbone.normalize.mean"] = mean.view(1, -1, 1, 1)
    mapped["backbone.normalize.std"] = std.view(1, -1, 1, 1)
    load_state(model, mapped, source, strict=True)
    return model.eval()
