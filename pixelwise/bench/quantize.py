"""8-bit static quantization with onnxruntime, calibrated on a few images, and what it costs in accuracy.

Route: export to ONNX (pixelwise.bench.export), `quant_pre_process` (shape inference, graph
optimization), then `quantize_static` in QDQ format with per-channel int8 weights and uint8
activations (the u8s8 combination onnxruntime's x86 kernels run fastest), activation ranges by MinMax
calibration. torch.ao.quantization is not used: PyTorch deprecates it in favour of torchao/pt2e.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pixelwise.bench.export import INPUT_NAME, run_onnx
from pixelwise.errors import PixelwiseError
from pixelwise.models.outputs import logits_of


def calibration_images(dataset: Dataset, n: int = 32, seed: int = 0) -> torch.Tensor:
    """`n` images (n, C, H, W) float in [0, 1] drawn without replacement from `dataset` (image, target)."""
    if len(dataset) == 0:
        raise PixelwiseError("calibration: the dataset is empty")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([torch.as_tensor(dataset[int(i)][0]).float() for i in order])


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, calibration: torch.Tensor,
                  per_channel: bool = True, batch_size: int = 8) -> dict:
    """Write an int8 (QDQ) copy of the ONNX model at `fp32_path`, calibrated on `calibration`.

    calibration: (N, C, H, W) float in [0, 1], the images whose activation ranges fix the scales.
    Returns {"path", "calibration_images", "per_channel", "format", "weights", "activations"}.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise PixelwiseError(f"{fp32_path}: no such ONNX file to quantize")
    if calibration.ndim != 4 or len(calibration) == 0:
        raise PixelwiseError(f"calibration images must be (N, C, H, W) with N >= 1, got {tuple(calibration.shape)}")
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime warns for every 1-D weight it keeps per-tensor
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(int8_path), _Reader(calibration, batch_size),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
    return {"path": str(int8_path), "calibration_images": len(calibration), "per_channel": per_channel,
            "format": "QDQ", "weights": "int8", "activations": "uint8", "calibration_method": "MinMax"}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: batches of calibration images, then None."""

    def __init__(self, images: torch.Tensor, batch_size: int):
        self.batches = [b.contiguous().float().numpy() for b in images.split(batch_size)]
        self.i = 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {INPUT_NAME: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def compare_accuracy(model: nn.Module, sessions: dict, dataset: Dataset, accuracy_meter: Callable[[], tuple],
                     batch_size: int = 16, progress: bool = True) -> dict:
    """The headline metric (a task's: top-1, mIoU) of PyTorch fp32 and of each onnxruntime session or
    PyTorch callable (images (N, C, H, W) -> logits, a compiled or quantized model) in `sessions`
    ({"int8": session, ...}) on `dataset` (image, target).

    accuracy_meter() -> (a fresh meter with .update(logits, targets) and .summary(), the metric's key),
    e.g. `lambda: task.accuracy_meter(num_classes)`.
    Returns {"metric", "pytorch_fp32": value, name: value, ..., f"{name}_drop_points": 100 x (fp32 - it)}.
    """
    first, key = accuracy_meter()
    meters = {"pytorch_fp32": first, **{name: accuracy_meter()[0] for name in sessions}}
    model = model.eval().cpu()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for images, targets in tqdm(loader, desc="int8 accuracy", disable=not progress, leave=False):
        images = torch.as_tensor(images).float()
        targets = torch.as_tensor(targets)
        with torch.inference_mode():
            logits = model(images)
        meters["pytorch_fp32"].update(logits_of(logits), targets)
        for name, session in sessions.items():
            if callable(session):
                with torch.inference_mode():
                    out = logits_of(session(images)).float()
            else:
                out = torch.from_numpy(np.asarray(run_onnx(session, images)[0]))
            meters[name].update(out, targets)
    result = {"metric": key, "images": len(dataset)}
    result.update({name: float(m.summary()[key]) for name, m in meters.items()})
    for name in sessions:
        result[f"{name}_drop_points"] = 100 * (result["pytorch_fp32"] - result[name])
    return result
