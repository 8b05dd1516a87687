"""What models return, by name, and the module inside training wrappers."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn


class SegmentationOutput(NamedTuple):
    """A segmenter with an outlier head: class logits (N, K, H, W) and outlier logits (N, 1, H, W).

    A segmenter without one returns its logits tensor alone (DESIGN.md's contract)."""
    logits: torch.Tensor
    outlier: torch.Tensor


def logits_of(output) -> torch.Tensor:
    """The class logits of any model output: the tensor itself, or `.logits` of a named output."""
    return output.logits if isinstance(output, SegmentationOutput) else output


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model
