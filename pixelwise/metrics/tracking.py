"""Multi-object tracking metrics: HOTA, CLEAR (MOTA, MOTP) and Identity (IDF1), as TrackEval defines them.

Inputs are MOT rows (N, >= 6) arrays, `frame,id,left,top,width,height,...` (pixelwise.data.mot), one
array per sequence; box similarity is IoU. The metrics are class-agnostic (every row is one object
class, as MOTChallenge's pedestrians) and use every row given: filter distractors or low-visibility
ground truth before. Per sequence we keep counts that add up; several sequences combine as
TrackEval combines them: HOTA from TP/FN/FP summed per alpha, with AssA, AssRe, AssPr and LocA
averaged weighted by TP; CLEAR and Identity from their summed counts.

- HOTA (Luiten et al., IJCV 2020): for each alpha in 0.05, 0.10, ..., 0.95, boxes are matched per
  frame by the Hungarian algorithm on IoU times the global alignment of their two tracks, pairs with
  IoU >= alpha count; DetA = TP / (TP + FN + FP), AssA = mean over TPs of the track-pair Jaccard
  TPA / (TPA + FNA + FPA), HOTA = sqrt(DetA AssA); reported values are means over alpha.
- CLEAR (Bernardin & Stiefelhagen 2008): IoU >= 0.5, matches of the previous frame kept first;
  MOTA = 1 - (FN + FP + IDSW) / GT, MOTP = mean IoU of matches (higher is better).
- Identity (Ristani et al. 2016): one global ground-truth-to-track assignment maximizing the frames
  matched at IoU >= 0.5; IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from pixelwise.data.mot import as_mot_rows
from pixelwise.errors import PixelwiseError

ALPHAS = np.arange(0.05, 0.99, 0.05)   # the 19 HOTA localization thresholds
THRESHOLD = 0.5                        # IoU threshold of CLEAR and Identity matches
_EPS = np.finfo(float).eps
_SUMMED = ("HOTA_TP", "HOTA_FN", "HOTA_FP", "AssA_w", "AssRe_w", "AssPr_w", "LocA_w",
           "TP", "FN", "FP", "IDSW", "MOTP_sum", "MT", "PT", "ML", "Frag", "IDTP", "IDFN", "IDFP")


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes a (N, 4) and b (M, 4) given as left, top, width, height."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = np.prod(a[:, 2:], 1)[:, None] + np.prod(b[:, 2:], 1)[None, :] - inter
    return np.where(union > _EPS, inter / np.where(union > _EPS, union, 1), 0.0)


def _frames(gt: np.ndarray, pred: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame (ascending): gt track indices, predicted track indices (0-based, dense) and IoU."""
    _, g_idx = np.unique(gt[:, 1], return_inverse=True)
    _, p_idx = np.unique(pred[:, 1], return_inverse=True)
    frames = []
    for f in np.union1d(gt[:, 0], pred[:, 0]):
        g, p = gt[:, 0] == f, pred[:, 0] == f
        for name, ids in (("ground truth", gt[g, 1]), ("prediction", pred[p, 1])):
            if len(np.unique(ids)) < len(ids):
                raise PixelwiseError(f"{name} of frame {int(f)} holds an id twice; give one box per id and frame")
        frames.append((g_idx[g], p_idx[p], box_iou_xywh(gt[g, 2:6], pred[p, 2:6])))
    return frames


