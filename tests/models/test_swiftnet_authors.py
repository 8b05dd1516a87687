"""SwiftNet against the authors' code (github.com/orsic/swiftnet, models/resnet/resnet_single_scale.py,
resnet_pyramid.py, models/util.py, models/semseg.py).

No authors' checkpoint can be had offline, so the tests build state dicts with THEIR key names and shapes
(from their modules' structure, written out below) filled with random values, and compare the logits of
the pixelwise model they are mapped into with an independent, purely functional forward pass written from
their code's structure (their 0-255 input and normalization buffers, bicubic pyramid from the full image,
one batch norm per pyramid level, skips before the last ReLU in the pyramid model, bare 1x1 projections).
"""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.models.swiftnet_authors import (AUTHORS_MEAN, AUTHORS_STD, load_authors_checkpoint,
                                               map_authors_keys)

STAGE_WIDTHS = (64, 128, 256, 512)
RN18 = (2, 2, 2, 2)


# ----- the authors' layout: key -> shape, from the structure of their modules -----------------------------

def _bn(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()}


def _bn_relu_conv(prefix: str, cin: int, cout: int, k: int, bias: bool = False) -> dict[str, tuple]:
    """Their _BNReluConv: modules norm, relu, conv."""
    return _bn(f"{prefix}.norm", cin) | {f"{prefix}.conv.weight": (cout, cin, k, k)} | (
        {f"{prefix}.conv.bias": (cout,)} if bias else {})


def authors_layout(pyramid: bool, num_classes: int = 19, nf: int = 128, levels: int = 3,
                   blocks=RN18) -> dict[str, tuple]:
    """SemsegModel(resnet18(...), num_classes).state_dict() shapes: ResNet with BasicBlocks; in the
    pyramid model every stem/block batch norm is a ModuleList over levels, downsample BNs are not."""
    per_level = (lambda p, c: {k: s for lv in range(levels) for k, s in _bn(f"{p}.{lv}", c).items()}) \
        if pyramid else _bn
    out = {"backbone.img_mean": (1, 3, 1, 1), "backbone.img_std": (1, 3, 1, 1),
           "backbone.conv1.weight": (64, 3, 7, 7)} | per_level("backbone.bn1", 64)
    cin = 64
    for stage, (planes, n) in enumerate(zip(STAGE_WIDTHS, blocks), 1):
        for b in range(n):
            p = f"backbone.layer{stage}.{b}"
            out |= {f"{p}.conv1.weight": (planes, cin, 3, 3)} | per_level(f"{p}.bn1", planes)
            out |= {f"{p}.conv2.weight": (planes, planes, 3, 3)} | per_level(f"{p}.bn2", planes)
            if b == 0 and (stage > 1 or cin != planes):
                out |= {f"{p}.downsample.0.weight": (planes, cin, 1, 1)} | _bn(f"{p}.downsample.1", planes)
            cin = planes
    if pyramid:
        for i, c in enumerate(reversed(STAGE_WIDTHS)):       # upsample_bottlenecks: deepest stage first
            out[f"backbone.upsample_bottlenecks.{i}.weight"] = (nf, c, 1, 1)
        for i in range(2 + levels):
            out |= _bn_relu_conv(f"backbone.upsample_blends.{i}.blend_conv", nf, nf, 3)
    else:
        level = nf // 3                                       # spp_size // num_levels, 3 levels
        out |= _bn_relu_conv("backbone.spp.spp.spp_bn", 512, nf, 1)
        for i in range(3):
            out |= _bn_relu_conv(f"backbone.spp.spp.spp{i}", nf, level, 1)
        out |= _bn_relu_conv("backbone.spp.spp.spp_fuse", nf + 3 * level, nf, 1)
        for i, c in enumerate(reversed(STAGE_WIDTHS[:3])):    # upsample: layer3's skip first
            out |= _bn_relu_conv(f"backbone.upsample.{i}.bottleneck", c, nf, 1)
            out |= _bn_relu_conv(f"backbone.upsample.{i}.blend_conv", nf, nf, 3)
    return out | _bn_relu_conv("logits", nf, num_classes, 1, bias=True)


def random_state_dict(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in layout.items():
        if k == "backbone.img_mean":
            sd[k] = torch.tensor(AUTHORS_MEAN).view(shape)
        elif k == "backbone.img_std":
            sd[k] = torch.tensor(AUTHORS_STD).view(shape)
        elif k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith(("running_var", "norm.weight")) or (len(shape) == 1 and k.endswith(".weight")):
            sd[k] = 0.5 + torch.rand(shape, generator=g)
        elif len(shape) == 1:                                 # BN bias, running mean, conv bias
            sd[k] = 0.2 * torch.randn(shape, generator=g)
        else:                                                 # He-normal convolutions keep activations O(1)
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2 / math.prod(shape[1:]))
    return sd


