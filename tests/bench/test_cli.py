"""`pixelwise bench` writes every field; `pixelwise export` writes a checked ONNX file."""
from __future__ import annotations

import json

import pytest

from pixelwise.bench.benchmark import RESULT_FIELDS, benchmark
from pixelwise.cli.bench import parse_size
from pixelwise.bench.measure import count_flops
from pixelwise.cli import main
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from tests.bench.models import TinySegmenter

PEAK = {"gflops": 100.0, "n": 0, "dtype": "float32", "repeats": 0}  # skip measuring it where not tested


def test_bench_cli_json_has_every_field(tmp_path):
    path = tmp_path / "bench.json"
    code = main(["bench", "cnn", "--batch", "2", "--runs", "3", "--warmup", "1", "--threads", "1",
                 "--optimize", "inference_mode", "fold_bn", "--json", str(path)])
    assert code == 0
    r = json.loads(path.read_text())
    assert set(RESULT_FIELDS) <= set(r)
    import torch
    assert r["input_shape"] == [2, 1, 28, 28] and r["threads"] == 1 and r["backend"] == "pytorch"
    assert r["flops"] == count_flops(create_model("cnn"), torch.rand(2, 1, 28, 28))["flops"] == 2 * r["macs"]
    assert r["latency_ms"]["runs"] == 3 and r["latency_ms"]["median_ms"] <= r["latency_ms"]["p90_ms"]
    assert r["achieved_gflops"] == pytest.approx(r["flops"] / r["latency_ms"]["median_ms"] / 1e6)
    assert r["fraction_of_peak"] == pytest.approx(r["achieved_gflops"] / r["matmul_peak_gflops"])
    assert r["throughput_images_per_s"] == pytest.approx(2000 / r["latency_ms"]["median_ms"])
    assert r["peak_memory_bytes"] > 0 and r["notes"]["folded_bn"] == 4


def test_benchmark_train_and_int8_modes():
    # MACs per image at 16x16: conv1 16*16*8*27, conv2 (stride 2) 8*8*16*72, 1x1 head 8*8*4*16
    convs = {"conv1": 16 * 16 * 8 * 27, "conv2": 8 * 8 * 16 * 72, "head": 8 * 8 * 4 * 16}
    forward = 2 * 2 * sum(convs.values())  # FLOPs of a batch of 2
    # training: forward, weight gradients (the same cost), input gradients of all but the first conv
    backward_input = 2 * 2 * (convs["conv2"] + convs["head"])
    train = benchmark(TinySegmenter(), (2, 3, 16, 16), mode="train", runs=2, warmup=1, peak=PEAK)
    assert train["mode"] == "train" and train["flops"] == 2 * forward + backward_input
    int8 = benchmark(TinySegmenter(), (2, 3, 16, 16), precision="int8", runs=2, warmup=1, peak=PEAK)
    assert int8["backend"] == "onnxruntime" and int8["flops"] == forward
    assert int8["matmul_peak_gflops"] == 100.0 and int8["latency_ms"]["runs"] == 2


def test_export_cli_writes_onnx_and_parity(tmp_path):
    path = tmp_path / "cnn.onnx"
    assert main(["export", "cnn", "--onnx", str(path), "--runs", "2", "--threads", "1",
                 "--json", str(tmp_path / "export.json")]) == 0
    r = json.loads((tmp_path / "export.json").read_text())
    assert path.is_file() and r["parity"]["ok"] and r["export"]["exporter"] in ("dynamo", "torchscript")


def test_bad_input_is_a_one_line_error(capsys):
    assert main(["bench", "cnn", "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err
    assert main(["bench", "cnn", "--mode", "train", "--optimize", "fold_bn"]) == 2
    assert parse_size("1024x2048") == (1024, 2048) and parse_size("64") == (64, 64)
    with pytest.raises(PixelwiseError):
        parse_size("0x3")
