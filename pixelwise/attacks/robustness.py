"""Robustness evaluation: clean and robust accuracy (mIoU for segmenters) over a list of budgets."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.attacks.gradient_attacks import run_attack
from pixelwise.labels import IGNORE_INDEX
from pixelwise.metrics.classification import confusion_matrix
from pixelwise.metrics.segmentation import mean_iou, pixel_accuracy
from pixelwise.models.outputs import logits_of


def robustness_curve(model: nn.Module, dataset: Dataset, num_classes: int, eps_list: Sequence[float],
                     attack: str = "pgd", norm: str = "linf", steps: int = 10, alpha: float | None = None,
                     random_start: bool = False, batch_size: int = 256, limit: int | None = None,
                     device: str | torch.device = "cpu", seed: int = 0, progress: bool = True) -> list[dict]:
    """Accuracy (and mIoU for segmenters) of `model` in eval mode under `attack` at each budget.

    dataset: (image (C, H, W) float in [0, 1], label or mask (H, W) with 255 = ignore) pairs; the
    first `limit` items are used. eps 0 is the clean accuracy. Every budget attacks the same
    images, so the rows compare. Returns one dict per eps: eps, accuracy, miou (segmenters), n.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    if limit is not None and limit < len(dataset):
        dataset = torch.utils.data.Subset(dataset, range(limit))
    gen = torch.Generator().manual_seed(seed)
    cms: dict[float, torch.Tensor] = {float(e): torch.zeros(num_classes, num_classes, dtype=torch.int64)
                                      for e in eps_list}
    dense, n = False, 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for x, y in tqdm(loader, desc=f"{attack} {norm}", leave=False, disable=not progress or None):
        x, y = x.to(device), torch.as_tensor(y).to(device)
        dense, n = y.ndim == 3, n + len(y)
        for eps in cms:
            adv = x if eps == 0 else run_attack(attack, model, x, y, eps, norm=norm, steps=steps,
                                                alpha=alpha, random_start=random_start, generator=gen)
            with torch.inference_mode():
                preds = logits_of(model(adv)).argmax(1)
            cms[eps] += confusion_matrix(preds.cpu(), y.cpu(), num_classes,
                                         ignore_index=IGNORE_INDEX if dense else None)
    model.train(was_training)
    rows = []
    for eps, cm in cms.items():
        row = {"attack": attack if eps else "none", "norm": norm, "steps": steps if attack == "pgd" else 1,
               "eps": eps, "accuracy": pixel_accuracy(cm), "n": n}
        if dense:
            row["miou"] = mean_iou(cm)
        rows.append(row)
    return rows


def robustness_table(rows: Sequence[dict]) -> str:
    """A Markdown table of robustness rows (as robustness_curve returns)."""
    dense = any("miou" in r for r in rows)
    head = "| attack | norm | steps | eps | eps x 255 | accuracy |" + (" mIoU |" if dense else "")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['attack']} | {r['norm']} | {r['steps']} | {r['eps']:.4g} | {r['eps'] * 255:.3g} "
                f"| {r['accuracy']:.4f} |")
        lines.append(line + (f" {r['miou']:.4f} |" if dense else ""))
    return "\n".join(lines) + "\n"


def plot_robustness_curve(curves: dict[str, Sequence[dict]], path: str | Path, title: str = "") -> Path:
    """Accuracy (mIoU for segmenters) against eps, one line per named list of rows; saved as PNG."""
    from pixelwise.viz.figures import plot_curves
    metric = "miou" if any("miou" in r for rows in curves.values() for r in rows) else "accuracy"
    series = {name: ([r["eps"] for r in rows], [r[metric] for r in rows]) for name, rows in curves.items()}
    return plot_curves(series, path, xlabel="eps (pixel units of [0, 1] images)",
                       ylabel="mIoU" if metric == "miou" else "accuracy", title=title)
