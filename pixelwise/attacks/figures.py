"""The lecture's panda slide: image + eps * sign(gradient) = adversarial image, with predictions."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def _show(ax, image: torch.Tensor) -> None:
    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])


def plot_adversarial_example(image: torch.Tensor, gradient_sign: torch.Tensor, adversarial: torch.Tensor,
                             captions: Sequence[str], eps: float, path: str | Path, title: str = "") -> Path:
    """Three panels x, sign(grad_x J), x + eps sign(grad_x J) with a caption under each; saved as PNG.

    image, adversarial: (C, H, W) float in [0, 1]; gradient_sign: (C, H, W) in {-1, 0, 1}, shown
    mapped to [0, 1] (grey = 0); C is 1 or 3.
    """
    fig, axes = plt.subplots(1, 3, figsize=(10, 4))
    for ax, img, caption in zip(axes, (image, (gradient_sign + 1) / 2, adversarial), captions):
        _show(ax, img)
        ax.set_xlabel(caption, fontsize=10)
    axes[0].set_title("x")
    axes[1].set_title(r"sign($\nabla_x J(\theta, x, y)$)")
    axes[2].set_title(r"x + $\epsilon$ sign($\nabla_x J(\theta, x, y)$)")
    fig.tight_layout(w_pad=5, rect=(0, 0, 1, 0.93))
    for left, right, symbol in ((axes[0], axes[1], r"+ $\epsilon$ $\times$"), (axes[1], axes[2], "=")):
        x = (left.get_position().x1 + right.get_position().x0) / 2
        fig.text(x, 0.5, symbol, ha="center", va="center", fontsize=14)
    fig.suptitle(f"{title + ', ' if title else ''}$\\epsilon$ = {eps:.4g} = {eps * 255:.3g}/255")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def adversarial_example_figure(model: nn.Module, image: torch.Tensor, classes: Sequence[str], eps: float,
                               path: str | Path, label: int | None = None, title: str = "") -> dict:
    """FGSM on one image (C, H, W) in [0, 1] against `model` (eval mode), drawn as the panda slide.

    label: the class the gradient is taken for (default: the clean prediction). The middle panel's
    caption is the model's reading of the sign image itself, as on the slide. Returns the three
    (class, confidence) pairs and the figure path.
    """
    from pixelwise.attacks.flip import predict
    from pixelwise.attacks.gradient_attacks import fgsm, input_gradient
    x = image.unsqueeze(0)
    clean, _ = predict(model, x)
    y = clean if label is None else torch.tensor([label], device=x.device)
    grad, _ = input_gradient(model, x, y)
    sign = grad.sign()
    adv = fgsm(model, x, y, eps)
    cls, conf = predict(model, torch.cat([x, (sign + 1) / 2, adv]))
    panels = [{"class": classes[c], "index": int(c), "confidence": float(p)}
              for c, p in zip(cls.tolist(), conf.tolist())]
    captions = [f"{p['class']}\n{p['confidence']:.1%} confidence" for p in panels]
    plot_adversarial_example(image, sign[0], adv[0], captions, eps, path, title)
    return {"image": panels[0], "gradient_sign": panels[1], "adversarial": panels[2], "eps": eps,
            "figure": str(path)}
