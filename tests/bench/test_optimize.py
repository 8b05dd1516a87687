"""Batch-norm folding keeps outputs; every inference switch computes the same function."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from pixelwise.bench.optimize import (check_optimizations, conv_bn_pairs, fold_batchnorm, inference_step,
                                      train_step)
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from tests.bench.models import TinySegmenter, randomize_batchnorm


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    return bool((a - b).abs().max() <= rtol * b.abs().max())


def test_fold_batchnorm_resnet_keeps_outputs():
    model = randomize_batchnorm(create_model("resnet_small"))
    x = torch.rand(3, 1, 28, 28)
    folded, pairs = fold_batchnorm(model, x[:1])
    # stem 1 + 6 blocks x 2 convs + 2 downsampling shortcuts = 15 conv-BN pairs
    assert len(pairs) == 15
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with torch.no_grad():
        assert _close(folded(x), model(x))


def test_fold_batchnorm_by_hand_formula():
    conv, bn = nn.Conv2d(2, 3, 1, bias=True), nn.BatchNorm2d(3)
    model = randomize_batchnorm(nn.Sequential(conv, bn), seed=3)
    folded, _ = fold_batchnorm(model, torch.rand(1, 2, 4, 4))
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    expected_w = conv.weight * scale.view(-1, 1, 1, 1)
    expected_b = (conv.bias - bn.running_mean) * scale + bn.bias
    assert torch.allclose(folded[0].weight, expected_w, atol=1e-6)
    assert torch.allclose(folded[0].bias, expected_b, atol=1e-6)


class SharedConvOutput(nn.Module):
    """conv -> bn, but the conv output is also added afterwards: folding it would change the result."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        z = self.bn(y) + y
        return self.bn2(self.conv2(z))


def test_fold_batchnorm_leaves_shared_outputs_alone():
    model = randomize_batchnorm(SharedConvOutput())
    x = torch.rand(2, 3, 8, 8)
    assert conv_bn_pairs(model, x) == [("conv", "bn"), ("conv2", "bn2")]
    folded, pairs = fold_batchnorm(model, x)
    assert pairs == [("conv2", "bn2")]
    with torch.no_grad():
        assert _close(folded(x), model(x))


@pytest.mark.parametrize("switches", [["inference_mode"], ["channels_last"], ["fold_bn"],
                                      ["inference_mode", "channels_last", "fold_bn"],
                                      ["inference_mode", "channels_last", "fold_bn", "compile"]])
def test_inference_switches_keep_segmenter_outputs(switches):
    model = randomize_batchnorm(TinySegmenter())
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        reference = model(x)
    step, notes = inference_step(model, x, switches)
    out = step()
    assert out.shape == (2, 4, 24, 40)
    assert _close(out.contiguous(), reference)
    assert notes.get("folded_bn", 2) == 2


def test_bf16_autocast_on_cpu_runs_in_bf16():
    model = randomize_batchnorm(TinySegmenter())
    step, _ = inference_step(model, torch.rand(1, 3, 16, 16), precision="bf16")
    assert step().dtype == torch.bfloat16


def test_train_step_lowers_the_loss_and_changes_weights():
    model = TinySegmenter()
    x = torch.rand(2, 3, 16, 16)
    before = model.head.weight.detach().clone()
    step, _ = train_step(model, x, ["channels_last"], lr=0.05)
    losses = [float(step()) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert not torch.equal(model.head.weight.detach(), before)


def test_bad_switches_are_user_errors():
    with pytest.raises(PixelwiseError, match="unknown"):
        check_optimizations(["turbo"])
    with pytest.raises(PixelwiseError, match="eval only"):
        check_optimizations(["fold_bn"], mode="train")


def test_fold_timm_batchnorm_act_keeps_its_activation():
    from timm.layers import BatchNormAct2d
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), BatchNormAct2d(6),
                                              nn.Conv2d(6, 4, 1), BatchNormAct2d(4, apply_act=False)))
    x = torch.rand(2, 3, 8, 8)
    folded, pairs = fold_batchnorm(model, x)
    assert pairs == [("0", "1"), ("2", "3")]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(folded[1][1], nn.ReLU)
    with torch.no_grad():
        assert _close(folded(x), model(x))


def test_freezing_implies_compile_and_is_eval_only():
    assert check_optimizations(["freezing"]) == ["freezing", "compile"]
    assert check_optimizations(["max_autotune", "compile"]) == ["max_autotune", "compile"]
    with pytest.raises(PixelwiseError, match="freezing and cast_weights apply to --mode eval only"):
        check_optimizations(["freezing", "cast_weights"], mode="train")
    with pytest.raises(PixelwiseError, match="cast_weights needs --precision bf16"):
        inference_step(TinySegmenter(), torch.rand(1, 3, 8, 8), ["cast_weights"], "fp32")


def test_bf16_weights_frozen_and_compiled_stay_within_bf16_rounding():
    # bf16 keeps 8 bits of mantissa: a relative error of a few 2^-8 after 3 layers, labels nearly all equal
    model = randomize_batchnorm(TinySegmenter())
    x = torch.rand(2, 3, 24, 40)
    with torch.no_grad():
        reference = model(x)
    eager, _ = inference_step(model, x, ["inference_mode", "fold_bn", "cast_weights"], "bf16")
    frozen, notes = inference_step(model, x, ["inference_mode", "channels_last", "fold_bn", "cast_weights",
                                              "freezing"], "bf16")
    assert notes["compile_seconds"] > 0 and notes["folded_bn"] == 2
    for out in (eager(), frozen()):
        assert out.dtype == torch.bfloat16 and out.shape == reference.shape
        assert _close(out.float().contiguous(), reference, rtol=0.05)
        assert (out.float().argmax(1) == reference.argmax(1)).float().mean() > 0.97
