"""Inference and training speed-ups behind switches, each one measurable on its own.

Switches (names as `pixelwise bench --optimize` takes them):
- inference_mode: `torch.inference_mode()` instead of the baseline's `torch.no_grad()`;
- channels_last: weights and inputs in NHWC memory order (what oneDNN and tensor cores prefer);
- fold_bn: every BatchNorm2d that directly follows a Conv2d folded into that convolution;
- compile: `torch.compile` (inductor); the first call compiles, and its time is reported apart;
- freezing: compile with inductor's `freezing` (eval only): weights become constants, so BN folding, weight
  casts and oneDNN weight prepacking happen once at compile time instead of at every call;
- max_autotune: compile with `max_autotune` (inductor times several kernels per matmul/conv and keeps the
  fastest; compiling takes much longer);
- cast_weights: (eval, bf16/fp16 only) the weights and the input cast to the precision's dtype instead
  of autocast, which casts weights at every call unless freezing folds the casts away.
Precisions: fp32; bf16 and fp16 through autocast (on CPU too, where the hardware supports them).
"compile" is implied by freezing and max_autotune.
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Callable, ContextManager, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from pixelwise.errors import PixelwiseError
from pixelwise.models.outputs import logits_of

OPTIMIZATIONS = ("inference_mode", "channels_last", "fold_bn", "compile", "freezing", "max_autotune", "cast_weights")
EVAL_ONLY = ("inference_mode", "fold_bn", "freezing", "cast_weights")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_optimizations(names: Sequence[str], mode: str = "eval") -> list[str]:
    """The switch names, validated: unknown ones and those meaningless in training mode are an error."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in OPTIMIZATIONS]
    if unknown:
        raise PixelwiseError(f"--optimize: unknown {', '.join(unknown)}; choose from {', '.join(OPTIMIZATIONS)}")
    eval_only = [n for n in names if n in EVAL_ONLY]
    if mode == "train" and eval_only:
        raise PixelwiseError(f"--optimize {' and '.join(eval_only)} apply to --mode eval only; "
                             "drop them for --mode train")
    if {"freezing", "max_autotune"} & set(names) and "compile" not in names:
        names.append("compile")
    return names


def inductor_options(optimizations: Sequence[str]) -> ContextManager:
    """inductor's config with the switches' options (freezing, max_autotune) set inside the block only:
    around a compiled model's first call, which compiles it, they hold for that model and not for the
    process. (`torch.compile(options=...)` is not used: with it int8 freezing fails.)"""
    import torch._inductor.config
    return torch._inductor.config.patch({key: True for key in ("freezing", "max_autotune") if key in optimizations})


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, batch-norm name) for every BatchNorm2d (or timm BatchNormAct2d) whose input is
    exactly a Conv2d's output.

    Found by running `example` (N, C, H, W) through the model with hooks, so any forward code works.
    Modules called more than once in the pass are left out (their folding would be ambiguous).
    """
    names = {m: n for n, m in model.named_modules()}
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # keeps the tensors alive so ids stay unique
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []

    def after_conv(module, args, out):
        calls[names[module]] = calls.get(names[module], 0) + 1
        outputs[id(out)] = (names[module], out)

    def before_bn(module, args):
        calls[names[module]] = calls.get(names[module], 0) + 1
        hit = outputs.get(id(args[0]))
        if hit is not None and hit[1] is args[0]:
            pairs.append((hit[0], names[module]))

    handles = []
    for module in model.modules():
        if type(module) is nn.Conv2d:
            handles.append(module.register_forward_hook(after_conv))
        elif _foldable_norm(module):
            handles.append(module.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1]


def fold_batchnorm(model: nn.Module, example: torch.Tensor, rtol: float = 1e-4) -> tuple[nn.Module, list]:
    """A copy of `model` in eval mode with each Conv2d -> BatchNorm2d pair folded into one convolution.

    The folded convolution computes W' = W * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta
    with the batch norm's running statistics, and the batch norm becomes an Identity. Outputs are checked
    against the original on `example` (small is enough: (1, C, 64, 64)); a pair whose convolution output
    is also used elsewhere changes them and is then left unfolded. Returns (model, folded pairs).
    """
    model = copy.deepcopy(model).eval()
    pairs = conv_bn_pairs(model, example)
    with torch.no_grad():
        reference = model(example)
    folded = _fold(model, pairs)
    if _outputs_close(folded, example, reference, rtol):
        return folded, pairs
    kept: list[tuple[str, str]] = []
    for pair in pairs:  # rare: some conv output also feeds something besides its BN
        if _outputs_close(_fold(model, kept + [pair]), example, reference, rtol):
            kept.append(pair)
    return _fold(model, kept), kept


def _fold(model: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    model = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        # timm's BatchNormAct2d applies dropout and an activation after normalizing: keep those
        rest = nn.Sequential(bn.drop, bn.act) if type(bn) is not nn.BatchNorm2d else nn.Identity()
        model.set_submodule(bn_name, rest)
    return model


def _foldable_norm(module: nn.Module) -> bool:
    """A plain BatchNorm2d, or timm's BatchNormAct2d (a BatchNorm2d followed by `drop` and `act`)."""
    return type(module) is nn.BatchNorm2d or (
        isinstance(module, nn.BatchNorm2d) and type(module).__name__ == "BatchNormAct2d"
        and hasattr(module, "act") and hasattr(module, "drop"))


