"""Fine-tuning model: new head, grayscale input, local backbone weights, and backbone freezing in the engine."""
from __future__ import annotations

import pytest
import torch
import torchvision

from pixelwise.config import TrainConfig
from pixelwise.engine.train import param_groups
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.models.pretrained import efficientnet_lite0_timm


@pytest.fixture(scope="module")
def imagenet_lite0():
    return efficientnet_lite0_timm(num_classes=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_with_gray_and_rgb_input(channels, imagenet_lite0):
    model = create_model("transfer", num_classes=7, in_chans=channels, input_size=64).eval()
    assert model(torch.rand(2, channels, 28, 28)).shape == (2, 7)
    assert model.head[-1].out_features == 7
    torch.testing.assert_close(model.backbone.blocks[2][1].conv_dw.weight, imagenet_lite0.blocks[2][1].conv_dw.weight)


@torch.inference_mode()
def test_adapted_first_conv_equals_channel_replication(imagenet_lite0):
    replicate = create_model("transfer", num_classes=5, in_chans=1, input_size=48).eval()
    adapted = create_model("transfer", num_classes=5, in_chans=1, input_size=48, adapt_first_conv=True).eval()
    stem = adapted.backbone.conv_stem.weight
    assert stem.shape[1] == 1
    torch.testing.assert_close(stem, imagenet_lite0.conv_stem.weight.sum(1, keepdim=True))
    adapted.head.load_state_dict(replicate.head.state_dict())
    x = torch.rand(3, 1, 28, 28)
    # mean and std are equal over RGB, so the summed stem on gray equals the RGB stem on replicated gray
    torch.testing.assert_close(adapted(x), replicate(x), rtol=1e-4, atol=1e-4)


def test_scratch_differs_from_pretrained(imagenet_lite0):
    scratch = create_model("transfer", pretrained=False, input_size=32)
    assert not torch.equal(scratch.backbone.conv_stem.weight, imagenet_lite0.conv_stem.weight)


def test_local_torchvision_checkpoint_as_backbone(tmp_path):
    from safetensors.torch import save_file
    source = torchvision.models.resnet18()
    save_file(source.state_dict(), str(tmp_path / "resnet18.safetensors"))
    model = create_model("transfer", backbone="resnet18", pretrained=str(tmp_path / "resnet18.safetensors"),
                         num_classes=3, input_size=32, in_chans=1, adapt_first_conv=True)
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_bad_backbones_are_clear_errors():
    with pytest.raises(PixelwiseError, match="pretrained=/path/to/resnet18"):
        create_model("transfer", backbone="resnet18", pretrained=True)
    with pytest.raises(PixelwiseError, match="unknown backbone 'resnet7'"):
        create_model("transfer", backbone="resnet7")


def test_param_groups_flag_the_backbone():
    model = create_model("transfer", pretrained=False, input_size=32)
    cfg = TrainConfig(optim={"lr": 0.1, "backbone_lr_mult": 0.1}).optim
    groups = param_groups(model, cfg)
    backbone = {id(p) for p in model.backbone.parameters()}
    for g in groups:
        assert g["backbone"] == (id(g["params"][0]) in backbone)
        assert g["lr"] == pytest.approx(0.01 if g["backbone"] else 0.1)


def test_backbone_frozen_for_first_steps_then_trained(tmp_path):
    from pixelwise.tasks import train
    from pixelwise.tasks import load_run
    cfg = TrainConfig(name="freeze", model="transfer", out_dir=str(tmp_path / "run"), threads=1,
                      model_kwargs={"input_size": 32, "drop_rate": 0.0},
                      data={"train_limit": 32, "test_limit": 16}, batch_size=8, max_steps=4,
                      optim={"name": "adamw", "lr": 1e-3, "freeze_backbone_steps": 2},
                      schedule={"name": "constant"}, eval_every_epoch=False, device="cpu")
    torch.manual_seed(cfg.seed)  # the engine's seed: the same head initialisation
    start = create_model("transfer", num_classes=10, input_size=32, drop_rate=0.0)

    def changed(model, part):
        before = dict(getattr(start, part).named_parameters())
        return [not torch.equal(p, before[k]) for k, p in getattr(model, part).named_parameters()]

    threads = torch.get_num_threads()  # the engine sets the process-wide count; 1 is fast on a busy machine
    try:
        train(cfg, stop_after=2, progress=False)
        model, _ = load_run(tmp_path / "run")
        assert not any(changed(model, "backbone"))
        assert any(changed(model, "head"))
        train(cfg, resume=True, progress=False)
        model, _ = load_run(tmp_path / "run")
        assert all(changed(model, "backbone"))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizers_use_the_fused_kernels_on_cpu(name):
    """One fused pass over all parameters; the per-tensor loop made Adam 3.7x slower on ResNet-18."""
    from pixelwise.engine.train import build_optimizer
    model = create_model("transfer", pretrained=False, input_size=32)
    opt = build_optimizer(model, TrainConfig(optim={"name": name, "lr": 0.01}).optim)
    assert opt.defaults["fused"] is True
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
