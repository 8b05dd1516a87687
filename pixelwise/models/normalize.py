"""Normalization inside the model, so that attacks, export and prediction all see raw [0, 1] images."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class Normalize(nn.Module):
    """(x - mean) / std per channel. Input (N, C, H, W) float in [0, 1].

    A grayscale input (C = 1) fed to a model with 3-channel statistics is replicated to
    3 channels first, so that one network accepts both.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.mean.shape[1]
        if x.shape[1] == 1 and c != 1:
            x = x.expand(-1, c, -1, -1)
        return (x - self.mean) / self.std
