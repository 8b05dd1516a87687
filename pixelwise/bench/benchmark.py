"""One benchmark of one model configuration: what `pixelwise bench` prints and writes as JSON."""
from __future__ import annotations

import contextlib
import platform
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from pixelwise.bench.measure import (FLOP_CONVENTION, count_flops, count_parameters, device_name,
                                     matmul_peak, peak_memory, time_callable)
from pixelwise.bench.optimize import check_optimizations, inference_step, train_step
from pixelwise.errors import PixelwiseError

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
MODES = ("eval", "train")
INT8_BACKENDS = ("onnxruntime", "pt2e")
# Every key a benchmark result has; tests and the JSON consumers rely on this list.
RESULT_FIELDS = (
    "model", "input_shape", "batch", "device", "device_name", "precision", "mode", "optimizations",
    "threads", "backend", "params", "flops", "macs", "flop_convention", "flops_by_module", "latency_ms",
    "throughput_images_per_s", "peak_memory_bytes", "memory_method", "achieved_gflops",
    "matmul_peak_gflops", "matmul_peak", "fraction_of_peak", "notes", "torch_version", "platform",
)


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op CPU threads (None: leave PyTorch's setting)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_device(device: str) -> torch.device:
    """The torch device for 'cpu' or 'cuda', with an error naming the fix when CUDA is missing."""
    if device not in ("cpu", "cuda"):
        raise PixelwiseError(f"--device {device!r}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise PixelwiseError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(device)


def benchmark(model: nn.Module, input_shape: Sequence[int], name: str = "model", device: str = "cpu",
              precision: str = "fp32", mode: str = "eval", optimizations: Sequence[str] = (),
              threads: int | None = None, warmup: int = 3, runs: int = 10, peak: dict | None = None,
              calibration: torch.Tensor | None = None, int8_backend: str = "onnxruntime") -> dict:
    """Parameters, FLOPs, latency, throughput, peak memory and achieved GFLOP/s of `model`.

    input_shape: (N, C, H, W) of the random [0, 1] input batch. mode "eval" times one forward pass,
    "train" one forward + backward + SGD step (its FLOPs: forward + backward). precision int8 runs on
    CPU (eval only) an onnxruntime QDQ model (int8_backend "onnxruntime") or a PT2-export-quantized
    model compiled by inductor ("pt2e"), calibrated on `calibration` images (default: 16 random images,
    which gives right timings but not right accuracy). `peak` is a `matmul_peak` result to reuse;
    measured when None, in the precision that runs (fp32, bf16, fp16 or int8): achieved GFLOP/s are a
    fraction of the same precision's peak (None where that peak is not measurable).
    FLOPs follow `FLOP_CONVENTION` (multiply-add = 2) and are those of the fp32 model, also for int8.
    Returns a dict with every key in RESULT_FIELDS.
    """
    dev = check_device(device)
    if precision not in PRECISIONS:
        raise PixelwiseError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if mode not in MODES:
        raise PixelwiseError(f"--mode {mode!r}: choose eval or train")
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise PixelwiseError(f"input shape must be (N, C, H, W) of positive sizes, got {tuple(input_shape)}")
    optimizations = check_optimizations(optimizations, mode)
    if precision == "int8" and (dev.type != "cpu" or mode != "eval" or optimizations):
        raise PixelwiseError("--precision int8 runs onnxruntime or pt2e on CPU: use it with --device cpu "
                             "--mode eval and without --optimize")
    if int8_backend not in INT8_BACKENDS:
        raise PixelwiseError(f"--int8-backend {int8_backend!r}: choose one of {', '.join(INT8_BACKENDS)}")
    with num_threads(threads):
        model = model.to(dev)
        inputs = torch.rand(*input_shape, generator=torch.Generator().manual_seed(0)).to(dev)
        flops = count_flops(model, inputs, train=mode == "train")
        # autocast runs the matrix multiplies in bf16/fp16, int8 in int8: compare with that precision's peak
        peak = peak or matmul_peak(dev, precision)
        notes: dict = {}
        if precision == "int8" and int8_backend == "pt2e":
            timing, memory, backend = _time_pt2e(model, inputs, calibration, warmup, runs, notes)
        elif precision == "int8":
            timing, memory, backend = _time_int8(model, inputs, calibration, threads, warmup, runs, notes)
        else:
            make = inference_step if mode == "eval" else train_step
            step, notes = make(model, inputs, optimizations, precision)
            with peak_memory(dev) as memory:
                timing = time_callable(step, dev, warmup=warmup, runs=runs)
            backend = "pytorch"
    seconds = timing["median_ms"] / 1e3
    achieved = flops["flops"] / seconds / 1e9
    return {
        "model": name, "input_shape": list(input_shape), "batch": int(input_shape[0]), "device": dev.type,
        "device_name": device_name(dev), "precision": precision, "mode": mode, "optimizations": optimizations,
        "threads": threads or torch.get_num_threads(), "backend": backend,
        "params": count_parameters(model), "flops": flops["flops"], "macs": flops["macs"],
        "flop_convention": FLOP_CONVENTION, "flops_by_module": flops["by_module"],
        "latency_ms": dict(timing),
        "throughput_images_per_s": input_shape[0] / seconds,
        "peak_memory_bytes": memory.get("peak_bytes"), "memory_method": memory.get("method"),
        "achieved_gflops": achieved, "matmul_peak_gflops": peak["gflops"], "matmul_peak": peak,
        "fraction_of_peak": achieved / peak["gflops"] if peak.get("gflops") else None, "notes": notes,
        "torch_version": torch.__version__, "platform": platform.platform(),
    }


def _time_pt2e(model: nn.Module, inputs: torch.Tensor, calibration: torch.Tensor | None, warmup: int,
               runs: int, notes: dict):
    from pixelwise.bench.quantize_pt2e import quantize_x86
    if calibration is None:
        calibration = torch.rand(len(inputs), *inputs.shape[1:], generator=torch.Generator().manual_seed(1))
        notes["calibration"] = f"{len(calibration)} random images (timing only; calibrate on data for accuracy)"
    int8, info = quantize_x86(model.cpu().eval(), inputs.cpu(), calibration)
    notes.update(compile_seconds=info["compile_seconds"], quantize_seconds=info["quantize_seconds"])

    def step():
        return int8(inputs)  # under inference_mode, as it was compiled

    with peak_memory("cpu") as memory:
        timing = time_callable(step, "cpu", warmup=warmup, runs=runs)
    return timing, memory, "pytorch pt2e int8 (inductor)"


def _time_int8(model: nn.Module, inputs: torch.Tensor, calibration: torch.Tensor | None,
               threads: int | None, warmup: int, runs: int, notes: dict):
    from pixelwise.bench.export import export_onnx, onnx_session, time_onnx
    from pixelwise.bench.quantize import quantize_onnx
    if calibration is None:
        calibration = torch.rand(16, *inputs.shape[1:], generator=torch.Generator().manual_seed(1))
        notes["calibration"] = "16 random images (timing only; calibrate on data for accuracy)"
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(model.cpu(), inputs[:1].cpu(), Path(tmp) / "fp32.onnx")
        quantize_onnx(exported["path"], Path(tmp) / "int8.onnx", calibration)
        notes["exporter"] = exported["exporter"]
        session = onnx_session(Path(tmp) / "int8.onnx", threads)
        with peak_memory("cpu") as memory:
            timing = time_onnx(session, inputs, warmup=warmup, runs=runs)
    return timing, memory, "onnxruntime"


def format_result(r: dict) -> str:
    """A few readable lines summarizing one benchmark result."""
    lat = r["latency_ms"]
    mem = r["peak_memory_bytes"]
    opts = ",".join(r["optimizations"]) or "none"
    lines = [
        f"{r['model']} {r['mode']} {tuple(r['input_shape'])} on {r['device']} ({r['device_name']}), "
        f"{r['precision']}, optimizations: {opts}, {r['threads']} threads, backend {r['backend']}",
        f"  params {r['params'] / 1e6:.3f} M; {r['flops'] / 1e9:.3f} GFLOPs = {r['macs'] / 1e9:.3f} GMACs per "
        f"{'step' if r['mode'] == 'train' else 'forward'} (multiply-add = 2 FLOPs)",
        f"  latency median {lat['median_ms']:.2f} ms, p90 {lat['p90_ms']:.2f} ms over {lat['runs']} runs "
        f"after {lat['warmup']} warm-up; throughput {r['throughput_images_per_s']:.1f} images/s",
        f"  achieved {r['achieved_gflops']:.1f} GFLOP/s = {100 * r['fraction_of_peak']:.1f}% of the measured "
        f"{r['matmul_peak']['dtype']} matmul peak {r['matmul_peak_gflops']:.1f} GFLOP/s"
        + (" (forward + backward FLOPs)" if r["mode"] == "train" else "")
        if r["fraction_of_peak"] is not None else
        f"  achieved {r['achieved_gflops']:.1f} GFLOP/s; no {r['matmul_peak']['dtype']} matmul peak is measurable here",
        f"  peak memory {mem / 2**20:.1f} MiB ({r['memory_method'].split(' (')[0]})" if mem is not None
        else "  peak memory: not available on this system",
    ]
    if r["notes"]:
        lines.append("  notes: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in r["notes"].items()))
    return "\n".join(lines)