def _hota_counts(frames, n_gt: int, n_pred: int) -> dict[str, np.ndarray]:
    gt_count, pred_count = np.zeros(n_gt), np.zeros(n_pred)
    overlap = np.zeros((n_gt, n_pred))   # soft count of frames each track pair overlaps
    for g, p, iou in frames:
        denom = iou.sum(0)[None, :] + iou.sum(1)[:, None] - iou
        overlap[g[:, None], p[None, :]] += np.where(denom > _EPS, iou / np.where(denom > _EPS, denom, 1), 0)
        gt_count[g] += 1
        pred_count[p] += 1
    alignment = overlap / np.maximum(gt_count[:, None] + pred_count[None, :] - overlap, _EPS)
    a = len(ALPHAS)
    tp, fn, fp, loc = np.zeros(a), np.zeros(a), np.zeros(a), np.zeros(a)
    pair_tp = np.zeros((a, n_gt, n_pred))
    for g, p, iou in frames:
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], p[None, :]] * iou))
        for k, alpha in enumerate(ALPHAS):
            ok = iou[rows, cols] >= alpha - _EPS
            tp[k] += ok.sum()
            fn[k] += len(g) - ok.sum()
            fp[k] += len(p) - ok.sum()
            loc[k] += iou[rows[ok], cols[ok]].sum()
            pair_tp[k, g[rows[ok]], p[cols[ok]]] += 1
    union = np.maximum(1, gt_count[None, :, None] + pred_count[None, None, :] - pair_tp)
    weighted = {"AssA_w": (pair_tp * pair_tp / union).sum((1, 2)),
                "AssRe_w": (pair_tp * pair_tp / np.maximum(1, gt_count)[None, :, None]).sum((1, 2)),
                "AssPr_w": (pair_tp * pair_tp / np.maximum(1, pred_count)[None, None, :]).sum((1, 2))}
    return {"HOTA_TP": tp, "HOTA_FN": fn, "HOTA_FP": fp, "LocA_w": loc, **weighted}


def _clear_counts(frames, n_gt: int) -> dict[str, float]:
    tp = fn = fp = idsw = 0
    motp_sum = 0.0
    last = np.full(n_gt, -1)          # track last matched to each gt, any frame before
    previous = np.full(n_gt, -1)      # track matched to each gt in the previous frame
    seen, matched, starts = np.zeros(n_gt), np.zeros(n_gt), np.zeros(n_gt)
    for g, p, iou in frames:
        seen[g] += 1
        if len(g) == 0 or len(p) == 0:
            # As TrackEval: a frame without ground truth or without predictions leaves the previous
            # frame's matches in place for continuing tracks (no fragment, no switch preference lost).
            fn, fp = fn + len(g), fp + len(p)
            continue
        score = np.where(iou >= THRESHOLD - _EPS, 1000.0 * (p[None, :] == previous[g][:, None]) + iou, 0.0)
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > _EPS
        rows, cols = rows[ok], cols[ok]
        mg, mp = g[rows], p[cols]
        idsw += int(((last[mg] >= 0) & (last[mg] != mp)).sum())
        starts[mg] += previous[mg] < 0
        matched[mg] += 1
        last[mg] = mp
        previous[:] = -1
        previous[mg] = mp
        tp, fn, fp = tp + len(mg), fn + len(g) - len(mg), fp + len(p) - len(mg)
        motp_sum += float(iou[rows, cols].sum())
    ratio = matched[seen > 0] / seen[seen > 0]
    mt, pt = int((ratio > 0.8).sum()), int(((ratio >= 0.2) & (ratio <= 0.8)).sum())
    return {"TP": tp, "FN": fn, "FP": fp, "IDSW": idsw, "MOTP_sum": motp_sum, "MT": mt, "PT": pt,
            "ML": n_gt - mt - pt, "Frag": int(np.clip(starts - 1, 0, None).sum())}


def _identity_counts(frames, n_gt: int, n_pred: int) -> dict[str, int]:
    together = np.zeros((n_gt, n_pred))   # frames each track pair is matched at IoU >= threshold
    n_gt_boxes = n_pred_boxes = 0
    for g, p, iou in frames:
        r, c = np.nonzero(iou >= THRESHOLD)
        np.add.at(together, (g[r], p[c]), 1)
        n_gt_boxes, n_pred_boxes = n_gt_boxes + len(g), n_pred_boxes + len(p)
    rows, cols = linear_sum_assignment(together, maximize=True)
    idtp = int(together[rows, cols].sum())
    return {"IDTP": idtp, "IDFN": n_gt_boxes - idtp, "IDFP": n_pred_boxes - idtp}


