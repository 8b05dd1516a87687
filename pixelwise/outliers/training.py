"""Training with pasted negatives: the model's extra output, the batch with negatives, the joint loss."""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.data.paste import paste_negatives
from pixelwise.labels import IGNORE_INDEX
from pixelwise.models.outputs import SegmentationOutput


def outlier_model_kwargs(cfg, num_classes: int) -> dict:
    """Factory kwargs the outlier mode needs (cfg: OutliersConfig; num_classes: inlier classes K).

    two_heads: a separate binary outlier head; single_head: one more class, 'outlier', last.
    """
    if cfg.mode == "two_heads":
        return {"outlier_head": True}
    if cfg.mode == "single_head":
        return {"num_classes": num_classes + 1}
    return {}


@lru_cache(maxsize=2)
def _negatives(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    from pixelwise.data.fs_ood import load_negatives
    return load_negatives(source)


def add_negatives(x: torch.Tensor, masks: torch.Tensor, cfg, gen: torch.Generator, scale: float = 1.0
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Paste training negatives into a batch: x (N, C, H, W) in [0, 1], masks (N, H, W).

    Returns (x with negatives, (semantic masks with 255 on pasted pixels, outlier targets 0 / 1 / 255)).
    With cfg.jitter, objects get a random gain and offset (see paste_negatives). Object sides are
    cfg.min_size..max_size px times `scale` (FashionScenes: canvas size / 128, so that objects keep
    their size relative to the garments, also in random crops).
    """
    if cfg.min_count > cfg.max_count or cfg.min_size > cfg.max_size:
        raise PixelwiseError(f"outliers: min_count..max_count ({cfg.min_count}..{cfg.max_count}) and "
                             f"min_size..max_size ({cfg.min_size}..{cfg.max_size}) must be ranges with min <= max")
    negatives, shapes = _negatives(cfg.negatives)
    size = (max(2, round(cfg.min_size * scale)), max(2, round(cfg.max_size * scale)))
    x, masks, targets = paste_negatives(x, masks, negatives, gen, prob=cfg.paste_prob,
                                        count=(cfg.min_count, cfg.max_count), size=size, shapes=shapes,
                                        jitter=cfg.jitter)
    return x, (masks, targets)


def outlier_loss(output, target: tuple[torch.Tensor, torch.Tensor], cfg) -> torch.Tensor:
    """Semantic cross-entropy (pasted pixels ignored) + cfg.loss_weight x the outlier loss.

    two_heads: output SegmentationOutput(logits (N, K, H, W), outlier (N, 1, H, W)); the outlier loss is binary
    cross-entropy with logits over non-ignored pixels. single_head: output (N, K+1, H, W); pasted pixels
    are class K, and their cross-entropy terms carry weight cfg.loss_weight.
    """
    masks, targets = target
    masks, targets = masks.long(), targets.long()
    if cfg.mode == "two_heads":
        if not isinstance(output, SegmentationOutput):
            raise PixelwiseError("outliers.mode=two_heads: the model returns no outlier map; use a "
                                 "segmenter that takes outlier_head=True (e.g. swiftnet_rn18)")
        logits, outlier_logits = output
        semantic = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
        keep = targets != IGNORE_INDEX
        binary = F.binary_cross_entropy_with_logits(outlier_logits.float()[:, 0][keep], targets[keep].float())
        return semantic + cfg.loss_weight * binary
    k = output.shape[1] - 1
    labels = torch.where(targets == 1, k, masks)
    per_pixel = F.cross_entropy(output.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")
    weight = torch.where(targets == 1, cfg.loss_weight, 1.0) * (labels != IGNORE_INDEX)
    return (per_pixel * weight).sum() / (labels != IGNORE_INDEX).sum().clamp(min=1)
