"""Feature-to-feature (F2F) forecasting of future semantic segmentation (Saric, Orsic, Antunovic,
Vrazic, Segvic, GCPR 2019: "Single level feature-to-feature forecasting with deformable convolutions").

Two models:
- `swiftnet_f2f` (a segmenter): SwiftNet whose upsampling path takes its skips only down to stride 8,
  the forecast level. SPP on the stride-32 features, ladder steps with the stride-16 and stride-8 skips
  give the level features (N, num_features, H/8, W/8); one more step without a skip (x2 upsampling,
  3x3 unit) and the heads turn them into logits. Forecasting the level features is then enough to
  decode a future frame: no skip of the last observed frame, misaligned with the future, enters the
  decoder (Saric et al. likewise train their single-frame model without the finer skips).
  Stride 8 at 128 px is a 16 x 16 grid: garments (28-56 px) keep 3-7 cells and the mid-term motion
  (9-36 px) spans 1-4.5 cells, which a few 3x3 deformable layers reach; stride 16 would leave 8 x 8.
- `f2f` (a forecaster): the frozen single-frame segmenter supplies the level features of the four
  observed frames; an F2F module maps their concatenation to the future level features through
  residual deformable convolutions, with one output head per horizon (direct forecasting: +3 and +9
  each have their own head on a shared trunk, no autoregressive chaining); the frozen decoder of the
  segmenter turns those into logits.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from torchvision.ops import DeformConv2d

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import REDUCTIONS, Pretrained, create_backbone
from pixelwise.models.checkpointing import set_grad_checkpointing
from pixelwise.models.layers import (BNReluConv, CheckpointedBlock, EncoderDecoder, SegmentationHeads,
                                     SpatialPyramidPooling, Upsample, resize_outputs, upsample)
from pixelwise.models.registry import create_model, model_info, register_model

OBSERVED_FRAMES = 4   # t-9, t-6, t-3, t (pixelwise.data.fs_forecast.OBSERVED)


class ForecastOutput(NamedTuple):
    """Forecast logits (N, K, H, W) of the short-term (t+3) and mid-term (t+9) future frames."""
    short: torch.Tensor
    mid: torch.Tensor


# --- the single-frame segmenter --------------------------------------------------------------------
class Refine(CheckpointedBlock):
    """x2 bilinear upsampling and a 3x3 unit: (N, C, h, w) -> (N, C, 2h, 2w); a ladder step without skip."""

    def __init__(self, channels: int):
        super().__init__()
        self.blend = BNReluConv(channels, channels, k=3)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blend(upsample(x, (2 * x.shape[-2], 2 * x.shape[-1])))


class LevelDecoder(nn.Module):
    """SPP + ladder steps down to the stride-8 level, then Refine and the heads (see the module doc).

    features: [stride 4 (unused), 8, 16, 32] -> head outputs at twice the stride-8 resolution.
    """

    def __init__(self, channels: Sequence[int], num_classes: int, num_features: int = 128,
                 spp_grids: Sequence[int] = (8, 4, 2), outlier_head: bool = False):
        super().__init__()
        nf = self.level_channels = num_features
        self.spp = SpatialPyramidPooling(channels[3], bottleneck=nf, level_size=nf // len(spp_grids), out=nf,
                                         grids=spp_grids)
        self.upsample = nn.ModuleList([Upsample(nf, channels[2], nf), Upsample(nf, channels[1], nf)])
        self.refine = Refine(nf)
        self.heads = SegmentationHeads(nf, num_classes, outlier_head)

    def level(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The forecast level: (N, num_features, H/8, W/8)."""
        x = self.spp(features[3])
        for up, skip in zip(self.upsample, (features[2], features[1])):
            x = up(x, skip)
        return x

    def decode(self, level: torch.Tensor):
        """Head outputs of level features (N, num_features, h, w) at (2h, 2w)."""
        return self.heads(self.refine(level))

    def forward_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.refine(self.level(features))

    def forward(self, features: list[torch.Tensor]):
        return self.heads(self.forward_features(features))


