"""The device and the autocast precision of a run, and seeding that touches only that device."""
from __future__ import annotations

import warnings

import torch

from pixelwise.engine import distributed as dist
from pixelwise.errors import PixelwiseError


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise PixelwiseError("device: 'cuda' asked for but no CUDA GPU is available; use device=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.world()[1] > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware: a CUDA GPU that supports bf16, or a CPU
    with AMX tiles or AVX512-BF16. Elsewhere bf16 autocast is emulated and runs slower than fp32 (3.3x for
    a SwiftNet-RN18 training step on an AVX-512 CPU without them; see the README's notes)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe() for probe in probes if probe is not None)


def pick_precision(name: str, device: torch.device) -> str:
    """The autocast precision of a run: `name` ('fp32', 'bf16', 'fp16'), or for 'auto' bf16 where the
    device computes it natively (native_bf16) and fp32 elsewhere. Warns when bf16 is asked for on a CPU
    that would emulate it."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "fp16" and device.type == "cpu":
        warnings.warn("precision: fp16 autocast on a CPU has no fast kernels and runs many times slower than "
                      "fp32; use precision: auto (bf16 where the CPU has it) or fp32", stacklevel=2)
    if name == "bf16" and device.type == "cpu" and not native_bf16(device):
        warnings.warn("precision: bf16 on a CPU without AMX or AVX512-BF16 is emulated and slower than fp32; "
                      "use precision: auto (bf16 only where the hardware has it) or fp32", stacklevel=2)
    return name


def seed_device(seed: int, device: torch.device) -> None:
    """Seed the CPU generator (and the CUDA one when training there). Unlike torch.manual_seed this
    queues no lazy seeding for every other accelerator backend, which costs ~1 ms per call."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
