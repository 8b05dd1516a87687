"""Evaluation over a whole dataset: metrics accumulate, never per-batch averages."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.metrics.classification import ClassificationMeter


@torch.inference_mode()
def evaluate_classifier(model: nn.Module, dataset: Dataset, num_classes: int, device: torch.device,
                        batch_size: int = 512, workers: int = 0, progress: bool = True) -> ClassificationMeter:
    """Top-1, top-5, mean loss and the confusion matrix of `model` over `dataset`."""
    was_training = model.training
    model.eval()
    meter = ClassificationMeter(num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for x, y in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
        x, y = x.to(device), torch.as_tensor(y).to(device)
        logits = model(x)
        meter.update(logits, y, F.cross_entropy(logits.float(), y, reduction="sum").item())
    model.train(was_training)
    return meter
