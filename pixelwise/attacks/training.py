"""Adversarial training: the engine replaces each training batch by attacked images.

Choices:
- The attack runs on the unwrapped model (not DistributedDataParallel): it needs gradients with
  respect to the images only, and DDP would wait for parameter gradients that never come.
- The attack sees the model in its current (training) mode, as in Madry et al.'s and Wong et al.'s
  reference code: batch normalization uses the batch statistics, so the attack climbs the very
  function the update differentiates. Its forward passes must not move the BN running statistics,
  though, so every buffer is restored afterwards: the running statistics see one pass per step (the
  update's), as without the attack.
- The random start is drawn only from the engine's per-step generator, so resumed runs stay exact.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn as nn

from pixelwise.attacks.gradient_attacks import default_alpha, pgd
from pixelwise.models.outputs import unwrap

# Wong et al. 2020: fast FGSM with random start steps 1.25 eps; larger steps overfit catastrophically.
FAST_FGSM_ALPHA = 1.25


@contextmanager
def buffers_restored(model: nn.Module):
    """Run a block, then put every buffer of `model` (BN running statistics, counters) back."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, copy in saved:
                b.copy_(copy)


def attack_settings(cfg) -> dict:
    """pgd() keyword arguments of an AdversarialConfig: 'fgsm' = fast FGSM, 'pgd' = PGD-k."""
    if cfg.method == "fgsm":
        return dict(eps=cfg.eps, steps=1, alpha=cfg.alpha or FAST_FGSM_ALPHA * cfg.eps,
                    norm=cfg.norm, random_start=cfg.random_start)
    if cfg.method == "pgd":
        return dict(eps=cfg.eps, steps=cfg.steps, alpha=cfg.alpha or default_alpha(cfg.eps, cfg.steps),
                    norm=cfg.norm, random_start=cfg.random_start)
    raise ValueError(f"adversarial.method {cfg.method!r} makes no attack")


def adversarial_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg,
                      loss_fn: Callable[..., torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """Attacked training images (N, C, H, W) in [0, 1] for the batch (x, y).

    cfg: AdversarialConfig; loss_fn(output, targets) -> loss, the training loss; gen: the step's
    generator, the only source of the random start.
    """
    net = unwrap(model)
    with buffers_restored(net):
        return pgd(net, x, y, loss_fn=loss_fn, generator=gen, **attack_settings(cfg))