def _outputs_close(model: nn.Module, example: torch.Tensor, reference, rtol: float) -> bool:
    with torch.no_grad():
        out = model(example)
    outs = tuple(out) if isinstance(out, tuple) else (out,)
    refs = tuple(reference) if isinstance(reference, tuple) else (reference,)
    return all((o - r).abs().max() <= rtol * r.abs().max().clamp(min=1.0) for o, r in zip(outs, refs))


def autocast(device: torch.device | str, precision: str) -> ContextManager:
    """Autocast to bf16/fp16 on `device` for those precisions; a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in AUTOCAST_DTYPES:
        raise PixelwiseError(f"--precision {precision!r}: autocast takes bf16 or fp16")
    return torch.autocast(torch.device(device).type, dtype=AUTOCAST_DTYPES[precision])


def inference_step(model: nn.Module, inputs: torch.Tensor, optimizations: Sequence[str] = (),
                   precision: str = "fp32") -> tuple[Callable[[], torch.Tensor], dict]:
    """A zero-argument function running one optimized forward pass of `inputs`, and notes on it.

    inputs: (N, C, H, W) float in [0, 1] on the model's device. The baseline (no switches, fp32) is eager
    eval mode under `torch.no_grad()`. With "compile", the first call (the compilation) happens here and
    its seconds are in the notes; compilation errors propagate.
    """
    optimizations = check_optimizations(optimizations, "eval")
    device = inputs.device
    notes: dict = {}
    model = model.eval()
    amp = precision
    if "fold_bn" in optimizations:
        model, pairs = fold_batchnorm(model, _small_example(inputs))
        notes["folded_bn"] = len(pairs)
    if "cast_weights" in optimizations:
        if precision not in AUTOCAST_DTYPES:
            raise PixelwiseError("--optimize cast_weights needs --precision bf16 or fp16")
        # after folding (in fp32); the input's cast is inside the module, timed and compiled with it
        dtype = AUTOCAST_DTYPES[precision]
        model, amp = CastInputs(copy.deepcopy(model).to(dtype), dtype), "fp32"
    if "channels_last" in optimizations:  # on a copy: Module.to works in place
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    if "compile" in optimizations:
        model = torch.compile(model)
    grad_mode = torch.inference_mode if "inference_mode" in optimizations else torch.no_grad

    def step():
        with grad_mode(), autocast(device, amp):
            return model(inputs)

    if "compile" in optimizations:
        t0 = time.perf_counter()
        with inductor_options(optimizations):
            step()
        notes["compile_seconds"] = time.perf_counter() - t0
    return step, notes


def train_step(model: nn.Module, inputs: torch.Tensor, optimizations: Sequence[str] = (),
               precision: str = "fp32", lr: float = 1e-3) -> tuple[Callable[[], torch.Tensor], dict]:
    """A zero-argument function running one training step (forward, backward, SGD step) on `inputs`.

    The steps update `model`'s own weights (and channels_last converts it in place). Targets are
    random class indices of the logits' shape (the cost does not depend on their values). fp16 uses a
    gradient scaler on CUDA, as real fp16 training must.
    """
    optimizations = check_optimizations(optimizations, "train")
    device = inputs.device
    notes: dict = {}
    model = model.train()
    if "channels_last" in optimizations:
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    forward = torch.compile(model) if "compile" in optimizations else model
    with torch.no_grad():
        shape = logits_of(model.eval()(inputs[:1])).shape
    model.train()
    targets = torch.randint(0, shape[1], (inputs.shape[0], *shape[2:]), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(logits_of(forward(inputs)).float(), targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    if "compile" in optimizations:
        t0 = time.perf_counter()
        with inductor_options(optimizations):
            step()
        notes["compile_seconds"] = time.perf_counter() - t0
    return step, notes


class CastInputs(nn.Module):
    """`model` (its weights already in `dtype`) called on its input cast to `dtype`; outputs stay in
    `dtype`, as autocast's do."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor):
        return self.model(x.to(self.dtype))


def _small_example(inputs: torch.Tensor, side: int = 128) -> torch.Tensor:
    """One input image scaled down so that its longer side is at most `side` (folding is size-free)."""
    h, w = inputs.shape[-2:]
    size = (h, w) if max(h, w) <= side else (max(32, round(h * side / max(h, w))), max(32, round(w * side / max(h, w))))
    return torch.rand(1, inputs.shape[1], *size, device=inputs.device, dtype=inputs.dtype)