# ----- the authors' forward pass, functional, from their code's structure ---------------------------------

def _bn_f(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)


def _conv_f(sd, p, x, stride=1):
    w = sd[f"{p}.weight"]
    return F.conv2d(x, w, sd.get(f"{p}.bias"), stride, w.shape[-1] // 2)


def _brc_f(sd, p, x):
    return _conv_f(sd, f"{p}.conv", F.relu(_bn_f(sd, f"{p}.norm", x)))


def _up(x, size):
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


def _resnet_f(sd, x, lv: str, pre_relu_skips: bool, blocks=RN18):
    """Their ResNet's four skips. The single-scale BasicBlock returns (relu(out), out) with an in-place
    ReLU, so its 'out' is post-ReLU; the pyramid one uses ReLU(inplace=False): pre-ReLU skips."""
    x = F.max_pool2d(F.relu(_bn_f(sd, f"backbone.bn1{lv}", _conv_f(sd, "backbone.conv1", x, 2))), 3, 2, 1)
    skips = []
    for stage, n in enumerate(blocks, 1):
        for b in range(n):
            p = f"backbone.layer{stage}.{b}"
            stride = 2 if stage > 1 and b == 0 else 1
            out = F.relu(_bn_f(sd, f"{p}.bn1{lv}", _conv_f(sd, f"{p}.conv1", x, stride)))
            out = _bn_f(sd, f"{p}.bn2{lv}", _conv_f(sd, f"{p}.conv2", out))
            residual = x
            if f"{p}.downsample.0.weight" in sd:
                residual = _bn_f(sd, f"{p}.downsample.1", _conv_f(sd, f"{p}.downsample.0", x, stride))
            out = out + residual
            x = F.relu(out)
        skips.append(out if pre_relu_skips else x)
    return skips


def authors_single_scale(sd, image255):
    x = (image255 - sd["backbone.img_mean"]) / sd["backbone.img_std"]
    f = _resnet_f(sd, x, "", pre_relu_skips=False)
    # SpatialPyramidPooling: bottleneck, three grids (8, 4, 2) of aspect ratio ar, fuse.
    h, w = f[3].shape[-2:]
    x = _brc_f(sd, "backbone.spp.spp.spp_bn", f[3])
    levels = [x]
    for i, g in enumerate((8, 4, 2)):
        pooled = F.adaptive_avg_pool2d(x, (g, max(1, round(w / h * g))))
        levels.append(_up(_brc_f(sd, f"backbone.spp.spp.spp{i}", pooled), (h, w)))
    x = _brc_f(sd, "backbone.spp.spp.spp_fuse", torch.cat(levels, 1))
    for i, skip in enumerate(reversed(f[:3])):
        skip = _brc_f(sd, f"backbone.upsample.{i}.bottleneck", skip)
        x = _brc_f(sd, f"backbone.upsample.{i}.blend_conv", _up(x, skip.shape[-2:]) + skip)
    return _up(_brc_f(sd, "logits", x), image255.shape[-2:])


def authors_pyramid(sd, image255, levels: int = 3):
    x = (image255 - sd["backbone.img_mean"]) / sd["backbone.img_std"]
    pyramid = [x] + [F.interpolate(x, scale_factor=1 / 2 ** lv, mode="bicubic", align_corners=None)
                     for lv in range(1, levels)]
    skips = [[] for _ in range(levels + 3)]
    for lv, image in enumerate(pyramid):
        for i, f in enumerate(_resnet_f(sd, image, f".{lv}", pre_relu_skips=True)):
            w = sd[f"backbone.upsample_bottlenecks.{3 - i}.weight"]
            skips[lv + i].append(F.conv2d(f, w))
    skips = skips[::-1]
    x = skips[0][0]
    for i, sk in enumerate(skips[1:]):
        skip = sum(sk)
        x = _brc_f(sd, f"backbone.upsample_blends.{i}.blend_conv", _up(x, skip.shape[-2:]) + skip)
    return _up(_brc_f(sd, "logits", x), image255.shape[-2:])


# ----- tests ------------------------------------------------------------------------------------------------

def _params(layout: dict[str, tuple]) -> int:
    buffers = ("running_mean", "running_var", "num_batches_tracked", "img_mean", "img_std")
    return sum(math.prod(s) for k, s in layout.items() if not k.endswith(buffers))


@pytest.mark.parametrize("pyramid", [False, True], ids=["single_scale", "pyramid"])
def test_layout_matches_the_authors(pyramid):
    """Same names (through the mapping) and shapes, hence the same parameters, per pyramid level too."""
    name = "swiftnet_pyramid_rn18" if pyramid else "swiftnet_rn18"
    ours = create_model(name, num_classes=19)
    layout = authors_layout(pyramid)
    mapped = map_authors_keys({k: torch.empty(s) for k, s in layout.items()})
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items() if not k.startswith("backbone.normalize.")}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == own
    params = sum(p.numel() for p in ours.parameters())
    assert params == _params(layout)
    if not pyramid:
        assert params == 11_797_071          # what the authors' single-scale RN18 reports for 19 classes
    else:                                    # one BN set per level: 3 copies of the stem/block BNs
        assert sorted(k for k in own if k.startswith("backbone.body.layer1.0.bn1.") and k.endswith(".weight")) \
            == [f"backbone.body.layer1.0.bn1.{lv}.weight" for lv in range(3)]
        assert "backbone.body.layer2.0.downsample.1.weight" in own     # shared, no level index


