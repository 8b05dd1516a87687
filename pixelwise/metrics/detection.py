"""COCO box detection metrics: AP@[.5:.95], AP50, AP75, AR@1/10/100 and by object size, as pycocotools.

`coco_map` follows the definition of pycocotools' COCOeval (iouType 'bbox', one category at a time)
to the last rounding, and the tests compare every number with COCOeval itself:

- Per image and class, detections are sorted by score, highest first, with ties kept in input
  order (a stable sort), and only the first max_dets[-1] are evaluated.
- IoU is computed on (x, y, w, h) boxes without the +1 pixel of old PASCAL code; against a crowd
  box it is intersection over the detection's area, so any number of detections inside a crowd
  region match it.
- Greedy matching, for each IoU threshold t: each detection in score order takes the
  not-yet-matched ground truth of highest IoU >= t (ties go to the later box), preferring boxes
  that count over ignored ones (crowd, or area outside the range evaluated). A detection matched to
  an ignored box, or unmatched with its own area outside the range, is neither a hit nor a miss.
- Area ranges (pixels^2, bounds included in both neighbours): all [0, 1e10], small [0, 32^2],
  medium [32^2, 96^2], large [96^2, 1e10]. The area of a ground-truth box is its "area" entry, else
  the box area w * h; a detection's area is always its box area (pycocotools' loadRes does the same).
- Precision at 101 recall points 0, 0.01, ..., 1, after making precision non-increasing in recall;
  precision is 0 at recall points beyond the highest recall reached.
- A class without any counted ground truth (in the area range) is -1 and left out of every mean;
  a mean over nothing is -1.

COCOeval quirk kept for equality: the headline AP uses the max_dets entry equal to 100 (AP50, AP75,
the size APs and ARs use max_dets[2]), so with max_dets lacking 100 the returned "ap" is -1.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from pixelwise.errors import PixelwiseError

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)       # the same call as COCOeval's, so equal bit for bit
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e10)}


def _numpy(value: Any, dtype) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _boxes(entry: Mapping, where: str) -> np.ndarray:
    if "boxes" not in entry:
        raise PixelwiseError(f"{where}: no 'boxes' key; give boxes (N, 4) xyxy in pixels")
    boxes = _numpy(entry["boxes"], np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise PixelwiseError(f"{where}: boxes must have shape (N, 4) xyxy, got {tuple(boxes.shape)}")
    if not np.isfinite(boxes).all():
        raise PixelwiseError(f"{where}: boxes hold NaN or infinite values; give finite pixel coordinates")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        bad = boxes[(boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])][0].tolist()
        raise PixelwiseError(f"{where}: box {bad} has x2 < x1 or y2 < y1; boxes must be xyxy, not xywh")
    return boxes


def _per_box(entry: Mapping, key: str, n: int, where: str, dtype, default=None) -> np.ndarray:
    if key not in entry:
        if default is None:
            raise PixelwiseError(f"{where}: no {key!r} key; give one value per box ({n})")
        return default
    values = _numpy(entry[key], dtype).reshape(-1)
    if len(values) != n:
        raise PixelwiseError(f"{where}: {len(values)} {key} for {n} boxes; give one per box")
    if dtype is np.float64 and not np.isfinite(values).all():
        raise PixelwiseError(f"{where}: {key} hold NaN or infinite values")
    return values


def _read(targets: Sequence[Mapping], predictions: Sequence[Mapping]) -> tuple[list[dict], list[dict]]:
    if len(targets) != len(predictions):
        raise PixelwiseError(f"coco_map: {len(targets)} target dicts but {len(predictions)} prediction "
                             "dicts; give one of each per image, in the same order")
    gts, dts = [], []
    for i, (t, p) in enumerate(zip(targets, predictions)):
        boxes = _boxes(t, f"targets[{i}]")
        n = len(boxes)
        wh = boxes[:, 2:] - boxes[:, :2]
        crowd = _per_box(t, "iscrowd", n, f"targets[{i}]", np.int64, np.zeros(n, np.int64))
        if not np.isin(crowd, (0, 1)).all():
            raise PixelwiseError(f"targets[{i}]: iscrowd must be 0 or 1, got {sorted(set(crowd.tolist()))}")
        gts.append({"boxes": boxes, "labels": _per_box(t, "labels", n, f"targets[{i}]", np.int64),
                    "crowd": crowd.astype(bool),
                    "area": _per_box(t, "area", n, f"targets[{i}]", np.float64, wh[:, 0] * wh[:, 1])})
        boxes = _boxes(p, f"predictions[{i}]")
        n = len(boxes)
        dts.append({"boxes": boxes, "labels": _per_box(p, "labels", n, f"predictions[{i}]", np.int64),
                    "scores": _per_box(p, "scores", n, f"predictions[{i}]", np.float64)})
    return gts, dts


def box_iou_coco(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xyxy boxes det (D, 4) and gt (G, 4), float64, computed as pycocotools does.

    Boxes go to (x, y, w, h) first and back as x + w, which can differ from x2 in the last bit;
    doing the same keeps threshold decisions identical. crowd (G,) bool: there, intersection over
    the detection's area instead of the union.
    """
    dx, dy = det[:, 0, None], det[:, 1, None]
    dw, dh = det[:, 2, None] - det[:, 0, None], det[:, 3, None] - det[:, 1, None]
    gx, gy, gw, gh = gt[None, :, 0], gt[None, :, 1], gt[None, :, 2] - gt[None, :, 0], gt[None, :, 3] - gt[None, :, 1]
    iw = np.minimum(dx + dw, gx + gw) - np.maximum(dx, gx)
    ih = np.minimum(dy + dh, gy + gh) - np.maximum(dy, gy)
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    union = np.where(crowd[None, :], dw * dh, dw * dh + gw * gh - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=overlap)


