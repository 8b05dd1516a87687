"""LDN against the authors' code (github.com/ivankreso/LDN, models/ldn_semseg.py, layers.py).

As for SwiftNet (test_swiftnet_authors.py): a state dict with THEIR key names and shapes (from their
modules' structure, written out below) filled with random values is mapped into pixelwise's LadderDenseNet,
whose logits must equal a purely functional forward pass written from their code: 2x2 stem max pool,
third dense block split by 2x2 average pooling, no norm5, SPP with grids (8, 4, 2, 1), residual upsampling
steps (lateral 1x1, 1x1 bottleneck to 128, 3x3 blend, 1x1 projection of the upsampled path where the width
changes), their data reader's Cityscapes normalization of 0-255 RGB.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.models.ldn_authors import LDN_CITYSCAPES_MEAN, LDN_CITYSCAPES_STD, load_ldn_authors_checkpoint

from tests.models.test_swiftnet_authors import _bn, _bn_f, _bn_relu_conv, _brc_f, _params, _up, random_state_dict

BLOCKS, GROWTH, BOTTLENECK = (6, 12, 24, 16), 32, 128
UP_SIZES, BLEND = (256, 256, 128, 128), 128


def ldn_layout(num_classes: int = 19, aux: bool = False) -> dict[str, tuple]:
    """DenseNet(dataset, args) of ldn_semseg.py for depth 121, ImageNet-initialized: key -> shape."""
    out = {"features.conv0.weight": (64, 3, 7, 7)} | _bn("features.norm0", 64)
    c, skips = 64, []
    for i, n in enumerate(BLOCKS, 1):
        for j in range(n):
            p, cin = f"features.denseblock{i}.denselayer{j + 1}", c + j * GROWTH
            out |= _bn(f"{p}.norm1", cin) | {f"{p}.conv1.weight": (BOTTLENECK, cin, 1, 1)}
            out |= _bn(f"{p}.norm2", BOTTLENECK) | {f"{p}.conv2.weight": (GROWTH, BOTTLENECK, 3, 3)}
        if i == 3:
            skips.append(c + n // 2 * GROWTH)            # the split point
        c += n * GROWTH
        if i < 4:
            skips.append(c)
            out |= _bn(f"features.transition{i}.norm", c) | {f"features.transition{i}.conv.weight": (c // 2, c, 1, 1)}
            c //= 2
    out |= _bn_relu_conv("spp.spp.spp_bn", c, 512, 1)
    for i in range(4):
        out |= _bn_relu_conv(f"spp.spp.spp{i}", 512, 128, 1)
    out |= _bn_relu_conv("spp.spp.spp_fuse", 512 + 4 * 128, 512, 1)
    cin = 512
    for i, cout in enumerate(UP_SIZES):
        p = f"upsample_layers.upsample_{i}"
        out |= _bn_relu_conv(f"{p}.bottleneck", skips[-1 - i], cin, 1)
        if cout != cin:
            out |= _bn_relu_conv(f"{p}.skip_bt", cin, cout, 1)
        if aux:
            out |= _bn_relu_conv(f"{p}.aux_logits", cin, num_classes, 1, bias=True)
        if cin > BLEND:
            out |= _bn_relu_conv(f"{p}.blend_bt", cin, BLEND, 1)
        out |= _bn_relu_conv(f"{p}.blend_conv", min(cin, BLEND), cout, 3)
        cin = cout
    return out | _bn_relu_conv("logits", cin, num_classes, 1, bias=True)


def _dense_block(sd, x, i, n, split: bool):
    feats, half = [x], None
    for j in range(n):
        if split and j == n // 2:
            half = torch.cat(feats, 1)
            feats = [F.avg_pool2d(half, 2, 2, padding=0, ceil_mode=False, count_include_pad=False)]
        p = f"features.denseblock{i}.denselayer{j + 1}"
        h = F.conv2d(F.relu(_bn_f(sd, f"{p}.norm1", torch.cat(feats, 1))), sd[f"{p}.conv1.weight"])
        feats.append(F.conv2d(F.relu(_bn_f(sd, f"{p}.norm2", h)), sd[f"{p}.conv2.weight"], padding=1))
    return torch.cat(feats, 1), half


def authors_ldn(sd, image255):
    mean = torch.tensor(LDN_CITYSCAPES_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LDN_CITYSCAPES_STD).view(1, 3, 1, 1)
    x = F.conv2d((image255 - mean) / std, sd["features.conv0.weight"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(_bn_f(sd, "features.norm0", x)), 2, 2)
    skips = []
    for i, n in enumerate(BLOCKS, 1):
        x, half = _dense_block(sd, x, i, n, split=i == 3)
        if half is not None:
            skips.append(half)
        if i < 4:
            skips.append(x)
            t = f"features.transition{i}"
            x = F.avg_pool2d(F.conv2d(F.relu(_bn_f(sd, f"{t}.norm", x)), sd[f"{t}.conv.weight"]), 2, 2)
    h, w = x.shape[-2:]
    x = _brc_f(sd, "spp.spp.spp_bn", x)
    levels = [x]
    for i, g in enumerate((8, 4, 2, 1)):
        levels.append(_up(_brc_f(sd, f"spp.spp.spp{i}", F.adaptive_avg_pool2d(x, (g, max(1, round(w / h * g))))),
                          (h, w)))
    x = _brc_f(sd, "spp.spp.spp_fuse", torch.cat(levels, 1))
    for i in range(4):
        p = f"upsample_layers.upsample_{i}"
        skip = _brc_f(sd, f"{p}.bottleneck", skips[-1 - i])
        bottom = _up(x, skip.shape[-2:])
        y = skip + bottom
        if f"{p}.blend_bt.conv.weight" in sd:
            y = _brc_f(sd, f"{p}.blend_bt", y)
        y = _brc_f(sd, f"{p}.blend_conv", y)
        if f"{p}.skip_bt.conv.weight" in sd:
            bottom = _brc_f(sd, f"{p}.skip_bt", bottom)
        x = y + bottom
    return _up(_brc_f(sd, "logits", x), image255.shape[-2:])


def test_ldn_layout_matches_the_authors():
    from pixelwise.models.ldn_authors import map_ldn_keys
    ours = create_model("ldn121", num_classes=19)
    layout = ldn_layout()
    mapped = map_ldn_keys({k: torch.empty(s) for k, s in layout.items()})
    own = {k: tuple(v.shape) for k, v in ours.state_dict().items() if not k.startswith("backbone.normalize.")}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == own
    assert sum(p.numel() for p in ours.parameters()) == _params(layout)


def test_ldn_authors_checkpoint_gives_their_logits(tmp_path):
    sd = random_state_dict(ldn_layout(num_classes=4, aux=True), seed=1)
    path = tmp_path / "ldn121_weights_cityscapes_train.pt"
    torch.save(sd, path)
    model = load_ldn_authors_checkpoint(path)
    torch.testing.assert_close(model.backbone.normalize.mean.flatten(), torch.tensor(LDN_CITYSCAPES_MEAN) / 255)
    image255 = torch.randint(0, 256, (1, 3, 128, 192)).float()
    with torch.no_grad():
        ours, theirs = model(image255 / 255), authors_ldn(sd, image255)
    assert ours.shape == (1, 4, 128, 192)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())
    assert math.isfinite(theirs.abs().max().item())


def test_ldn_authors_checkpoint_unknown_key():
    sd = random_state_dict(ldn_layout(num_classes=4))
    with pytest.raises(PixelwiseError, match="classifier.weight"):
        load_ldn_authors_checkpoint(sd | {"classifier.weight": torch.zeros(4, 1024)})
