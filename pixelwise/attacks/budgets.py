"""Geometry of perturbation budgets: L-infinity and L2 balls around each image of a batch."""
from __future__ import annotations

import torch

from pixelwise.errors import PixelwiseError

NORMS = ("linf", "l2")


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise PixelwiseError(f"norm: unknown perturbation norm {norm!r}; use one of {', '.join(NORMS)}")


def per_sample_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """The norm of each sample of (N, ...) -> (N,)."""
    flat = x.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(p=2, dim=1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The unit-norm direction that increases a linearized loss the most: sign(g) or g / ||g||_2."""
    if norm == "linf":
        return grad.sign()
    # The tiny constant keeps a zero gradient at a zero step instead of NaN.
    return grad / _per_sample(per_sample_norm(grad, "l2") + 1e-10, grad)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The nearest point of the eps-ball to each perturbation (clamp for L-inf, rescale for L2)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    scale = (eps / per_sample_norm(delta, "l2")).clamp(max=1.0)  # inf for a zero delta -> 1
    return delta * _per_sample(scale, delta)


def random_delta(shape: torch.Size, eps: float, norm: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random start inside the eps-ball, drawn only from `generator` (on its device).

    L-inf: uniform in [-eps, eps] per value. L2: a uniformly random direction at a radius uniform in
    [0, eps] (the start torchattacks and Madry et al. use).
    """
    device = generator.device if generator is not None else "cpu"
    if norm == "linf":
        return (torch.rand(shape, generator=generator, device=device) * 2 - 1) * eps
    direction = torch.randn(shape, generator=generator, device=device)
    radius = torch.rand(shape[0], generator=generator, device=device) * eps
    return direction * _per_sample(radius / per_sample_norm(direction, "l2").clamp(min=1e-12), direction)
