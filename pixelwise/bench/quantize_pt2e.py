"""8-bit static quantization inside PyTorch: PT2 export quantization for x86 (X86InductorQuantizer),
compiled by inductor into oneDNN int8 convolutions and matrix multiplies (VNNI; AMX where the CPU has it).

Route: `torch.export` -> `prepare_pt2e` with X86InductorQuantizer's default config (per-channel
symmetric int8 weights, per-tensor affine uint8 activations, as onnxruntime's u8s8) -> calibration
runs -> `convert_pt2e` (quantize/dequantize pairs around fp32 ops) -> `torch.compile` with freezing,
whose passes fuse each dequantize-op-quantize pattern into one int8 oneDNN kernel. Without the compile
the converted model runs its fp32 reference arithmetic and is slower than fp32. The pt2e API lives in
torchao (torch.ao.quantization's pt2e moved there); pixelwise.bench.quantize is the onnxruntime route.
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from pixelwise.bench.optimize import inductor_options
from pixelwise.errors import PixelwiseError


def quantize_x86(model: nn.Module, example: torch.Tensor, calibration: torch.Tensor) -> tuple[nn.Module, dict]:
    """An int8 copy of `model` (eval mode) for x86 CPUs, compiled; and notes on it.

    example: (N, C, H, W) float input of the shape to run. The graph is exported for exactly that shape
    (inductor's int8 weight prepacking takes no symbolic batch size); other batch sizes run in chunks of
    N, the last one padded. calibration: (M, C, H, W) float in [0, 1], the images whose activation
    ranges fix the scales. The first call (the compilation) happens here. Returns (the compiled module:
    float (any, C, H, W) in, the model's float outputs out, {"calibration_images", "quantize_seconds",
    "compile_seconds", "method"}).
    """
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as e:
        raise PixelwiseError(f"int8 through PT2 export quantization needs torchao ({e}): "
                             "pip install torchao==0.18.0, or use the onnxruntime int8 path") from None
    if calibration.ndim != 4 or len(calibration) == 0:
        raise PixelwiseError(f"calibration images must be (N, C, H, W) with N >= 1, got {tuple(calibration.shape)}")
    t0 = time.perf_counter()
    model = model.eval()
    with torch.no_grad():
        exported = torch.export.export(model, (example,)).module()
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        calibrate = FixedBatch(prepared, len(example))
        for batch in calibration.split(len(example)):
            calibrate(batch.to(example.device, example.dtype))
        converted = convert_pt2e(prepared)
    notes = {"calibration_images": len(calibration), "quantize_seconds": time.perf_counter() - t0,
             "method": "pt2e X86InductorQuantizer (int8 per-channel weights, uint8 activations) + inductor freezing"}
    # every call under inference_mode: a call under another grad mode than the compiling one recompiles
    compiled = FixedBatch(torch.compile(converted), len(example), inference_mode=True)
    t0 = time.perf_counter()
    # the first call compiles; freezing set for it only (torch.compile(options=) misses the int8
    # weight prepacking, which then fails on fake tensors)
    with inductor_options(["freezing"]):
        compiled(example)
    notes["compile_seconds"] = time.perf_counter() - t0
    return compiled, notes


class FixedBatch(nn.Module):
    """Runs `model`, which takes batches of exactly `batch` images, on any batch: chunks of `batch`,
    the last one padded with copies of its first image; outputs (tensors or tuples of tensors, batch
    first) concatenated and cut back. With `inference_mode` every call runs under torch.inference_mode."""

    def __init__(self, model: nn.Module, batch: int, inference_mode: bool = False):
        super().__init__()
        self.model, self.batch, self.inference_mode = model, batch, inference_mode

    def forward(self, x: torch.Tensor):
        if self.inference_mode and not torch.is_inference_mode_enabled():
            with torch.inference_mode():
                return self.forward(x)
        if len(x) == self.batch:
            return self.model(x)
        outs = []
        for chunk in x.split(self.batch):
            n = len(chunk)
            if n < self.batch:
                chunk = torch.cat([chunk, chunk[:1].expand(self.batch - n, *chunk.shape[1:])])
            out = self.model(chunk)
            outs.append(tuple(o[:n] for o in out) if isinstance(out, tuple) else out[:n])
        if isinstance(outs[0], tuple):
            return type(outs[0])(*(torch.cat(parts) for parts in zip(*outs))) if hasattr(outs[0], "_fields") \
                else tuple(torch.cat(parts) for parts in zip(*outs))
        return torch.cat(outs)
