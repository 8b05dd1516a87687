"""Per-pixel outlier scores of a segmenter's output; every score is 'higher = more outlier'.

Baselines work on any segmenter's logits (N, K, H, W); the outlier-head score needs a model trained
with one (two heads: a separate logit map; single head: a (K+1)-th 'outlier' class).
"""
from __future__ import annotations

import torch

from pixelwise.models.outputs import SegmentationOutput

BASELINES = ("max_softmax", "entropy", "max_logit")


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """-log of the highest class probability: (N, K, H, W) -> (N, H, W) in [0, log K].

    Ranks pixels exactly as 1 - max-softmax does, without float32 probabilities near 1 collapsing
    into ties.
    """
    logits = logits.float()
    return logits.logsumexp(1) - logits.amax(1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the class distribution in nats: (N, K, H, W) -> (N, H, W) in [0, log K]."""
    logp = logits.float().log_softmax(1)
    return -(logp.exp() * logp).sum(1)


def max_logit(logits: torch.Tensor) -> torch.Tensor:
    """Minus the highest logit (Hendrycks et al., 2022): (N, K, H, W) -> (N, H, W)."""
    return -logits.float().amax(1)


def outlier_head(outlier_logits: torch.Tensor) -> torch.Tensor:
    """The outlier head's logit: (N, 1, H, W) -> (N, H, W); sigmoid of it is P(outlier)."""
    return outlier_logits.float()[:, 0]


def outlier_class(logits: torch.Tensor) -> torch.Tensor:
    """Single-head model: log-probability of the last ('outlier') class, (N, K+1, H, W) -> (N, H, W)."""
    return logits.float().log_softmax(1)[:, -1]


def split_output(output, mode: str = "none") -> tuple[torch.Tensor, torch.Tensor | None]:
    """A segmenter's output -> (semantic logits (N, K, H, W) over the inlier classes, outlier score or None).

    mode: 'none' (plain logits), 'two_heads' (a SegmentationOutput) or 'single_head' (logits whose
    last class is 'outlier').
    """
    if isinstance(output, SegmentationOutput):
        return output.logits, outlier_head(output.outlier)
    if mode == "single_head":
        return output[:, :-1], outlier_class(output)
    return output, None


def outlier_scores(output, mode: str = "none") -> dict[str, torch.Tensor]:
    """Every score this output allows: the baselines on the inlier logits and, where trained, 'outlier_head'.

    Returns name -> (N, H, W) float, higher = more outlier.
    """
    logits, head = split_output(output, mode)
    scores = {"max_softmax": max_softmax(logits), "entropy": entropy(logits), "max_logit": max_logit(logits)}
    if head is not None:
        scores["outlier_head"] = head
    return scores


def outlier_probability(output, mode: str = "none") -> torch.Tensor:
    """A displayable outlier map (N, H, W) in [0, 1]: sigmoid of the outlier head (two heads), the
    'outlier' class probability (single head), or 1 - max-softmax (a model without either)."""
    logits, head = split_output(output, mode)
    if head is None:
        return 1 - logits.float().softmax(1).amax(1)
    return head.exp() if mode == "single_head" else head.sigmoid()


def run_outlier_mode(config: dict) -> str | None:
    """The outliers.mode of a run's config.json; None for runs that are not about outliers."""
    train_config = config.get("train_config", {})
    mode = train_config.get("outliers", {}).get("mode", "none")
    if mode == "none" and train_config.get("data", {}).get("name") != "fs_ood":
        return None
    return mode
