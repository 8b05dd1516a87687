"""Per-sample losses that attacks climb: cross-entropy for classifiers, ignore-aware for segmenters."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.models.outputs import logits_of
from pixelwise.labels import IGNORE_INDEX



def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each sample: logits (N, K), targets (N,) class indices -> (N,)."""
    return F.cross_entropy(logits.float(), targets.long(), reduction="none")


def dense_loss(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean per-pixel cross-entropy of each image over its labelled pixels -> (N,).

    logits: (N, K, H, W); masks: (N, H, W) int with `ignore_index` for unlabelled pixels. Ignored
    pixels add nothing to the loss and get no gradient; an image without labelled pixels has loss 0.
    Averaging per image (not per batch) keeps each image's gradient independent of the others.
    """
    masks = masks.long()
    pixel = F.cross_entropy(logits.float(), masks, ignore_index=ignore_index, reduction="none")
    valid = (masks != ignore_index).flatten(1).sum(1).clamp(min=1)
    return pixel.flatten(1).sum(1) / valid


def attack_loss(output, targets: torch.Tensor) -> torch.Tensor:
    """The loss of a model output, chosen by its shape: (N, K) logits or (N, K, H, W) logit maps.

    A segmenter's SegmentationOutput is attacked through its class logits.
    """
    logits = logits_of(output)
    if logits.ndim == 4:
        return dense_loss(logits, targets)
    return classification_loss(logits, targets)
