"""Retrieval metrics of embeddings: rank-1 accuracy and mean average precision (re-identification's).

Queries are ranked against a gallery by cosine similarity. Rank-1: the share of queries whose most
similar gallery item has their identity. AP of one query is scikit-learn's average_precision_score
over the gallery (precision at each relevant item, averaged over the relevant items); mAP averages
it over queries that have at least one relevant gallery item (the others count in neither figure).
"""
from __future__ import annotations

import numpy as np
import torch

from pixelwise.errors import PixelwiseError


def average_precision(relevant: np.ndarray, scores: np.ndarray) -> float:
    """AP of one ranking: relevant (M,) bool, scores (M,) float (higher = more similar).

    Equal scores are ranked as one block, as scikit-learn's average_precision_score ranks them."""
    relevant, scores = np.asarray(relevant, bool), np.asarray(scores, np.float64)
    if not relevant.any():
        raise PixelwiseError("average_precision: no relevant item in the gallery")
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], relevant[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]        # end of each block of equal scores
    tp = np.cumsum(r)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / r.sum()
    return float((precision * recall_gain).sum())


def retrieval_metrics(query: torch.Tensor, query_ids: torch.Tensor, gallery: torch.Tensor,
                      gallery_ids: torch.Tensor) -> dict[str, float]:
    """rank1 and mAP of queries (Q, D) with identities (Q,) against a gallery (G, D), (G,).

    Embeddings need not be normalized: similarity is the cosine. Also returns the number of
    queries scored (`queries`, those with a relevant gallery item) and the gallery size.
    """
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise PixelwiseError(f"retrieval: queries (Q, D) and gallery (G, D) of one D, got {tuple(query.shape)} "
                             f"and {tuple(gallery.shape)}")
    q = torch.nn.functional.normalize(query.double(), dim=1)
    g = torch.nn.functional.normalize(gallery.double(), dim=1)
    sim = (q @ g.T).numpy()
    qi, gi = np.asarray(query_ids), np.asarray(gallery_ids)
    rank1, aps = [], []
    for k in range(len(qi)):
        relevant = gi == qi[k]
        if not relevant.any():
            continue
        rank1.append(bool(relevant[np.argmax(sim[k])]))
        aps.append(average_precision(relevant, sim[k]))
    return {"rank1": float(np.mean(rank1)) if rank1 else 0.0, "mAP": float(np.mean(aps)) if aps else 0.0,
            "queries": len(aps), "gallery": int(len(gi))}


class RetrievalMeter:
    """Embeddings of a whole test set gathered batch by batch; `summary()` scores its queries against
    its gallery (roles pixelwise.data.fs_identities.QUERY / GALLERY; other roles are left out)."""

    def __init__(self, query_role: int = 1, gallery_role: int = 0):
        self.query_role, self.gallery_role = query_role, gallery_role
        self.embeddings, self.ids, self.roles = [], [], []

    def update(self, embeddings: torch.Tensor, ids: torch.Tensor, roles: torch.Tensor) -> None:
        """embeddings (N, D), ids (N,) identities, roles (N,)."""
        self.embeddings.append(embeddings.detach().float().cpu())
        self.ids.append(torch.as_tensor(ids).cpu())
        self.roles.append(torch.as_tensor(roles).cpu())

    def summary(self) -> dict[str, float]:
        if not self.embeddings:
            return {"rank1": 0.0, "mAP": 0.0, "queries": 0, "gallery": 0}
        e, i, r = torch.cat(self.embeddings), torch.cat(self.ids), torch.cat(self.roles)
        q, g = r == self.query_role, r == self.gallery_role
        return retrieval_metrics(e[q], i[q], e[g], i[g])
