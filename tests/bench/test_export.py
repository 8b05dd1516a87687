"""ONNX parity of small segmenters and classifiers; int8 quantization runs and stays close."""
from __future__ import annotations

import onnx
import torch
from torch.utils.data import TensorDataset

from pixelwise.bench.export import export_onnx, onnx_parity, onnx_session, run_onnx, time_onnx
from pixelwise.bench.quantize import calibration_images, compare_accuracy, quantize_onnx
from pixelwise.models import create_model
from pixelwise.tasks import get_task
from tests.bench.models import TinySegmenter, randomize_batchnorm


def test_segmenter_onnx_parity_with_dynamic_batch(tmp_path):
    model = randomize_batchnorm(TinySegmenter())
    x = torch.rand(3, 3, 32, 48)
    info = export_onnx(model, x[:1], tmp_path / "seg.onnx")
    assert info["outputs"] == ["logits"]
    session = onnx_session(tmp_path / "seg.onnx", threads=1)
    parity = onnx_parity(model, session, x)  # batch 3, exported with an example of batch 1
    out = parity["outputs"]["logits"]
    assert parity["ok"] and out["max_rel_diff"] < 1e-4 and out["argmax_agreement"] == 1.0
    assert run_onnx(session, x)[0].shape == (3, 4, 32, 48)
    timing = time_onnx(session, x[:1], warmup=1, runs=3)
    assert timing["runs"] == 3 and timing["median_ms"] > 0


def test_segmenter_with_outlier_head_exports_both_maps(tmp_path):
    model = randomize_batchnorm(TinySegmenter(outlier_head=True))
    x = torch.rand(2, 3, 16, 16)
    info = export_onnx(model, x[:1], tmp_path / "ood.onnx")
    assert info["outputs"] == ["logits", "outlier_logits"]
    session = onnx_session(tmp_path / "ood.onnx", threads=1)
    assert [o.name for o in session.get_outputs()] == ["logits", "outlier_logits"]
    parity = onnx_parity(model, session, x)
    assert parity["ok"] and set(parity["outputs"]) == {"logits", "outlier_logits"}


def test_classifier_int8_is_quantized_and_close(tmp_path):
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model("cnn", width=8, hidden=32))
    images = torch.rand(24, 1, 28, 28)
    export_onnx(model, images[:1], tmp_path / "cnn.onnx")
    dataset = TensorDataset(images, torch.randint(0, 10, (24,)))
    calibration = calibration_images(dataset, n=16)
    assert calibration.shape == (16, 1, 28, 28)
    info = quantize_onnx(tmp_path / "cnn.onnx", tmp_path / "cnn.int8.onnx", calibration)
    ops = {n.op_type for n in onnx.load(info["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32 = onnx_session(tmp_path / "cnn.onnx", threads=1)
    int8 = onnx_session(tmp_path / "cnn.int8.onnx", threads=1)
    a, b = torch.from_numpy(run_onnx(fp32, images)[0]), torch.from_numpy(run_onnx(int8, images)[0])
    assert (a - b).abs().max() < 0.1 * a.abs().max()
    result = compare_accuracy(model, {"onnx_fp32": fp32, "int8": int8}, dataset, lambda: get_task("classification").accuracy_meter(10),
                              batch_size=8, progress=False)
    assert result["metric"] == "top1" and result["images"] == 24
    assert abs(result["onnx_fp32_drop_points"]) < 1e-9  # the same function, exported
    assert result["int8_drop_points"] == 100 * (result["pytorch_fp32"] - result["int8"])


def test_segmenter_miou_comparison_ignores_255(tmp_path):
    model = randomize_batchnorm(TinySegmenter())
    images = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        masks = model(images).argmax(1)
    masks[:, :4] = 255
    export_onnx(model, images[:1], tmp_path / "seg.onnx")
    result = compare_accuracy(model, {"onnx": onnx_session(tmp_path / "seg.onnx", threads=1)},
                              TensorDataset(images, masks), lambda: get_task("segmentation").accuracy_meter(4),
                              progress=False)
    assert result["metric"] == "miou" and result["pytorch_fp32"] == 1.0 and result["onnx"] == 1.0