def _match(ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray,
           thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of score-sorted detections: (matched (T, D), matched to an ignored box (T, D))."""
    n_det, n_gt = ious.shape
    matched = np.zeros((len(thresholds), n_det), bool)
    on_ignored = np.zeros_like(matched)
    if n_det == 0 or n_gt == 0:
        return matched, on_ignored
    order = np.argsort(gt_ignore, kind="mergesort")        # counted boxes first, as COCOeval visits them
    ious, gt_ignore, crowd = ious[:, order], gt_ignore[order], crowd[order]
    taken = np.zeros((len(thresholds), n_gt), bool)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    for d in np.nonzero(ious.max(1) >= limit.min())[0]:     # the others match nothing at any threshold
        free = (~taken | crowd) & (ious[d] >= limit)                     # (T, G)
        counted = free & ~gt_ignore
        choice = np.where(counted.any(1, keepdims=True), counted, free)
        last_best = n_gt - 1 - np.argmax(np.where(choice, ious[d], -np.inf)[:, ::-1], axis=1)
        hit = np.nonzero(choice.any(1))[0]
        g = last_best[hit]
        matched[hit, d] = True
        on_ignored[hit, d] = gt_ignore[g]
        taken[hit, g] = True
    return matched, on_ignored


def _evaluate_image(gt: dict, dt: dict, k: int, thresholds: np.ndarray, max_det: int) -> list[tuple]:
    """Per area range: (scores (D,), true positive (T, D), false positive (T, D), counted GT) of class k."""
    g, d = gt["labels"] == k, dt["labels"] == k
    gt_boxes, crowd, gt_area = gt["boxes"][g], gt["crowd"][g], gt["area"][g]
    order = np.argsort(-dt["scores"][d], kind="mergesort")[:max_det]
    det_boxes, scores = dt["boxes"][d][order], dt["scores"][d][order]
    det_area = (det_boxes[:, 2] - det_boxes[:, 0]) * (det_boxes[:, 3] - det_boxes[:, 1])
    ious = box_iou_coco(det_boxes, gt_boxes, crowd)
    out, matches = [], {}
    for lo, hi in AREA_RANGES.values():
        gt_ignore = crowd | (gt_area < lo) | (gt_area > hi)
        key = gt_ignore.tobytes()      # area ranges often ignore the same boxes: match once
        if key not in matches:
            matches[key] = _match(ious, gt_ignore, crowd, thresholds)
        matched, on_ignored = matches[key]
        ignored = on_ignored | (~matched & ((det_area < lo) | (det_area > hi))[None, :])
        out.append((scores, matched & ~ignored, ~matched & ~ignored, int((~gt_ignore).sum())))
    return out


def _precision_recall(images: list[tuple], max_det: int, n_thr: int) -> tuple[np.ndarray, np.ndarray] | None:
    """101-point interpolated precision (T, R) and final recall (T,) over images; None without counted GT."""
    n_gt = sum(e[3] for e in images)
    if n_gt == 0:
        return None
    scores = np.concatenate([e[0][:max_det] for e in images])
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(np.concatenate([e[1][:, :max_det] for e in images], axis=1)[:, order], axis=1).astype(float)
    fp = np.cumsum(np.concatenate([e[2][:, :max_det] for e in images], axis=1)[:, order], axis=1).astype(float)
    precision, recall = np.zeros((n_thr, len(RECALL_THRESHOLDS))), np.zeros(n_thr)
    n_det = tp.shape[1]
    for t in range(n_thr):
        rc = tp[t] / n_gt
        pr = tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if n_det else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        at = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        reached = at < n_det
        precision[t, reached] = pr[at[reached]]
    return precision, recall


def _mean(values: np.ndarray) -> float:
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


def coco_map(targets: Sequence[Mapping], predictions: Sequence[Mapping],
             iou_thresholds: Sequence[float] | None = None, max_dets: Sequence[int] = (1, 10, 100),
             labels: Sequence[int] | None = None, curves: bool = False) -> dict:
    """COCO box AP and AR over a whole dataset, equal to pycocotools' COCOeval.stats (see the module).

    targets: one dict per image with "boxes" (M, 4) xyxy float pixels, "labels" (M,) int, optional
    "iscrowd" (M,) 0/1 and "area" (M,) pixels^2 (default: box area w * h, which is what pycocotools
    then needs in the ground truth's "area" field to agree). predictions: one dict per image, same
    order, with "boxes" (D, 4), "scores" (D,), "labels" (D,). Torch tensors or numpy arrays.
    iou_thresholds: default 0.5:0.05:0.95. max_dets: three increasing detection limits per image.
    labels: the classes evaluated (COCO's category list); default every label in targets or
    predictions. Detections of other labels are ignored.

    Returns floats "ap" (IoU .5:.95), "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    f"ar{max_dets[0]}", f"ar{max_dets[1]}", f"ar{max_dets[2]}", "ar_small", "ar_medium", "ar_large"
    in COCOeval.stats order, and "per_class_ap" {label: AP@[.5:.95] at max_dets[2], all areas};
    -1 where there is no ground truth to measure against. curves: also "precision" (T, 101, K), the
    interpolated precision at each IoU threshold, recall point (RECALL_THRESHOLDS) and class (in
    "curve_labels" order) at max_dets[2], all areas: COCOeval.eval["precision"][:, :, :, 0, 2], -1 where
    unmeasured, for precision-recall curves.
    """
    max_dets = [int(m) for m in max_dets]
    if len(max_dets) != 3 or min(max_dets) < 1 or sorted(set(max_dets)) != max_dets:
        raise PixelwiseError(f"coco_map: max_dets must be three increasing positive integers, got {max_dets}")
    thresholds = IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, np.float64).reshape(-1)
    if thresholds.size == 0 or ((thresholds < 0) | (thresholds > 1)).any():
        raise PixelwiseError(f"coco_map: iou_thresholds must be values in [0, 1], got {thresholds.tolist()}")
    gts, dts = _read(targets, predictions)
    if labels is None:
        labels = np.unique(np.concatenate([x["labels"] for x in gts + dts] + [np.zeros(0, np.int64)]))
    classes = sorted({int(k) for k in labels})
    n_thr, n_rec, n_area = len(thresholds), len(RECALL_THRESHOLDS), len(AREA_RANGES)
    precision = -np.ones((n_thr, n_rec, len(classes), n_area, 3))
    recall = -np.ones((n_thr, len(classes), n_area, 3))
    for c, k in enumerate(classes):
        per_image = [_evaluate_image(gt, dt, k, thresholds, max_dets[-1]) for gt, dt in zip(gts, dts)
                     if (gt["labels"] == k).any() or (dt["labels"] == k).any()]
        for a in range(n_area):
            for m, max_det in enumerate(max_dets):
                result = _precision_recall([e[a] for e in per_image], max_det, n_thr)
                if result is not None:
                    precision[:, :, c, a, m], recall[:, c, a, m] = result

    def ap(area: str = "all", iou: float | None = None, max_det: int = max_dets[2]) -> float:
        s = precision if iou is None else precision[thresholds == iou]
        return _mean(s[:, :, :, list(AREA_RANGES).index(area), [m == max_det for m in max_dets]])

    def ar(area: str = "all", max_det: int = max_dets[2]) -> float:
        return _mean(recall[:, :, list(AREA_RANGES).index(area), [m == max_det for m in max_dets]])

    out = {"ap": ap(max_det=100), "ap50": ap(iou=0.5), "ap75": ap(iou=0.75), "ap_small": ap("small"),
           "ap_medium": ap("medium"), "ap_large": ap("large")}
    out.update({f"ar{m}": ar(max_det=m) for m in max_dets})
    out.update({"ar_small": ar("small"), "ar_medium": ar("medium"), "ar_large": ar("large")})
    out["per_class_ap"] = {k: _mean(precision[:, :, c, 0, 2]) for c, k in enumerate(classes)}
    if curves:
        out["precision"], out["curve_labels"] = precision[:, :, :, 0, 2], classes
    return out


class DetectionMeter:
    """Targets and predictions of a whole dataset, scored at once with `coco_map` (COCO AP is not a
    mean over images). `labels`: the classes evaluated (default: those seen)."""

    def __init__(self, labels: Sequence[int] | None = None):
        self.labels = None if labels is None else list(labels)
        self.targets: list[dict] = []
        self.predictions: list[dict] = []
        self._result: dict | None = None

    def update(self, predictions: Sequence[Mapping], targets: Sequence[Mapping]) -> None:
        """One batch: per image a prediction dict (boxes, scores, labels) and a target dict (boxes,
        labels, optional iscrowd and area); kept as numpy arrays."""
        keys = {"p": ("boxes", "scores", "labels"), "t": ("boxes", "labels", "iscrowd", "area")}
        self.predictions += [{k: _numpy(p[k], None) for k in keys["p"]} for p in predictions]
        self.targets += [{k: _numpy(t[k], None) for k in keys["t"] if k in t} for t in targets]
        self._result = None

    def result(self) -> dict:
        """coco_map of everything seen, with the precision curves (computed once)."""
        if self._result is None:
            self._result = coco_map(self.targets, self.predictions, labels=self.labels, curves=True)
        return self._result

    def summary(self) -> dict[str, float]:
        """The scalar COCO numbers (ap, ap50, ap75, ..., ar100) and the number of images n."""
        return {**{k: v for k, v in self.result().items() if isinstance(v, float)}, "n": float(len(self.targets))}
