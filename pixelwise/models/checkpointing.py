"""Memory-efficient training: gradient checkpointing as one switch on any pixelwise model.

With checkpointing, a block keeps only its inputs during the forward pass and recomputes its
activations during backward: peak training memory falls, a training step costs about one more
forward pass, and the gradients stay the same. Batch-norm running statistics are updated once more
per checkpointed block (during the recomputation), as in timm and in the authors' LDN code.
"""
from __future__ import annotations

import torch.nn as nn


def set_grad_checkpointing(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch gradient checkpointing on or off everywhere in `model`; returns `model`.

    timm modules get their own `set_grad_checkpointing` (outermost timm module per branch);
    pixelwise blocks that declare a `grad_checkpointing` attribute (SPP, upsampling steps, dense ladder
    stages) get that attribute set. Raises ValueError if nothing in the model supports checkpointing.
    """
    switched = 0
    for m in model.modules():
        if _is_pixelwise(m) and isinstance(getattr(m, "grad_checkpointing", None), bool):
            m.grad_checkpointing = enabled
            switched += 1
    for m in _outermost_timm_modules(model):
        m.set_grad_checkpointing(enabled)
        switched += 1
    if not switched:
        raise ValueError(f"{type(model).__name__} has no block that supports gradient checkpointing")
    return model


def _is_pixelwise(m: nn.Module) -> bool:
    return type(m).__module__.startswith("pixelwise.")


def _outermost_timm_modules(model: nn.Module) -> list[nn.Module]:
    found: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        if type(m).__module__.startswith("timm.") and callable(getattr(m, "set_grad_checkpointing", None)):
            found.append(m)  # it switches its own children
            return
        for child in m.children():
            visit(child)

    visit(model)
    return found
