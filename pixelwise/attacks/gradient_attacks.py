"""Gradient attacks on raw images in [0, 1]: FGSM and projected gradient descent (PGD).

Normalization lives inside the model, so the budget is in pixel units of the [0, 1] image. Attacks
leave the model's mode alone: put it in eval mode to attack the deployed model.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from pixelwise.attacks.budgets import check_norm, project, random_delta, steepest_ascent
from pixelwise.attacks.losses import attack_loss
from pixelwise.errors import PixelwiseError

LossFn = Callable[..., torch.Tensor]


def default_alpha(eps: float, steps: int) -> float:
    """Madry et al.'s step size: 2.5 eps / steps, so that the iterates can cross the whole ball."""
    return 2.5 * eps / steps


def input_gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                   loss_fn: LossFn = attack_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """(d loss / d images, per-sample or scalar loss) at `images` (N, C, H, W) float in [0, 1].

    Per-sample losses (N,) are summed before differentiating, so each image's gradient does not
    depend on the others; a scalar (mean-reduced) loss is multiplied by N.
    """
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(model(x), targets)
        # A mean-reduced loss becomes a sum: same direction, but low-precision gradients do not underflow.
        total = loss.sum() if loss.ndim else loss * len(x)
        grad, = torch.autograd.grad(total, x)
    return grad, loss.detach()


def pgd(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, eps: float,
        alpha: float | None = None, steps: int = 10, norm: str = "linf", random_start: bool = False,
        targeted: bool = False, loss_fn: LossFn = attack_loss,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss within an eps-ball around each image (Madry et al. 2018).

    images: (N, C, H, W) float in [0, 1]; targets: (N,) labels or (N, H, W) masks (255 = ignore),
    the true ones, or with `targeted` the ones to reach (the loss is then descended).
    eps: budget in [0, 1] pixel units (L-inf: per value; L2: per image). alpha: step size
    (default 2.5 eps / steps). random_start: begin at a random point of the ball drawn from
    `generator`. loss_fn(output, targets) -> (N,) or scalar loss.
    Returns the adversarial images (N, C, H, W), detached, in [0, 1] and within the budget.
    """
    check_norm(norm)
    if not images.is_floating_point() or images.ndim != 4:
        raise PixelwiseError(f"attack: images must be float (N, C, H, W) in [0, 1], got "
                             f"{images.dtype} {tuple(images.shape)}")
    clean = images.detach()
    if eps == 0:
        return clean.clone()
    if eps < 0 or steps < 1 or (alpha is not None and alpha <= 0):
        raise PixelwiseError(f"attack: need eps >= 0, steps >= 1 and alpha > 0; got eps={eps}, "
                             f"steps={steps}, alpha={alpha}")
    alpha = default_alpha(eps, steps) if alpha is None else alpha
    adv = clean.clone()
    if random_start:
        start = random_delta(clean.shape, eps, norm, generator).to(clean.device, clean.dtype)
        adv = (clean + start).clamp(0, 1)
    for _ in range(steps):
        grad, _ = input_gradient(model, adv, targets, loss_fn)
        direction = steepest_ascent(grad, norm)
        adv = adv + (-alpha if targeted else alpha) * direction
        # Clipping to [0, 1] after the projection only shrinks the perturbation: both constraints hold.
        adv = (clean + project(adv - clean, eps, norm)).clamp(0, 1)
    return adv.detach()


def fgsm(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, eps: float,
         norm: str = "linf", targeted: bool = False, loss_fn: LossFn = attack_loss,
         random_start: bool = False, alpha: float | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """The fast gradient sign method: one step x + eps * sign(grad_x loss) (Goodfellow et al. 2015).

    norm 'l2' takes the step eps * g / ||g||_2 instead (the fast gradient method). With random_start
    and alpha = 1.25 eps this is the 'fast FGSM' of Wong et al. 2020. Shapes as in `pgd`.
    """
    return pgd(model, images, targets, eps, alpha=eps if alpha is None else alpha, steps=1, norm=norm,
               random_start=random_start, targeted=targeted, loss_fn=loss_fn, generator=generator)


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def run_attack(name: str, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, eps: float,
               norm: str = "linf", steps: int = 10, alpha: float | None = None,
               random_start: bool = False, targeted: bool = False, loss_fn: LossFn = attack_loss,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The attack called `name` ('fgsm' or 'pgd'); `steps` is used by PGD only."""
    if name not in ATTACKS:
        raise PixelwiseError(f"attack: unknown attack {name!r}; use one of {', '.join(ATTACKS)}")
    kw = dict(norm=norm, alpha=alpha, random_start=random_start, targeted=targeted, loss_fn=loss_fn,
              generator=generator)
    if name == "pgd":
        kw["steps"] = steps
    return ATTACKS[name](model, images, targets, eps, **kw)
