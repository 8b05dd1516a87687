"""FLOP counts against hand-computed values; timing, memory and matmul-peak measurements."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

from pixelwise.errors import PixelwiseError
from pixelwise.bench.measure import count_flops, count_parameters, matmul_peak, peak_memory, time_callable


def test_single_conv_flops_match_hand_count():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    # every output value (2 x 8 x 16 x 16) is a sum of 3 x 3 x 3 products: one MAC each
    macs = 2 * 8 * 16 * 16 * (3 * 3 * 3)
    result = count_flops(conv, torch.rand(2, 3, 16, 16))
    assert result["macs"] == macs
    assert result["flops"] == 2 * macs
    assert count_parameters(conv) == 8 * 3 * 3 * 3 + 8


def test_linear_flops_forward_and_training():
    fc = nn.Linear(100, 10)
    x = torch.rand(4, 100)
    assert count_flops(fc, x)["flops"] == 2 * 4 * 100 * 10
    # backward of the only layer: the weight gradient (same cost as forward); the input needs no gradient
    assert count_flops(fc, x, train=True)["flops"] == 2 * (2 * 4 * 100 * 10)


def test_tiny_cnn_flops_and_breakdown():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5))
    conv_macs = 8 * 8 * 4 * 9            # 10x10 input, 3x3 valid conv -> 8x8, 4 channels
    fc_macs = 64 * 5                     # 4 x 4 x 4 pooled features -> 5 classes
    result = count_flops(model, torch.rand(1, 1, 10, 10))
    assert result["macs"] == conv_macs + fc_macs
    assert result["by_module"] == {"0": 2 * conv_macs, "4": 2 * fc_macs}


def test_flops_scale_with_batch_and_model_on_meta_keeps_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = model[0].weight.clone()
    one, four = count_flops(model, torch.rand(1, 3, 8, 8)), count_flops(model, torch.rand(4, 3, 8, 8))
    assert four["flops"] == 4 * one["flops"]
    assert torch.equal(model[0].weight, before) and model[0].weight.device.type == "cpu"


def test_time_callable_statistics():
    calls = []
    timing = time_callable(lambda: calls.append(1), warmup=2, runs=7)
    assert len(calls) == 9 and timing["runs"] == 7 and len(timing["times_ms"]) == 7
    assert timing["min_ms"] <= timing["median_ms"] <= timing["p90_ms"] <= max(timing["times_ms"])
    assert timing["p90_ms"] == sorted(timing["times_ms"])[6]  # nearest rank: ceil(0.9 * 7) = 7th


def test_matmul_peak_is_plausible():
    peak = matmul_peak("cpu", n=256, repeats=2)
    assert peak["n"] == 256 and peak["dtype"] == "float32" and peak["measurable"]
    assert 0.1 < peak["gflops"] < 1e5


@pytest.mark.parametrize("precision, dtype", [("fp32", "float32"), ("bf16", "bfloat16"), ("int8", "int8")])
def test_matmul_peak_per_precision_is_the_best_over_sizes(precision, dtype):
    peak = matmul_peak("cpu", precision, repeats=2, sizes=(64, 128, 256))
    if not peak["measurable"]:  # allowed only with the reason, never as a silent zero
        assert precision == "int8" and peak["gflops"] is None and peak["error"]
        return
    assert peak["dtype"] == dtype and sorted(peak["by_size"]) == [64, 128, 256]
    assert peak["gflops"] == max(peak["by_size"].values()) == peak["by_size"][peak["n"]]
    assert all(0.01 < g < 1e5 for g in peak["by_size"].values())


def test_int8_peak_times_the_exact_integer_product():
    # the int8 kernel the peak times must compute the product (not a saturating or float one)
    a = torch.randint(-128, 128, (64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.int8)
    b = torch.randint(-128, 128, (64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.int8)
    exact = a.long() @ b.long()
    assert torch.equal(torch._int_mm(a, b).long(), exact)
    peak = matmul_peak("cpu", torch.int8, n=64, repeats=1)
    assert peak["measurable"] and set(peak["by_method"]) == {"torch._int_mm", "onnxruntime MatMulInteger"}
    assert peak["gflops"] == max(m[64] for m in peak["by_method"].values())


def test_fp32_peak_is_the_better_of_torch_and_onnxruntime():
    # torch.mm's BLAS can under-measure the machine (an AMD EPYC: 180 GFLOP/s, onnxruntime's SwiftNet 318)
    peak = matmul_peak("cpu", "fp32", repeats=1, sizes=(64, 128))
    assert set(peak["by_method"]) == {"torch.mm", "onnxruntime MatMul"}
    for n in (64, 128):
        assert peak["by_size"][n] == max(m[n] for m in peak["by_method"].values())
    assert peak["method"] == "best of torch.mm (float32) and onnxruntime MatMul (float32)"
    assert "by_method" not in matmul_peak("cpu", "bf16", repeats=1, sizes=(64,))   # torch.mm alone


def test_matmul_peak_names_a_bad_dtype():
    with pytest.raises(PixelwiseError, match="int4"):
        matmul_peak("cpu", "int4", n=64, repeats=1)


def _rss_bytes() -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024


def test_cpu_peak_memory_sees_a_large_allocation():
    before = _rss_bytes()
    with peak_memory("cpu") as idle:
        pass
    before_big = _rss_bytes()
    with peak_memory("cpu") as memory:
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so that its pages are resident
        del big
    if memory["peak_bytes"] is None:
        pytest.fail("peak memory unavailable: /proc/self/clear_refs is needed on Linux")
    assert memory["peak_bytes"] - before_big >= 60 * 2**20
    assert idle["peak_bytes"] - before < 16 * 2**20
    assert "resident" in memory["method"]
