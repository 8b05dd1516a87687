"""Backbones: four levels at strides 4-32 as advertised, normalization inside, local weights only."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from torchvision.transforms.v2 import functional as TF

from pixelwise.errors import PixelwiseError
from pixelwise.models.backbones import create_backbone

# convnext_atto has no stride-2 level: it exercises the search for the stride-4..32 levels.
BACKBONES = ["resnet18", "densenet121", "efficientnet_lite0", "mobilenetv3_small_050", "convnext_atto"]


@pytest.mark.parametrize("name", BACKBONES)
def test_levels_as_advertised(name):
    bb = create_backbone(name).eval()
    assert list(bb.feature_info.reduction()) == [4, 8, 16, 32]
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        feats = bb(x)
        gray = bb(x[:, :1])
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // r, 96 // r) for c, r in
                                              zip(bb.feature_info.channels(), bb.feature_info.reduction())]
    assert [f.shape for f in gray] == [f.shape for f in feats]


def test_normalization_uses_pretrained_statistics():
    bb = create_backbone("resnet18").eval()
    cfg = bb.body.pretrained_cfg
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ours = bb(x)[-1]
        ref = bb.body(TF.normalize(x, list(cfg["mean"]), list(cfg["std"])))[-1]
    torch.testing.assert_close(ours, ref)


def test_one_input_channel():
    bb = create_backbone("resnet18", in_chans=1).eval()
    assert bb.body.conv1.in_channels == 1
    assert bb.normalize.mean.shape == (1, 1, 1, 1)
    assert bb.normalize.mean.item() == pytest.approx(sum((0.485, 0.456, 0.406)) / 3)
    assert bb(torch.rand(1, 1, 32, 32))[0].shape == (1, 64, 8, 8)


def test_weights_from_local_file(tmp_path):
    torch.manual_seed(0)
    full = timm.create_model("resnet18")
    path = tmp_path / "resnet18.safetensors"
    save_file(full.state_dict(), str(path))
    bb = create_backbone("resnet18", pretrained=path)
    torch.testing.assert_close(bb.body.layer3[0].conv1.weight, full.layer3[0].conv1.weight)
    torch.testing.assert_close(bb.body.bn1.running_var, full.bn1.running_var)
    # Adapted to one channel by timm: the RGB filters summed.
    gray = create_backbone("resnet18", pretrained=path, in_chans=1)
    torch.testing.assert_close(gray.body.conv1.weight, full.conv1.weight.sum(1, keepdim=True))
    # A headless file loads too.
    headless = tmp_path / "headless.safetensors"
    save_file({k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}, str(headless))
    torch.testing.assert_close(create_backbone("resnet18", pretrained=headless).body.layer1[0].conv2.weight,
                               full.layer1[0].conv2.weight)


def test_packaged_efficientnet_lite0_weights():
    from pixelwise.models.pretrained import efficientnet_lite0_imagenet
    bb = create_backbone("efficientnet_lite0", pretrained=True).eval()
    ref = efficientnet_lite0_imagenet(features_only=True).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = bb(x), ref(x)
    assert list(bb.feature_info.reduction()) == [4, 8, 16, 32]
    for a, b in zip(ours, theirs[1:]):
        torch.testing.assert_close(a, b)


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(PixelwiseError, match="download"):
        create_backbone("resnet18", pretrained=True)
    with pytest.raises(PixelwiseError, match="missing.safetensors"):
        create_backbone("resnet18", pretrained=tmp_path / "missing.safetensors")
    with pytest.raises(PixelwiseError, match="no_such_net"):
        create_backbone("no_such_net")
