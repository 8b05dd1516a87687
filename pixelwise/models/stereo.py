"""A lean learned stereo network in SwiftNet's spirit: a shared ImageNet encoder with a ladder decoder,
a correlation cost volume at stride 4, light 2-D aggregation, soft-argmin, and ladder refinement.

forward(left, right): left, right (N, C, H, W) float in [0, 1], a rectified pair of one size ->
disparity (N, 1, H, W) float32 px of the left view (x_right = x_left - d).

1. Both views pass one backbone (timm features_only, strides 4-32) and SwiftNet's upsampling path
   (SPP on stride 32, lateral skips) to stride-4 features: the context of the whole image reaches
   the matching features, which textureless garment interiors need.
2. Correlation cost volume: the mean over channels of left(x) * right(x - k) for k = 0 .. D - 1
   (D = max_disparity / 4 candidates at stride 4; columns whose match leaves the frame see zeros).
3. Aggregation: the D correlations and a projection of the left features as channels of a few 2-D
   3x3 units, with one stride-8 stage for a wider view; 3-D convolutions cost several times more on a
   CPU for what a 12-candidate volume needs. It ends in D matching costs.
4. Soft-argmin: sum_k softmax(-cost)_k * 4k, a sub-pixel disparity at stride 4 in full-resolution px.
5. Two ladder steps (stride 2, then 1) upsample the aggregation features, add skips of the left image
   (a small convolutional stem), the photometric error of the right view warped by the current
   disparity and the disparity itself, and predict a residual disparity.

Disparity arithmetic (soft-argmin, warping, residuals) runs in float32 even under bf16 autocast: bf16
resolves only 0.25 px at 32-64 px.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import REDUCTIONS, Pretrained, create_backbone
from pixelwise.models.layers import BNReluConv, SpatialPyramidPooling, Upsample, upsample
from pixelwise.models.registry import register_model

STRIDE = 4   # the cost volume's stride


def correlation_volume(left: torch.Tensor, right: torch.Tensor, candidates: int) -> torch.Tensor:
    """(N, C, h, w) features of both views -> (N, candidates, h, w): channel k is the mean over C of
    left(x) * right(x - k); right-view columns left of the frame count as zero features."""
    width = left.shape[-1]
    padded = F.pad(right, (candidates - 1, 0))
    return torch.stack([(left * padded[..., candidates - 1 - k:candidates - 1 - k + width]).mean(1)
                        for k in range(candidates)], 1)


def soft_argmin(cost: torch.Tensor, step: float) -> torch.Tensor:
    """(N, D, h, w) matching costs of disparities 0, step, ..., (D - 1) * step -> (N, 1, h, w) float32
    expected disparity under softmax(-cost): differentiable and sub-pixel (Kendall et al., GC-Net)."""
    prob = torch.softmax(-cost.float(), 1)
    values = torch.arange(cost.shape[1], device=cost.device, dtype=torch.float32).view(1, -1, 1, 1) * step
    return (prob * values).sum(1, keepdim=True)


def warp_right(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The right view (N, C, h, w) sampled at x - d for each left pixel x: disparity (N, 1, h, w) in px
    of this resolution. Bilinear; outside the frame the border column repeats."""
    n, _, h, w = right.shape
    xs = torch.arange(w, device=right.device, dtype=torch.float32).view(1, 1, w) - disparity[:, 0].float()
    ys = torch.arange(h, device=right.device, dtype=torch.float32).view(1, h, 1).expand(n, h, w)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack((2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1), -1)
    return F.grid_sample(right.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


class StereoLadder(nn.Module):
    """Backbone features (strides 4-32) -> stride-4 features: SPP on the deepest, one upsampling step
    per skip (SwiftNet's decoder without its classifier). (N, C, H, W) -> (N, width, H/4, W/4)."""

    def __init__(self, channels: list[int], width: int, spp_grids: tuple[int, ...] = (8, 4, 2)):
        super().__init__()
        self.spp = SpatialPyramidPooling(channels[-1], bottleneck=width, level_size=width // len(spp_grids),
                                         out=width, grids=spp_grids)
        self.upsample = nn.ModuleList(Upsample(width, skip, width) for skip in reversed(channels[:-1]))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.spp(features[-1])
        for up, skip in zip(self.upsample, reversed(features[:-1])):
            x = up(x, skip)
        return x


class CostAggregation(nn.Module):
    """Correlations (N, D, h, w) and left context (N, ctx, h, w) -> matching costs (N, D, h, w) and
    the aggregation features (N, width, h, w) that the refinement ladder upsamples."""

    def __init__(self, candidates: int, context: int, width: int):
        super().__init__()
        self.inp = nn.Conv2d(candidates + context, width, 3, padding=1, bias=False)
        self.fine = nn.Sequential(BNReluConv(width, width), BNReluConv(width, width))
        self.down = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False),
                                  BNReluConv(width, width))
        self.up = Upsample(width, width, width)
        self.cost = BNReluConv(width, candidates, k=3, bias=True)

    def forward(self, correlation: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.fine(self.inp(torch.cat((correlation, context), 1)))
        x = self.up(self.down(x), x)
        return self.cost(x), x


class RefineStep(nn.Module):
    """One ladder step of the disparity: upsample the hidden features (N, cin, h, w) to the skip's size,
    add a 1x1 projection of [left-image skip features, photometric error |left - warped right|,
    disparity / max_disparity], blend, and add a predicted residual to the upsampled disparity."""

    def __init__(self, cin: int, skip: int, width: int, image_channels: int):
        super().__init__()
        self.hidden = nn.Conv2d(cin, width, 1, bias=False)
        self.lateral = BNReluConv(skip + image_channels + 1, width, k=1)
        self.blend = nn.Sequential(BNReluConv(width, width), BNReluConv(width, width))
        self.residual = BNReluConv(width, 1, k=3, bias=True)

    def forward(self, hidden: torch.Tensor, disparity: torch.Tensor, skip: torch.Tensor, left: torch.Tensor,
                right: torch.Tensor, scale: float, max_disparity: float) -> tuple[torch.Tensor, torch.Tensor]:
        """disparity: (N, 1, h', w') full-resolution px; left, right: the views at the skip's size,
        `scale` times smaller than the input. Returns (hidden, disparity) at the skip's size."""
        size = skip.shape[-2:]
        disparity = upsample(disparity, size)
        error = (left.float() - warp_right(right, disparity / scale)).abs()
        lateral = self.lateral(torch.cat((skip, error.to(skip.dtype), (disparity / max_disparity).to(skip.dtype)), 1))
        hidden = self.blend(upsample(self.hidden(hidden), size) + lateral)
        return hidden, disparity + self.residual(hidden).float()


class ImageStem(nn.Module):
    """Skip features of the left image for the refinement ladder: (N, C, H, W) in [0, 1] ->
    [(N, width, H, W), (N, 2 * width, H/2, W/2)]."""

    def __init__(self, in_chans: int, width: int):
        super().__init__()
        self.full = nn.Conv2d(in_chans, width, 3, padding=1, bias=False)
        self.stride2 = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        full = self.full(x)
        return [full, self.stride2(full)]


class StereoOutput(NamedTuple):
    """What an exported stereo model returns: disparity (N, 1, H, W) px of the left view."""

    disparity: torch.Tensor


class SwiftNetStereo(nn.Module):
    """See the module docstring. forward(left, right) -> disparity (N, 1, H, W) float32 px.

    backbone, pretrained, backbone_kwargs: the shared encoder (pixelwise.models.backbones.create_backbone;
    any timm features_only model with strides 4-32, efficientnet_lite0 with pretrained=True).
    max_disparity: the search range in px at the input resolution, a multiple of 4 (48 covers
    FS-Stereo's 0-32 px at 128 px). num_features: width of the encoder's ladder; match_features:
    channels correlated; width: aggregation width; refine_width: width of the full-resolution step
    (the stride-2 step has twice as many). in_chans: image channels.
    With every_scale=True forward returns the list [stride-4, stride-2, full] of full-size disparities
    (the coarser ones bilinearly upsampled), for a loss at every scale.
    """

    def __init__(self, backbone: str = "resnet18", pretrained: Pretrained = False, max_disparity: int = 48,
                 num_features: int = 48, match_features: int = 24, width: int = 32, refine_width: int = 8,
                 in_chans: int = 3, backbone_kwargs: dict | None = None):
        super().__init__()
        if max_disparity < STRIDE or max_disparity % STRIDE:
            raise PixelwiseError(f"SwiftNetStereo: max_disparity must be a positive multiple of {STRIDE} px, "
                                 f"got {max_disparity}; use {max(STRIDE, -(-max_disparity // STRIDE) * STRIDE)}")
        self.max_disparity, self.candidates = max_disparity, max_disparity // STRIDE
        self.backbone = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans, **(backbone_kwargs or {}))
        if tuple(self.backbone.feature_info.reduction()) != REDUCTIONS:
            raise PixelwiseError(f"SwiftNetStereo needs backbone features at strides {list(REDUCTIONS)}; "
                                 f"{backbone!r} gives {self.backbone.feature_info.reduction()}")
        self.ladder = StereoLadder(self.backbone.feature_info.channels(), num_features)
        self.match = BNReluConv(num_features, match_features, k=1)
        self.context = BNReluConv(num_features, match_features, k=1)
        self.aggregate = CostAggregation(self.candidates, match_features, width)
        self.stem = ImageStem(in_chans, refine_width)
        self.refine = nn.ModuleList([RefineStep(width, 2 * refine_width, 2 * refine_width, in_chans),
                                     RefineStep(2 * refine_width, refine_width, refine_width, in_chans)])

    def forward(self, left: torch.Tensor, right: torch.Tensor, every_scale: bool = False):
        if left.shape != right.shape or left.ndim != 4:
            raise PixelwiseError(f"SwiftNetStereo: left {tuple(left.shape)} and right {tuple(right.shape)} must "
                                 "be equal (N, C, H, W); pass one rectified pair of one size")
        n, size = left.shape[0], left.shape[-2:]
        # One encoder pass over both views: the shared weights see one batch.
        features = self.ladder(self.backbone(torch.cat((left, right), 0)))
        matched = self.match(features)
        cost, hidden = self.aggregate(correlation_volume(matched[:n], matched[n:], self.candidates),
                                      self.context(features[:n]))
        disparity = soft_argmin(cost, STRIDE)
        outputs = [disparity]
        skips = self.stem(left)
        for step, skip in zip(self.refine, reversed(skips)):
            scale = size[-1] / skip.shape[-1]
            views = [v if v.shape[-2:] == skip.shape[-2:] else F.adaptive_avg_pool2d(v, skip.shape[-2:])
                     for v in (left, right)]
            hidden, disparity = step(hidden, disparity, skip, *views, scale, self.max_disparity)
            outputs.append(disparity)
        if every_scale:
            return [upsample(d, size) for d in outputs]
        return disparity.clamp(min=0)


class PairOnChannels(nn.Module):
    """A stereo model as one-input module for bench and export: (N, 2C, H, W) = left and right stacked
    on channels -> StereoOutput(disparity (N, 1, H, W) px)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pair: torch.Tensor) -> StereoOutput:
        c = pair.shape[1] // 2
        return StereoOutput(self.model(pair[:, :c], pair[:, c:]))


@register_model("swiftnet_stereo", task="stereo", input_size=(3, 128, 128), pretrained=True)
def swiftnet_stereo(**kwargs) -> SwiftNetStereo:
    """The learned stereo network on any timm backbone with strides 4-32 (`backbone=`, default resnet18)."""
    return SwiftNetStereo(**kwargs)


@register_model("swiftnet_stereo_rn18", task="stereo", input_size=(3, 128, 128), pretrained=True)
def swiftnet_stereo_rn18(**kwargs) -> SwiftNetStereo:
    """The learned stereo network on ResNet-18."""
    return SwiftNetStereo(backbone="resnet18", **kwargs)
