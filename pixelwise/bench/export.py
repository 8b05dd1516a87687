"""ONNX export of classifiers and segmenters, checked against PyTorch and timed under onnxruntime."""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from pixelwise.bench.measure import time_callable
from pixelwise.errors import PixelwiseError
from pixelwise.models.outputs import SegmentationOutput

INPUT_NAME = "images"


def output_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    """["logits"], ["logits", "outlier_logits"] for a segmenter with an outlier head, or the field names
    of any other named-tuple output (a detector's dense maps: heatmap, size, offset)."""
    with torch.no_grad():
        out = model.eval()(example)
    if isinstance(out, SegmentationOutput):
        return ["logits", "outlier_logits"]
    return list(out._fields) if isinstance(out, tuple) and hasattr(out, "_fields") else ["logits"]


def output_tensors(out) -> tuple[torch.Tensor, ...]:
    """A model output as the tuple of tensors ONNX returns: a named tuple's fields, or the tensor alone."""
    return tuple(out) if isinstance(out, tuple) else (out,)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path, dynamic_batch: bool = True,
                opset: int = 18) -> dict:
    """Write `model` (eval mode, on CPU) as one ONNX file taking images (N, C, H, W) float in [0, 1].

    Uses the torch.export-based exporter (`dynamo=True`) and falls back to the TorchScript one when it
    fails. The batch dimension is dynamic unless `dynamic_batch` is False; H and W are fixed to the
    example's. Returns {"path", "exporter", "outputs", "fallback_reason"?}.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = example.cpu().float()
    names = output_names(model, example)
    info: dict = {"path": str(path), "outputs": names, "opset": opset}
    try:
        # a batch of 2 keeps the dynamic batch dimension from being specialized to the example's size 1
        batch = example[:1].expand(2, *example.shape[1:]).contiguous() if dynamic_batch else example
        dims = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
        with _quiet():
            torch.onnx.export(model, (batch,), str(path), dynamo=True, external_data=False,
                              input_names=[INPUT_NAME], output_names=names, dynamic_shapes=dims,
                              opset_version=opset, verbose=False)
        info["exporter"] = "dynamo"
    except Exception as e:  # e.g. an op without a torch.export translation: try the TorchScript exporter
        info["fallback_reason"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic_batch else None
        try:
            with _quiet():
                torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME],
                                  output_names=names, dynamic_axes=axes, opset_version=opset)
        except Exception as e2:
            raise PixelwiseError(f"{path}: ONNX export failed with both exporters ({info['fallback_reason']}; "
                                 f"{type(e2).__name__}: {str(e2).splitlines()[0][:300]})") from e2
        info["exporter"] = "torchscript"
    return info


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and deprecation warnings; keep the command's output readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def onnx_session(path: str | Path, threads: int | None = None, device: str = "cpu"):
    """An onnxruntime InferenceSession with full graph optimizations and `threads` intra-op threads."""
    import onnxruntime as ort
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such ONNX file; write it with `pixelwise export MODEL --onnx {path}`")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # idle worker threads otherwise spin for a while after each run, stealing the cores from whatever
    # runs next (PyTorch in an interleaved comparison, other processes on a shared machine)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


def run_onnx(session, images: torch.Tensor) -> list[np.ndarray]:
    """The session's outputs for images (N, C, H, W) float in [0, 1], as float32 numpy arrays."""
    return session.run(None, {session.get_inputs()[0].name: images.detach().cpu().float().numpy()})


def onnx_parity(model: nn.Module, session, images: torch.Tensor, rtol: float = 1e-3) -> dict:
    """Compare ONNX outputs with PyTorch's on `images` (N, C, H, W) in [0, 1].

    Returns per output: max absolute difference, that relative to the largest |PyTorch logit|, and the
    fraction of positions (images or pixels) whose arg-max class agrees; "ok" when every relative
    difference is at most `rtol`.
    """
    with torch.no_grad():
        ref = model.eval()(images.cpu().float())
    refs = output_tensors(ref)
    result: dict = {"rtol": rtol, "outputs": {}}
    for name, r, o in zip(output_names(model, images[:1].cpu().float()), refs, run_onnx(session, images)):
        o = torch.from_numpy(o)
        diff = float((o - r).abs().max())
        rel = diff / max(float(r.abs().max()), 1e-12)
        agree = float((o.argmax(1) == r.argmax(1)).float().mean()) if r.shape[1] > 1 else 1.0
        result["outputs"][name] = {"max_abs_diff": diff, "max_rel_diff": rel, "argmax_agreement": agree}
    result["ok"] = all(v["max_rel_diff"] <= rtol for v in result["outputs"].values())
    return result


def time_onnx(session, images: torch.Tensor, warmup: int = 3, runs: int = 10) -> dict:
    """Latency of one onnxruntime call on `images`, as `measure.time_callable` reports it."""
    feed = {session.get_inputs()[0].name: images.detach().cpu().float().numpy()}
    return time_callable(lambda: session.run(None, feed), "cpu", warmup=warmup, runs=runs)
