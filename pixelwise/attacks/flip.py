"""The smallest budget that changes a model's prediction, image by image."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from pixelwise.attacks.gradient_attacks import run_attack
from pixelwise.errors import PixelwiseError


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


def attack_images(images: list[str], model: str, attack: str = "fgsm", norm: str = "linf",
                  eps_list: list[float] = (1 / 255,), steps: int = 10, target: str | None = None,
                  out_dir: str | Path = "adversarial") -> list[dict]:
    """Per image file, the smallest eps of eps_list that changes a pretrained model's prediction.

    target: a class name or index to reach (targeted attack). Untargeted FGSM also draws the panda
    slide of each image at its flipping eps (or the largest eps) into out_dir.
    """
    import torch

    from pixelwise.data.folders import read_image
    from pixelwise.models.pretrained import load_pretrained_classifier
    from pixelwise.attacks.figures import adversarial_example_figure
    net, classes, preprocess = load_pretrained_classifier(model)
    net.eval()
    target_index = None if target is None else _class_index(target, classes)
    batch = torch.stack([preprocess(read_image(p, "RGB")) for p in images])
    results = smallest_flipping_eps(net, batch, eps_list, attack=attack, norm=norm, steps=steps,
                                    target=target_index)
    out = []
    for path, x, r in zip(images, batch, results):
        row = {"image": str(path), "clean": classes[r["clean_class"]], "clean_confidence": r["clean_confidence"],
               "eps": r["eps"], "adversarial": None if r["adv_class"] is None else classes[r["adv_class"]],
               "adversarial_confidence": r["adv_confidence"]}
        if attack == "fgsm" and target_index is None and norm == "linf":
            eps = r["eps"] or max(eps_list)
            fig = adversarial_example_figure(net, x, classes, eps, Path(out_dir) / f"{Path(path).stem}_fgsm.png",
                                             title=f"{Path(path).name}, FGSM")
            row["figure"] = fig["figure"]
        out.append(row)
    return out


def _class_index(target: str, classes: list[str]) -> int:
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    matches = [i for i, c in enumerate(classes) if c.lower() == target.lower()]
    if not matches:
        raise PixelwiseError(f"--target: {target!r} is neither a class name nor an index below {len(classes)}")
    return matches[0]
