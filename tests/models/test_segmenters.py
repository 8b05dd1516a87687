"""Every registered segmenter: shapes at input resolution, the outlier-head tuple, backward, and
gradient checkpointing that leaves the gradients unchanged; SwiftNet-RN18's size against the paper."""
from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

import pixelwise.models.layers as layers
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, list_models
from pixelwise.models.checkpointing import set_grad_checkpointing

SEGMENTERS = list_models(task="segmentation")
TINY = dict(num_classes=3, num_features=16)


def test_registry_has_the_issue_models():
    assert {"swiftnet", "swiftnet_rn18", "swiftnet_pyramid_rn18", "ldn121"} <= set(SEGMENTERS)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_shapes_outlier_head_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name, outlier_head=True, **TINY)
    assert isinstance(model.backbone, torch.nn.Module) and isinstance(model.head, torch.nn.Module)
    x = torch.rand(2, 3, 66, 98)  # odd feature sizes at every stride
    logits, outlier = model(x)
    assert logits.shape == (2, 3, 66, 98) and outlier.shape == (2, 1, 66, 98)
    target = torch.randint(0, 3, (2, 66, 98))
    target[:, :5] = 255
    loss = F.cross_entropy(logits, target, ignore_index=255) + outlier.sigmoid().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    with torch.no_grad():
        plain = create_model(name, **TINY).eval()(torch.rand(1, 1, 64, 64))  # grayscale input
    assert plain.shape == (1, 3, 64, 64)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_checkpointing_keeps_gradients(name, monkeypatch):
    torch.manual_seed(0)
    model = create_model(name, **TINY)
    ckpt = copy.deepcopy(model)
    set_grad_checkpointing(ckpt, True)
    calls = []

    def counting(fn, *args, **kw):
        calls.append(fn)
        return torch.utils.checkpoint.checkpoint(fn, *args, **kw)

    monkeypatch.setattr(layers, "checkpoint", counting)
    x = torch.rand(2, 3, 64, 64)
    target = torch.randint(0, 3, (2, 64, 64))
    for m in (model, ckpt):
        F.cross_entropy(m(x), target).backward()
    assert calls, "no decoder block was checkpointed"
    timm_flags = [m.grad_checkpointing for m in ckpt.backbone.modules()
                  if type(m).__module__.startswith("timm.") and hasattr(m, "grad_checkpointing")]
    assert timm_flags and all(timm_flags)
    for (n, p), q in zip(model.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_checkpointing_kwarg_and_switch_off():
    model = create_model("swiftnet_rn18", grad_checkpointing=True, **TINY)
    assert model.backbone.body.grad_checkpointing and model.head.spp.grad_checkpointing
    set_grad_checkpointing(model, False)
    assert not model.backbone.body.grad_checkpointing and not model.head.upsample[0].grad_checkpointing


def test_generic_swiftnet_takes_any_backbone():
    model = create_model("swiftnet", backbone="efficientnet_lite0", **TINY).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def _reach(model: torch.nn.Module, size: int = 128) -> int:
    """The farthest input row or column that the logits of the top-left pixel depend on."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    model.eval()(x)[0, :, 0, 0].sum().backward()
    used = x.grad.abs().sum((0, 1)) > 0  # exactly zero outside the receptive field in eval mode
    return int(used.nonzero().max())


def test_pyramid_levels_enlarge_the_receptive_field():
    torch.manual_seed(0)
    one = _reach(create_model("swiftnet_pyramid_rn18", pyramid_levels=1, **TINY))
    three = _reach(create_model("swiftnet_pyramid_rn18", pyramid_levels=3, **TINY))
    assert three > 2 * one


def test_swiftnet_rn18_matches_the_paper():
    """Orsic et al. 2019, Table 1: 11.8M parameters, 104 GFLOPs (multiply-adds) at 1024x2048, 19 classes."""
    model = create_model("swiftnet_rn18", num_classes=19)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 11.8e6 - 1) < 0.02
    model = model.to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, 1024, 2048, device="meta"))
    macs = counter.get_total_flops() / 2  # the counter counts a multiply-add as 2 FLOPs
    assert abs(macs / 104e9 - 1) < 0.02


def test_ldn_backbone_weights_from_local_file(tmp_path):
    torch.manual_seed(0)
    dense = timm.create_model("densenet121")
    dense.features.transition3.norm.running_mean.normal_()   # statistics a fresh model would not have
    path = tmp_path / "densenet121.safetensors"
    save_file(dense.state_dict(), str(path))
    model = create_model("ldn121", pretrained=path, **TINY)
    body = model.backbone.body.features
    torch.testing.assert_close(body.denseblock3.denselayer20.conv2.weight,
                               dense.features.denseblock3.denselayer20.conv2.weight)
    # BN statistics come from the file too (norm5 is dropped, as the LDN authors' ImageNet loader does).
    torch.testing.assert_close(body.transition3.norm.running_mean, dense.features.transition3.norm.running_mean)
    assert isinstance(body.norm5, torch.nn.Identity)


def test_swiftnet_output_stride_2_uses_the_stride_2_features():
    torch.manual_seed(0)
    model = create_model("swiftnet", output_stride=2, widths=(16, 16, 8, 4), **TINY)
    assert tuple(model.backbone.feature_info.reduction()) == (2, 4, 8, 16, 32)
    assert model.head.upsample[-1].blend.conv.out_channels == 4
    x = torch.rand(1, 3, 64, 64)
    assert model(x).shape == (1, 3, 64, 64)
    # The final features (what the heads classify) sit at stride 2, not 4.
    assert model.forward_features(x).shape[-2:] == (32, 32)
    with pytest.raises(PixelwiseError, match="output_stride must be 4 or 2"):
        create_model("swiftnet", output_stride=8, **TINY)
    with pytest.raises(ValueError, match="one width per skip level"):
        create_model("swiftnet", output_stride=2, widths=(16, 16, 16), **TINY)
    # Levels picked in backbone_kwargs that do not fit the output stride: named, not a TypeError.
    with pytest.raises(PixelwiseError, match=r"needs backbone features at strides \[2, 4, 8, 16, 32\]"):
        create_model("swiftnet", output_stride=2, backbone_kwargs={"out_indices": (1, 2, 3, 4)}, **TINY)


def test_swiftnet_narrow_backbone_loads_its_own_weights(tmp_path):
    """backbone_kwargs shape the backbone and the model a local weight file is read into alike."""
    torch.manual_seed(0)
    narrow = dict(channels=(16, 32, 64, 128), stem_width=16)
    net = timm.create_model("resnet18", num_classes=10, **narrow)
    path = tmp_path / "resnet18_narrow.safetensors"
    save_file(net.state_dict(), str(path))
    model = create_model("swiftnet", backbone_kwargs=narrow, pretrained=path, **TINY)
    assert model.backbone.feature_info.channels() == [16, 32, 64, 128]
    torch.testing.assert_close(model.backbone.body.layer3[1].conv2.weight, net.layer3[1].conv2.weight)
    assert sum(p.numel() for p in model.backbone.parameters()) < 0.3 * sum(
        p.numel() for p in create_model("swiftnet", **TINY).backbone.parameters())
