"""int8 parity bounds: PT2 export quantization for x86 (compiled) and onnxruntime QDQ against fp32 on a
tiny segmenter calibrated on its own inputs."""
from __future__ import annotations

import pytest
import torch

from pixelwise.bench.quantize_pt2e import FixedBatch, quantize_x86
from tests.bench.models import TinySegmenter, randomize_batchnorm

pytest.importorskip("torchao", reason="int8 pt2e needs torchao (a dependency in pyproject.toml)")


def _bounds(out: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max |difference| / max |reference|, share of pixels whose arg-max label agrees)."""
    rel = float((out - reference).abs().max() / reference.abs().max())
    return rel, float((out.argmax(1) == reference.argmax(1)).float().mean())


def test_pt2e_x86_int8_parity_and_any_batch():
    # 8-bit activations on the calibrated range: one step is 1/255 of it, a few steps after 3 layers
    torch.manual_seed(0)
    model = randomize_batchnorm(TinySegmenter())
    images = torch.rand(6, 3, 24, 40)
    int8, notes = quantize_x86(model, images[:2], images)
    with torch.no_grad():
        reference, out = model(images), int8(images)  # 6 images: 3 chunks of the exported batch 2
    rel, agree = _bounds(out, reference)
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert rel < 0.05 and agree > 0.95, (rel, agree)
    assert notes["calibration_images"] == 6 and notes["compile_seconds"] > 0


def test_onnxruntime_int8_parity(tmp_path):
    from pixelwise.bench.export import export_onnx, onnx_session, run_onnx
    from pixelwise.bench.quantize import quantize_onnx
    torch.manual_seed(0)
    model = randomize_batchnorm(TinySegmenter())
    images = torch.rand(6, 3, 24, 40)
    export_onnx(model, images[:1], tmp_path / "fp32.onnx")
    quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", images)
    out = torch.from_numpy(run_onnx(onnx_session(tmp_path / "int8.onnx", 1), images)[0])
    with torch.no_grad():
        rel, agree = _bounds(out, model(images))
    assert rel < 0.05 and agree > 0.95, (rel, agree)


def test_fixed_batch_pads_and_cuts():
    seen = []
    double = FixedBatch(lambda x: (seen.append(len(x)), 2 * x)[1], 4)
    x = torch.arange(10.0).view(10, 1)
    assert torch.equal(double(x), 2 * x) and seen == [4, 4, 4]


def test_bench_int8_pt2e_backend_and_int8_peak():
    from pixelwise.bench.benchmark import benchmark
    from pixelwise.bench.measure import count_flops
    peak = {"gflops": 50.0, "n": 0, "dtype": "int8", "repeats": 0, "measurable": True}
    r = benchmark(TinySegmenter(), (2, 3, 16, 16), precision="int8", int8_backend="pt2e", runs=2, warmup=1, peak=peak)
    assert r["backend"].startswith("pytorch pt2e") and r["notes"]["compile_seconds"] > 0
    assert r["flops"] == count_flops(TinySegmenter(), torch.rand(2, 3, 16, 16))["flops"]
    assert r["fraction_of_peak"] == pytest.approx(r["achieved_gflops"] / 50.0)