class TrackingMeter:
    """Accumulates tracking counts over sequences; `summary()` gives the combined metrics.

    update(gt_rows, pred_rows): one sequence's MOT rows, (N, >= 6) and (M, >= 6) arrays.
    """

    def __init__(self):
        self.counts = {k: np.zeros(len(ALPHAS)) if k.startswith(("HOTA", "AssA", "AssRe", "AssPr", "LocA"))
                       else 0 for k in _SUMMED}
        self.sequences = 0

    def update(self, gt_rows, pred_rows) -> None:
        gt, pred = as_mot_rows(gt_rows, "ground truth rows"), as_mot_rows(pred_rows, "predicted rows")
        n_gt, n_pred = len(np.unique(gt[:, 1])), len(np.unique(pred[:, 1]))
        frames = _frames(gt, pred)
        for part in (_hota_counts(frames, n_gt, n_pred), _clear_counts(frames, n_gt),
                     _identity_counts(frames, n_gt, n_pred)):
            for k, v in part.items():
                self.counts[k] = self.counts[k] + v
        self.sequences += 1

    def merge(self, other: "TrackingMeter") -> None:
        for k in _SUMMED:
            self.counts[k] = self.counts[k] + other.counts[k]
        self.sequences += other.sequences

    def summary(self) -> dict:
        """HOTA, DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr (means over alpha; per alpha in
        `*_alpha` lists), MOTA, MOTP, MODA, IDF1, IDP, IDR, and the counts IDSW, FP, FN, TP, IDTP,
        IDFP, IDFN, MT, PT, ML, Frag, GT (ground-truth boxes)."""
        c = self.counts
        tp, fn, fp = c["HOTA_TP"], c["HOTA_FN"], c["HOTA_FP"]
        per_alpha = {"DetA": tp / np.maximum(1, tp + fn + fp), "DetRe": tp / np.maximum(1, tp + fn),
                     "DetPr": tp / np.maximum(1, tp + fp), "AssA": c["AssA_w"] / np.maximum(1, tp),
                     "AssRe": c["AssRe_w"] / np.maximum(1, tp), "AssPr": c["AssPr_w"] / np.maximum(1, tp),
                     "LocA": np.where(tp > 0, c["LocA_w"] / np.maximum(1, tp), 1.0)}   # 1 without matches, as TrackEval
        per_alpha["HOTA"] = np.sqrt(per_alpha["DetA"] * per_alpha["AssA"])
        out: dict = {k: float(v.mean()) for k, v in per_alpha.items()}
        out.update({f"{k}_alpha": v.tolist() for k, v in per_alpha.items()})
        gt = c["TP"] + c["FN"]
        out["MOTA"] = (c["TP"] - c["FP"] - c["IDSW"]) / max(1, gt)
        out["MODA"] = (c["TP"] - c["FP"]) / max(1, gt)
        out["MOTP"] = c["MOTP_sum"] / max(1, c["TP"])
        idtp, idfn, idfp = c["IDTP"], c["IDFN"], c["IDFP"]
        out["IDF1"] = idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn)
        out["IDP"], out["IDR"] = idtp / max(1, idtp + idfp), idtp / max(1, idtp + idfn)
        out.update({k: int(c[k]) for k in ("IDSW", "FP", "FN", "TP", "IDTP", "IDFP", "IDFN", "MT", "PT",
                                           "ML", "Frag")})
        out["GT"], out["sequences"] = int(gt), self.sequences
        return out


def tracking_metrics(gt_rows, pred_rows) -> dict:
    """Tracking metrics of one sequence (two (N, >= 6) MOT row arrays) or of several (two equally long
    lists of such arrays, paired by position), combined as TrackEval does; see `TrackingMeter.summary`.
    """
    if isinstance(gt_rows, np.ndarray) != isinstance(pred_rows, np.ndarray):
        raise PixelwiseError("tracking_metrics: pass one array each (one sequence) or two lists of arrays "
                             "(one per sequence), not a mix")
    if isinstance(gt_rows, np.ndarray):
        gt_rows, pred_rows = [gt_rows], [pred_rows]
    if not isinstance(gt_rows, Sequence) or len(gt_rows) != len(pred_rows):
        raise PixelwiseError(f"tracking_metrics: need as many predicted sequences as ground-truth ones, got "
                             f"{len(gt_rows)} and {len(pred_rows)}")
    meter = TrackingMeter()
    for gt, pred in zip(gt_rows, pred_rows):
        meter.update(gt, pred)
    return meter.summary()
