"""What differs between tasks, in one place: batch preparation, loss, evaluation and the report.

The training loop in train.py calls these four functions and nothing else task-specific.
Classification: targets (N,) class indices. Segmentation: targets (N, H, W) with 255 = ignore.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from pixelwise.engine.checkpoint import write_json

IGNORE_INDEX = 255


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched augmentation drawn from `gen`: 'crop_flip' = random crop of the `pad`-padded image, h-flip."""
    if kind == "none":
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)           # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None])
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(x.device)  # (n, w)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def prepare_batch(batch, cfg, task: str, device: torch.device, gen: torch.Generator):
    """A loader batch -> (inputs (N, C, H, W) in [0, 1], targets) on `device`; random draws from `gen`."""
    x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
    if task == "classification":
        x = augment_batch(x, cfg.data.augment, gen, cfg.data.crop_padding)
    if task == "segmentation" and cfg.outliers.mode != "none":
        from pixelwise.outliers.training import add_negatives
        scale = cfg.data.canvas_size / 128 if cfg.data.name in ("fs_ood", "fashion_scenes") else 1.0
        x, y = add_negatives(x, y, cfg.outliers, gen, scale)   # y: (semantic masks, outlier targets)
    return x, y


def compute_loss(output, target, cfg, task: str) -> torch.Tensor:
    """The training loss of a model output against the prepared targets."""
    if task == "segmentation" and cfg.outliers.mode != "none":
        from pixelwise.outliers.training import outlier_loss
        return outlier_loss(output, target, cfg.outliers)
    if task == "classification":
        return F.cross_entropy(output, target, label_smoothing=cfg.label_smoothing)
    return F.cross_entropy(output, target.long(), ignore_index=IGNORE_INDEX)


def evaluate(model: nn.Module, dataset: Dataset, cfg, task: str, num_classes: int,
             device: torch.device, progress: bool = True):
    """A meter accumulated over the whole dataset; `.summary()` gives its metrics as a dict."""
    if task == "classification":
        from pixelwise.engine.evaluate import evaluate_classifier
        return evaluate_classifier(model, dataset, num_classes, device, cfg.eval_batch_size,
                                   workers=cfg.data.workers, progress=progress)
    if task == "segmentation" and (cfg.data.name == "fs_ood" or cfg.outliers.mode != "none"):
        from pixelwise.outliers.evaluate import evaluate_outliers
        return evaluate_outliers(model, dataset, num_classes, cfg.outliers.mode, device, cfg.eval_batch_size,
                                 workers=cfg.data.workers, progress=progress)
    if task == "segmentation":
        from pixelwise.engine.inference import evaluate_segmenter
        return evaluate_segmenter(model, dataset, num_classes, device, cfg.eval_batch_size,
                                  workers=cfg.data.workers, progress=progress, window=cfg.data.eval_window,
                                  scales=cfg.data.eval_scales, flip=cfg.data.eval_flip)
    raise NotImplementedError(f"evaluation of task {task!r}")


def write_report(meter, classes: list[str], run_dir: Path, task: str) -> dict:
    """Tables and figures of a finished evaluation in `run_dir`; returns the metrics written."""
    if task == "classification":
        from pixelwise.viz.figures import plot_confusion_matrix
        write_json(run_dir / "confusion_matrix.json", {"classes": classes, "matrix": meter.cm.tolist()})
        plot_confusion_matrix(meter.cm, classes, run_dir / "confusion_matrix.png")
        return meter.summary()
    if task == "segmentation" and hasattr(meter, "precision_recall"):   # an outlier evaluation
        from pixelwise.outliers.evaluate import write_outlier_report
        return write_outlier_report(meter, classes, run_dir)
    if task == "segmentation":
        from pixelwise.engine.inference import write_segmentation_report
        return write_segmentation_report(meter, classes, run_dir, title=run_dir.name)
    raise NotImplementedError(f"report of task {task!r}")
