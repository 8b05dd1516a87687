"""What a model costs: parameters, FLOPs, latency, memory, and the device's matrix-multiply peak.

Conventions used throughout `pixelwise.bench`:
- FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts a multiply-add as 2 FLOPs
  (so FLOPs = 2 x MACs); only matrix multiplies and convolutions are counted (not BN, ReLU, pooling,
  resizing), as in the papers' tables.
- Latency is wall-clock time per call in milliseconds after warm-up runs, CUDA synchronized.
"""
from __future__ import annotations

import copy
import re
import statistics
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from pixelwise.errors import PixelwiseError
from pixelwise.models.outputs import logits_of

FLOP_CONVENTION = "a multiply-add counts as 2 FLOPs (FLOPs = 2 x MACs); only convolutions and matrix multiplies are counted"
CPU_MEMORY_METHOD = ("peak resident set size of the whole process during the timed runs (Linux VmHWM, reset "
                     "through /proc/self/clear_refs after warm-up); includes weights, allocator caches, the "
                     "interpreter")
CUDA_MEMORY_METHOD = "torch.cuda.max_memory_allocated during the timed runs (tensors only, not the caching slack)"


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (trainable or not; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, inputs: torch.Tensor, train: bool = False, depth: int = 1) -> dict:
    """FLOPs of one forward pass (train=True: forward + backward) on `inputs` (N, C, H, W).

    Counted on a copy of the model on the meta device (no arithmetic is done), falling back to a real
    run on a CPU copy when a layer cannot run on meta. Returns {"flops", "macs", "by_module"}: FLOPs of
    the whole batch with a multiply-add as 2 FLOPs, MACs = FLOPs / 2, and FLOPs per sub-module up to
    `depth` levels below the model.
    """
    try:
        counter = _count(copy.deepcopy(model).to("meta"), inputs.to("meta"), train)
    except Exception:  # some layers (data-dependent shapes, .item()) cannot run on meta tensors
        counter = _count(copy.deepcopy(model).cpu().float(), inputs.cpu().float(), train)
    total = counter.get_total_flops()
    top = type(model).__name__
    by_module = {}
    for name, counts in counter.get_flop_counts().items():
        parts = name.split(".")
        if name != "Global" and parts[0] == top and 1 <= len(parts) - 1 <= depth:
            by_module[".".join(parts[1:])] = int(sum(counts.values()))
    return {"flops": int(total), "macs": int(total // 2), "by_module": by_module}


def _count(model: nn.Module, inputs: torch.Tensor, train: bool) -> FlopCounterMode:
    counter = FlopCounterMode(display=False, depth=None)
    model.train(train)
    with counter:
        if train:
            logits_of(model(inputs)).float().sum().backward()
        else:
            with torch.no_grad():
                model(inputs)
    return counter


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels, so that wall-clock time covers the work (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(fn: Callable[[], object], device: torch.device | str = "cpu", warmup: int = 3,
                  runs: int = 10, on_warm: Callable[[], None] | None = None) -> dict:
    """Latency of `fn()` in milliseconds: `warmup` untimed calls, then `runs` timed ones.

    Each call is timed alone between device synchronizations. `on_warm` is called between warm-up and
    the timed runs (to reset memory peaks). Returns median, p90 (nearest rank), mean, min and all times.
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    if on_warm is not None:
        on_warm()
    return latency_summary([_timed(fn, device) for _ in range(max(1, runs))], warmup)


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu",
                     warmup: int = 3, runs: int = 10, progress: bool = False) -> dict[str, dict]:
    """Latencies of several functions timed in rounds (each round calls each function once).

    Under a load that changes over time (a shared machine) every function sees the same conditions,
    so their ratios are fair. Returns {name: latency summary as `time_callable` gives it}.
    """
    from tqdm import tqdm
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in tqdm(range(max(1, runs)), desc="timing rounds", disable=not progress, leave=False):
        for name, fn in fns.items():
            times[name].append(_timed(fn, device))
    return {name: latency_summary(t, warmup) for name, t in times.items()}


def _timed(fn: Callable[[], object], device: torch.device | str) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - t0) * 1e3


def latency_summary(times_ms: list[float], warmup: int) -> dict:
    """Median, p90 (nearest rank), mean and min of per-call times in milliseconds."""
    ordered = sorted(times_ms)
    p90 = ordered[min(len(ordered) - 1, max(0, -(-9 * len(ordered) // 10) - 1))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "mean_ms": statistics.fmean(ordered),
            "min_ms": ordered[0], "runs": len(ordered), "warmup": warmup, "times_ms": list(times_ms)}


PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}
PEAK_SIZES = {"cpu": (1024, 2048, 3072), "cuda": (4096, 8192, 12288)}  # benchmarks/speed.py adds 4096
ORT_PEAK_OPS = {torch.int8: "MatMulInteger", torch.float32: "MatMul"}   # onnxruntime second opinions on CPU


def matmul_peak(device: torch.device | str = "cpu", dtype: torch.dtype | str = torch.float32,
                n: int | None = None, repeats: int = 3, sizes: Sequence[int] | None = None) -> dict:
    """The device's measured matrix-multiply throughput in `dtype`: the best of `repeats` timed
    (n x n) @ (n x n) products over several sizes n.

    dtype: a torch dtype or a precision name (fp32, bf16, fp16, int8). int8 multiplies int8 matrices
    into int32 with `torch._int_mm` (oneDNN's VNNI/AMX kernel, or tensor cores), the others with
    `torch.mm`. On CPU, int8 and fp32 are also timed with onnxruntime (MatMulInteger on uint8 x int8;
    MatMul on float32: the kernels its models run), keeping the faster at each size: torch.mm's BLAS
    can be far from what the machine does (on an AMD EPYC, 180 GFLOP/s where onnxruntime's fp32 model
    of SwiftNet ran at 318).
    `n` measures that one size; else `sizes` (default 1024-3072 on CPU, 4096-12288 on CUDA): a single
    size under-measures (a small one is memory-bound, a large one leaves the caches), and a peak that
    under-measures flattens every ratio to it. Returns {"gflops": best GFLOP/s (2 n^3 FLOPs per
    product, integer operations counted alike for int8), "n": the size that reached it, "by_size":
    {n: best GFLOP/s}, "dtype", "repeats", "method", "measurable"}; where the dtype has no kernel on
    the device, "gflops" is None, "measurable" False and "error" says why.
    """
    device = torch.device(device)
    dtype = PEAK_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(dtype, torch.dtype):
        raise PixelwiseError(f"matmul peak dtype {dtype!r}: choose one of {', '.join(PEAK_DTYPES)}")
    sizes = [n] if n else list(sizes or PEAK_SIZES.get(device.type, PEAK_SIZES["cpu"]))
    integer = dtype == torch.int8
    name = str(dtype).replace("torch.", "")
    torch_op = "torch._int_mm" if integer else "torch.mm"
    result = {"dtype": name, "repeats": repeats, "sizes": sizes, "measurable": True,
              "method": f"{torch_op} ({'int8 x int8 -> int32' if integer else name})"}
    by_size: dict[int, float] = {}
    by_method: dict[str, dict[int, float]] = {}
    try:
        for size in sizes:
            a, b = _matrices(size, dtype, device)
            product = (lambda: torch._int_mm(a, b)) if integer else (lambda: torch.mm(a, b))
            timing = time_callable(product, device, warmup=1, runs=repeats)
            by_size[size] = 2 * size ** 3 / (timing["min_ms"] * 1e-3) / 1e9
            del a, b
            if dtype in ORT_PEAK_OPS and device.type == "cpu":
                by_method.setdefault(torch_op, {})[size] = by_size[size]
                ort_gflops = _onnxruntime_gflops(size, repeats, integer)
                if ort_gflops is not None:
                    by_method.setdefault(f"onnxruntime {ORT_PEAK_OPS[dtype]}", {})[size] = ort_gflops
                    by_size[size] = max(by_size[size], ort_gflops)
    except (RuntimeError, NotImplementedError) as e:  # e.g. no int8 (or fp16) matmul kernel on this device
        return {**result, "gflops": None, "n": None, "by_size": by_size, "measurable": False,
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    best = max(by_size, key=by_size.get)
    if len(by_method) > 1:
        result["method"] = (f"best of {result['method']} and onnxruntime {ORT_PEAK_OPS[dtype]} "
                            f"({'uint8 x int8' if integer else name})")
        result["by_method"] = by_method
    return {**result, "gflops": by_size[best], "n": best, "by_size": by_size}


def _onnxruntime_gflops(n: int, repeats: int, integer: bool) -> float | None:
    """GFLOP/s of onnxruntime's MatMulInteger on (n x n) uint8 @ (n x n) int8 (integer) or MatMul on
    float32 with torch's thread count, or None where onnxruntime is missing or fails."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
        a_type, b_type, y_type = ((TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if integer
                                  else (TensorProto.FLOAT,) * 3)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger" if integer else "MatMul", ["a", "b"], ["y"])], "matmul",
            [helper.make_tensor_value_info("a", a_type, [n, n]), helper.make_tensor_value_info("b", b_type, [n, n])],
            [helper.make_tensor_value_info("y", y_type, [n, n])])
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                                       .SerializeToString(), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(n)
        feed = ({"a": rng.integers(0, 256, (n, n), dtype=np.uint8), "b": rng.integers(-128, 128, (n, n), dtype=np.int8)}
                if integer else {k: rng.standard_normal((n, n), dtype=np.float32) for k in "ab"})
        timing = time_callable(lambda: session.run(None, feed), "cpu", warmup=1, runs=repeats)
    except Exception:  # an optional second opinion: torch's figure stands alone without it
        return None
    return 2 * n ** 3 / (timing["min_ms"] * 1e-3) / 1e9


def _matrices(n: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    if dtype == torch.int8:
        return tuple(torch.randint(-128, 128, (n, n), generator=g, dtype=torch.int8).to(device) for _ in range(2))
    return tuple(torch.randn(n, n, generator=g).to(device=device, dtype=dtype) for _ in range(2))


@contextmanager
def peak_memory(device: torch.device | str) -> Iterator[dict]:
    """Track peak memory inside the block; the yielded dict gets "peak_bytes" and "method" on exit.

    CUDA: torch.cuda.max_memory_allocated (reset on entry). CPU: the process's peak resident set size
    (VmHWM, reset on entry through /proc/self/clear_refs); None where /proc is not available.
    """
    device = torch.device(device)
    result: dict = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result.update(peak_bytes=int(torch.cuda.max_memory_allocated(device)), method=CUDA_MEMORY_METHOD)
        return
    reset = _reset_peak_rss()
    yield result
    result.update(peak_bytes=_proc_status_bytes("VmHWM") if reset else None, method=CPU_MEMORY_METHOD)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5 = reset the peak RSS to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _proc_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def device_name(device: torch.device | str) -> str:
    """A readable name of the device: the GPU's name, or the CPU model from /proc/cpuinfo."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        return match.group(1).strip() if match else "cpu"
    except OSError:
        return "cpu"