@pytest.mark.parametrize("pyramid", [False, True], ids=["single_scale", "pyramid"])
def test_authors_checkpoint_gives_their_logits(pyramid, tmp_path):
    torch.manual_seed(0)
    sd = random_state_dict(authors_layout(pyramid, num_classes=5))
    path = tmp_path / "model_best.pt"
    torch.save(sd, path)                     # their format: torch.save(model.state_dict())
    model = load_authors_checkpoint(path)
    assert not model.training and model.head.heads.logits.conv.out_channels == 5
    # Their normalization of 0-255 RGB carried into ours for [0, 1] images.
    torch.testing.assert_close(model.backbone.normalize.mean.flatten(), torch.tensor(AUTHORS_MEAN) / 255)
    torch.testing.assert_close(model.backbone.normalize.std.flatten(), torch.tensor(AUTHORS_STD) / 255)
    image255 = torch.randint(0, 256, (2, 3, 64, 96)).float()
    with torch.no_grad():
        ours = model(image255 / 255)
        theirs = (authors_pyramid if pyramid else authors_single_scale)(sd, image255)
    assert ours.shape == (2, 5, 64, 96)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())
    # The pyramid's per-level batch norms, bicubic levels and pre-ReLU skips all matter: the old pixelwise
    # layout (shared BNs) would be caught, e.g. changing level 2's stem BN changes the logits.
    if pyramid:
        model.backbone.body.bn1[2].bias.data += 1
        with torch.no_grad():
            assert not torch.allclose(model(image255 / 255), ours, atol=1e-3)


def test_authors_normalization_scale_and_missing_buffers():
    sd = random_state_dict(authors_layout(False, num_classes=3, nf=32))
    sd["backbone.img_scale"] = torch.tensor([2.0]).view(1, -1, 1, 1)
    model = load_authors_checkpoint(sd)
    torch.testing.assert_close(model.backbone.normalize.mean.flatten(), torch.tensor(AUTHORS_MEAN) * 2 / 255)
    del sd["backbone.img_mean"], sd["backbone.img_std"], sd["backbone.img_scale"]
    model = load_authors_checkpoint(sd)       # their configs' constants
    torch.testing.assert_close(model.backbone.normalize.std.flatten(), torch.tensor(AUTHORS_STD) / 255)


def test_authors_checkpoint_strict_errors():
    sd = random_state_dict(authors_layout(True, num_classes=3, nf=32))
    with pytest.raises(PixelwiseError, match="border_logits"):
        load_authors_checkpoint(sd | {"border_logits.conv.weight": torch.zeros(1, 32, 1, 1)})
    del sd["backbone.layer3.1.bn2.2.running_var"]
    with pytest.raises(PixelwiseError, match=r"missing \[backbone.body.layer3.1.bn2.2.running_var\]"):
        load_authors_checkpoint(sd)
    with pytest.raises(PixelwiseError, match="logits.conv.weight"):
        load_authors_checkpoint({"conv.weight": torch.zeros(1)})


def test_pyramid_imagenet_weights_start_every_level(tmp_path):
    """As the authors' _load_from_state_dict: a plain ResNet's BN copied into each level's BN."""
    torch.manual_seed(0)
    net = timm.create_model("resnet18")
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
    path = tmp_path / "resnet18.safetensors"
    save_file(net.state_dict(), str(path))
    model = create_model("swiftnet_pyramid_rn18", pretrained=path, num_classes=3)
    for lv in range(3):
        torch.testing.assert_close(model.backbone.body.layer2[1].bn2[lv].running_mean, net.layer2[1].bn2.running_mean)
        torch.testing.assert_close(model.backbone.body.bn1[lv].running_mean, net.bn1.running_mean)
    torch.testing.assert_close(model.backbone.body.layer3[0].downsample[1].running_mean,
                               net.layer3[0].downsample[1].running_mean)


def test_pyramid_rejects_non_resnet_backbones():
    with pytest.raises(PixelwiseError, match="timm ResNet"):
        create_model("swiftnet_pyramid", backbone="efficientnet_b0", num_classes=3)
    with pytest.raises(PixelwiseError, match="drop_block|drop_path"):
        create_model("swiftnet_pyramid", backbone_kwargs={"drop_path_rate": 0.1}, num_classes=3)
