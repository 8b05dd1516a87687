"""The smallest budget that changes a model's prediction, image by image."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from pixelwise.attacks.gradient_attacks import run_attack


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(class index (N,), softmax confidence (N,)) of a classifier for images (N, C, H, W) in [0, 1]."""
    probs = model(images).float().softmax(1)
    conf, idx = probs.max(1)
    return idx, conf


def smallest_flipping_eps(model: nn.Module, images: torch.Tensor, eps_list: Sequence[float],
                          attack: str = "fgsm", norm: str = "linf", steps: int = 10,
                          target: int | None = None) -> list[dict]:
    """For each image, the smallest eps of `eps_list` at which the attack changes the prediction.

    model: a classifier in eval mode; images (N, C, H, W) float in [0, 1]. Untargeted attacks push
    away from the clean prediction; with `target` (a class index) the attack is targeted and only
    reaching that class counts. Returns per image: clean class and confidence, and `eps` (None when
    no budget of the list flips it) with the adversarial class and confidence at that eps.
    """
    clean, conf = predict(model, images)
    targeted = target is not None
    labels = torch.full_like(clean, target) if targeted else clean
    results = [{"clean_class": int(c), "clean_confidence": float(p), "eps": None,
                "adv_class": None, "adv_confidence": None} for c, p in zip(clean, conf)]
    for eps in sorted(float(e) for e in eps_list if e > 0):
        todo = [i for i, r in enumerate(results) if r["eps"] is None]
        if not todo:
            break
        adv = run_attack(attack, model, images[todo], labels[todo], eps, norm=norm, steps=steps,
                         targeted=targeted)
        cls, p = predict(model, adv)
        flipped = cls == labels[todo] if targeted else cls != clean[todo]
        for i, f, c, q in zip(todo, flipped.tolist(), cls.tolist(), p.tolist()):
            if f:
                results[i].update(eps=eps, adv_class=c, adv_confidence=q)
    return results