class LevelSwiftNet(EncoderDecoder):
    """SwiftNet decoding from its stride-8 level alone (no finer skip). Input (N, C, H, W) float in [0, 1].

    Returns logits (N, num_classes, H, W) (or with an outlier head, SegmentationOutput). `level_features`
    and `decode_level` split it where F2F forecasts. Arguments as pixelwise.models.swiftnet.SwiftNet.
    """

    def __init__(self, num_classes: int = 19, backbone: str = "resnet18", pretrained: Pretrained = False,
                 num_features: int = 128, spp_grids: Sequence[int] = (8, 4, 2), in_chans: int = 3,
                 outlier_head: bool = False, grad_checkpointing: bool = False, backbone_kwargs: dict | None = None):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained=pretrained, in_chans=in_chans, **(backbone_kwargs or {}))
        if tuple(self.backbone.feature_info.reduction()) != REDUCTIONS:
            raise PixelwiseError(f"swiftnet_f2f needs backbone features at strides {list(REDUCTIONS)}; "
                                 f"{backbone!r} gives {self.backbone.feature_info.reduction()}")
        self.head = LevelDecoder(self.backbone.feature_info.channels(), num_classes, num_features, spp_grids,
                                 outlier_head)
        if grad_checkpointing:
            set_grad_checkpointing(self, True)

    def level_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> level features (N, num_features, H/8, W/8)."""
        return self.head.level(self.encode(x))

    def decode_level(self, level: torch.Tensor, size: Sequence[int]):
        """Level features -> logits at `size` (H, W): what forward gives for the frame they describe."""
        return resize_outputs(self.head.decode(level), size)


@register_model("swiftnet_f2f", task="segmentation", pretrained=True)
def swiftnet_f2f(**kwargs) -> LevelSwiftNet:
    """SwiftNet without skips finer than stride 8: the single-frame model of F2F forecasting."""
    return LevelSwiftNet(**kwargs)


# --- deformable convolution ---------------------------------------------------------------------------
def sampled_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                          bias: torch.Tensor | None = None, dilation: int = 1) -> torch.Tensor:
    """torchvision.ops.deform_conv2d with stride 1 and 'same' padding (dilation * (k // 2)), one offset group,
    computed as bilinear sampling (grid_sample) and one matrix product.

    x (N, C, H, W); offset (N, 2 * kh * kw, H, W), (dy, dx) per kernel tap in row-major order, as
    torchvision; weight (O, C, kh, kw). Equal to torchvision's kernel (tests), faster on CPU for small maps
    and exportable to ONNX (GridSample), which torchvision's operator is not (onnxruntime has no DeformConv).
    The sampling runs in float32 (pixel coordinates in bf16 would be off by up to 1/16 px at 16 px).
    """
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    k = kh * kw
    dtype = torch.promote_types(x.dtype, torch.float32)
    with torch.autocast(x.device.type, enabled=False):
        xf, off = x.to(dtype), offset.to(dtype).reshape(n, k, 2, h, w)
        ky, kx = torch.meshgrid((torch.arange(kh, device=x.device) - kh // 2) * dilation,
                                (torch.arange(kw, device=x.device) - kw // 2) * dilation, indexing="ij")
        ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
        py = ys + ky.reshape(1, k, 1, 1) + off[:, :, 0]
        px = xs + kx.reshape(1, k, 1, 1) + off[:, :, 1]
        # align_corners=True: -1 and 1 are the centres of the first and last pixels; samples outside are 0.
        grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), -1)
        cols = F.grid_sample(xf, grid.reshape(n, k * h, w, 2), mode="bilinear", padding_mode="zeros",
                             align_corners=True)
    out = torch.matmul(weight.reshape(o, c * k), cols.reshape(n, c * k, h * w)).reshape(n, o, h, w)
    return out if bias is None else out + bias.reshape(1, o, 1, 1)


class SampledDeformConv2d(DeformConv2d):
    """torchvision.ops.DeformConv2d (same parameters and initialisation), stride 1 and 'same' padding,
    computed by `sampled_deform_conv2d`. x (N, C, H, W), offset (N, 2 * k * k, H, W) -> (N, O, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2),
                         dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            raise PixelwiseError("SampledDeformConv2d has no modulation mask; use torchvision.ops.DeformConv2d")
        return sampled_deform_conv2d(x, offset, self.weight, self.bias, self.dilation[0])


class DeformableBlock(nn.Module):
    """Residual pre-activation unit: x + DeformConv(relu(bn(x)), offsets from a plain 3x3 conv of the same).

    The offsets start at zero (a plain dilated 3x3 convolution) and learn where to look. (N, C, h, w) -> same.
    """

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.offset = nn.Conv2d(channels, 18, 3, padding=dilation, dilation=dilation)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = SampledDeformConv2d(channels, channels, 3, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm(x))
        return x + self.conv(y, self.offset(y))


class FeatureForecaster(nn.Module):
    """F2F: observed level features (N, O, C, h, w), oldest first -> future features (N, C, h, w), one per
    horizon (direct forecasting: a trunk shared by the horizons, one output head each).

    The concatenation is normalized and projected to `width` channels (1x1), passes `layers` residual
    deformable blocks (dilations 1, 2, 1, 2, ...: a wider reach for fast garments); each head, a 1x1 unit,
    gives a change that is added to the last observed features. The heads start at zero, so training
    starts from copy-last. Runs in float32 even under autocast: bf16 would round the sampling offsets
    and cost more in conversions than it saves on these small maps.
    """

    def __init__(self, channels: int, observed: int = OBSERVED_FRAMES, width: int = 128, layers: int = 4,
                 horizons: int = 2):
        super().__init__()
        self.project = nn.Sequential(nn.BatchNorm2d(observed * channels), nn.Conv2d(observed * channels, width, 1))
        self.blocks = nn.Sequential(*(DeformableBlock(width, dilation=1 + i % 2) for i in range(layers)))
        self.heads = nn.ModuleList(BNReluConv(width, channels, k=1, bias=True) for _ in range(horizons))
        for head in self.heads:
            nn.init.zeros_(head.conv.weight)
            nn.init.zeros_(head.conv.bias)

    def forward(self, observed: torch.Tensor) -> list[torch.Tensor]:
        n, o, c, h, w = observed.shape
        with torch.autocast(observed.device.type, enabled=False):
            observed = observed.float()
            x = self.blocks(self.project(observed.reshape(n, o * c, h, w)))
            return [observed[:, -1] + head(x) for head in self.heads]


# --- the forecaster ------------------------------------------------------------------------------------
def read_segmenter_run(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json, weights) of the single-frame segmenter's run folder; errors name the folder."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise PixelwiseError(f"{folder}: not a finished segmentation run (needs config.json and model.safetensors); "
                             "train the single-frame model first (model=swiftnet_f2f data.name=fs_forecast)")
    config = json.loads((folder / "config.json").read_text())
    if model_info(config["model"]).kind != "segmentation":
        raise PixelwiseError(f"{folder}: holds a {model_info(config['model']).kind} model ({config['model']}); "
                             "F2F needs a segmentation run")
    return config, load_file(str(folder / "model.safetensors"))


class F2F(nn.Module):
    """Forecaster of future segmentation. Input: the observed frames t-9, t-6, t-3, t stacked on channels,
    (N, 4 * 3, H, W) float in [0, 1]; output ForecastOutput(short (t+3), mid (t+9)) logits (N, K, H, W).

    segmenter / segmenter_kwargs: the frozen single-frame model (one with `level_features` and
    `decode_level`, e.g. swiftnet_f2f); pretrained: its run folder, whose weights (and, where
    segmenter_kwargs is not given, architecture) are loaded, or False for random weights (smoke tests).
    width, layers: of the FeatureForecaster. ce_weight: weight of the cross-entropy term of the
    training loss, through the frozen decoder (0: feature regression alone). The frozen model stays in
    eval mode and gets no gradient; its weights are part of this model's state dict, so a run folder of
    F2F rebuilds without the segmenter's folder (pretrained=False, then its own weights).
    """

    def __init__(self, num_classes: int = 11, segmenter: str = "swiftnet_f2f", segmenter_kwargs: dict | None = None,
                 pretrained: str | Path | bool = False, width: int = 128, layers: int = 4, ce_weight: float = 0.0):
        super().__init__()
        weights = None
        if pretrained:
            config, weights = read_segmenter_run(pretrained)
            if segmenter_kwargs is None:
                segmenter, segmenter_kwargs = config["model"], config.get("model_kwargs", {})
        kwargs = {"num_classes": num_classes, **(segmenter_kwargs or {})}
        if kwargs["num_classes"] != num_classes:
            raise PixelwiseError(f"the segmenter has {kwargs['num_classes']} classes, the forecast data "
                                 f"{num_classes}; train it on the same dataset")
        if model_info(segmenter).pretrained:   # its whole weights come from its run (or stay random)
            kwargs["pretrained"] = False
        self.segmenter = create_model(segmenter, **kwargs)
        if not hasattr(self.segmenter, "level_features"):
            raise PixelwiseError(f"segmenter {segmenter!r} has no forecast level (level_features/decode_level); "
                                 "use swiftnet_f2f")
        if weights is not None:
            self.segmenter.load_state_dict(weights)
        self.segmenter.requires_grad_(False)
        self.segmenter.eval()
        channels = self.segmenter.head.level_channels
        self.forecaster = FeatureForecaster(channels, OBSERVED_FRAMES, width, layers, horizons=2)
        self.ce_weight = float(ce_weight)

    def train(self, mode: bool = True) -> "F2F":
        super().train(mode)
        self.segmenter.eval()   # frozen: batch-norm statistics stay the trained ones
        return self

    @torch.no_grad()
    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Level features of frames (N, F, 3, H, W) in [0, 1] -> (N, F, C, h, w), without gradient."""
        n, f = frames.shape[:2]
        level = self.segmenter.level_features(frames.flatten(0, 1))
        return level.reshape(n, f, *level.shape[1:])

    def forecast(self, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Observed level features (N, 4, C, h, w) -> forecast level features of t+3 and t+9."""
        short, mid = self.forecaster(observed)
        return short, mid

    def decode(self, level: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Level features (N, C, h, w) -> class logits (N, K, *size) through the frozen decoder."""
        out = self.segmenter.decode_level(level, size)
        return out.logits if isinstance(out, tuple) else out

    def forward(self, x: torch.Tensor) -> ForecastOutput:
        n, c, h, w = x.shape
        if c % OBSERVED_FRAMES:
            raise PixelwiseError(f"F2F takes the {OBSERVED_FRAMES} observed frames stacked on channels "
                                 f"(N, {OBSERVED_FRAMES} * 3, H, W); got {c} channels")
        observed = self.frame_features(x.reshape(n, OBSERVED_FRAMES, c // OBSERVED_FRAMES, h, w))
        short, mid = self.forecast(observed)
        return ForecastOutput(self.decode(short, (h, w)), self.decode(mid, (h, w)))


@register_model("f2f", task="forecasting", input_size=(3 * OBSERVED_FRAMES, 128, 128), pretrained=True)
def f2f(**kwargs) -> F2F:
    """F2F forecasting (Saric et al. 2019) over a frozen swiftnet_f2f; `pretrained`: the segmenter's run folder."""
    return F2F(**kwargs)
