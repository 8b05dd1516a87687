"""The ladder-style DenseNet authors' checkpoints (github.com/ivankreso/LDN: models/ldn_semseg.py, saved
with `torch.save(model.state_dict(), ...)`, e.g. their ldn121_weights_cityscapes_train.pt) loaded into
pixelwise's LadderDenseNet.

Every key is renamed by a fixed rule and the result loads strictly; the auxiliary logits of their pyramid
loss (`upsample_layers.*.aux_logits`, trained with --aux-loss 1) do not take part in the prediction and are
left out, as their own evaluation does. Their normalization lives in the data reader, not in the
checkpoint: Cityscapes mean 73.45286, 83.21195, 72.78044 and std 45.19961, 46.3659, 45.48506 on 0-255 RGB,
carried into the model's normalization for [0, 1] images (pass mean/std for other readers).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from pixelwise.errors import PixelwiseError
from pixelwise.models.ladder import LadderDenseNet
from pixelwise.models.pretrained import load_state, read_state_dict

LDN_CITYSCAPES_MEAN = (73.45286, 83.21195, 72.78044)
LDN_CITYSCAPES_STD = (45.19961, 46.3659, 45.48506)
DENSENET_BLOCKS = {(6, 12, 24, 16): "densenet121", (6, 12, 32, 32): "densenet169",
                   (6, 12, 48, 32): "densenet201"}

_RULES = [(r"features\.(.+)", r"backbone.body.features.\1"),
          (r"spp\.spp\.spp_bn\.(.+)", r"head.spp.project.\1"),
          (r"spp\.spp\.spp(\d+)\.(.+)", r"head.spp.levels.\1.\2"),
          (r"spp\.spp\.spp_fuse\.(.+)", r"head.spp.fuse.\1"),
          (r"upsample_layers\.upsample_(\d+)\.bottleneck\.(.+)", r"head.upsample.\1.lateral.\2"),
          (r"upsample_layers\.upsample_(\d+)\.blend_bt\.(.+)", r"head.upsample.\1.blend_bottleneck.\2"),
          (r"upsample_layers\.upsample_(\d+)\.blend_conv\.(.+)", r"head.upsample.\1.blend.\2"),
          (r"upsample_layers\.upsample_(\d+)\.skip_bt\.(.+)", r"head.upsample.\1.residual.\2"),
          (r"logits\.(.+)", r"head.heads.logits.\1")]
_AUX = re.compile(r"upsample_layers\.upsample_\d+\.aux_logits\..+")


def map_ldn_keys(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Their key names -> LadderDenseNet's; auxiliary logits left out; an unknown key is an error."""
    out = {}
    for key, value in state_dict.items():
        if _AUX.fullmatch(key):
            continue
        for pattern, replacement in _RULES:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise PixelwiseError(f"{source}: key {key!r} is not part of the LDN authors' model that pixelwise "
                                 f"maps; is it a checkpoint of github.com/ivankreso/LDN?")
    return out


def load_ldn_authors_checkpoint(checkpoint: str | Path | dict[str, torch.Tensor],
                                mean: Sequence[float] = LDN_CITYSCAPES_MEAN,
                                std: Sequence[float] = LDN_CITYSCAPES_STD) -> LadderDenseNet:
    """A pixelwise LadderDenseNet with the weights of an LDN authors' checkpoint (a file read weights-only,
    or its state dict), in eval mode. mean, std: their reader's statistics on 0-255 RGB (Cityscapes by
    default). The model takes RGB images (N, 3, H, W) float in [0, 1] and gives their logits."""
    source = str(checkpoint) if not isinstance(checkpoint, dict) else "LDN authors' state dict"
    sd = checkpoint if isinstance(checkpoint, dict) else read_state_dict(checkpoint)
    if "logits.conv.weight" not in sd or "spp.spp.spp_bn.conv.weight" not in sd:
        raise PixelwiseError(f"{source}: no 'logits.conv.weight' / 'spp.spp.spp_bn.conv.weight'; is it a "
                             f"state dict of the LDN authors' model (github.com/ivankreso/LDN)?")
    blocks = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"features.denseblock{i}.")})
                   for i in range(1, 5))
    if blocks not in DENSENET_BLOCKS:
        raise PixelwiseError(f"{source}: a DenseNet with {blocks} layers per block; pixelwise maps "
                             f"{', '.join(DENSENET_BLOCKS.values())} {tuple(DENSENET_BLOCKS)}")
    num_classes = sd["logits.conv.weight"].shape[0]
    num_features = sd["upsample_layers.upsample_3.blend_conv.conv.weight"].shape[0] \
        if "upsample_layers.upsample_3.blend_conv.conv.weight" in sd else 128
    model = LadderDenseNet(num_classes=int(num_classes), backbone=DENSENET_BLOCKS[blocks],
                           num_features=int(num_features))
    mapped = map_ldn_keys(sd, source)
    mapped["backbone.normalize.mean"] = (torch.tensor(mean, dtype=torch.float32) / 255).view(1, -1, 1, 1)
    mapped["backbone.normalize.std"] = (torch.tensor(std, dtype=torch.float32) / 255).view(1, -1, 1, 1)
    load_state(model, mapped, source, strict=True)
    return model.eval()
