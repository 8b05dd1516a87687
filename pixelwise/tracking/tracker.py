"""Online multi-object tracking by detection: SORT, with appearance (DeepSORT-like) and ByteTrack's second stage.

Every frame, each track's Kalman filter predicts its box; detections are assigned to tracks by the
Hungarian algorithm on a cost that fuses motion and appearance,
    cost = (1 - w) (1 - IoU(predicted box, detection)) + w cosine_distance(track feature, detection feature),
where pairs with IoU below `iou_gate` are never matched; w = `appearance_weight` = 0 is SORT. With
appearance, `reid_gate` > 0 also admits pairs that do not overlap enough but whose detection centre
lies within the track's Kalman gate (squared Mahalanobis distance of the centre below `reid_gate`;
5.99 is the 95% chi-square quantile with 2 degrees of freedom; the box shape is left out, since
occlusion changes it) and that look alike (cosine distance below `max_cosine`): a track that
coasted through missed detections or occlusion is found again, as in DeepSORT, where IoU alone
would start a new one. With
`low_score` below `high_score`, detections scored in [low_score, high_score) get a second, IoU-only
matching to the tracks left over (ByteTrack); they never start tracks. A track is reported once it
has `min_hits` matches (or in the first `min_hits` frames) and only in frames where it is matched;
it is dropped after `max_age` frames without one. `Tracker.reported_detections` gives the index
of the detection each reported track was matched to in the last frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from pixelwise.errors import PixelwiseError
from pixelwise.tracking.kalman import KalmanBoxFilter

_NO_MATCH = 1e6


@dataclass
class TrackerConfig:
    """Association settings; see the module docstring."""
    appearance_weight: float = 0.0
    iou_gate: float = 0.3
    min_hits: int = 3
    max_age: int = 5
    high_score: float = 0.5
    low_score: float = 0.5         # below high_score: ByteTrack's second stage
    feature_momentum: float = 0.9  # exponential moving average of a track's appearance feature
    reid_gate: float = 0.0         # > 0 (with appearance): squared Mahalanobis gate (centres) of look-alike pairs
    max_cosine: float = 0.3        # cosine distance below which the reid_gate admits a pair

    def __post_init__(self):
        if not 0 <= self.appearance_weight <= 1:
            raise PixelwiseError(f"appearance_weight must be in [0, 1], got {self.appearance_weight}")
        if not 0 <= self.iou_gate < 1:
            raise PixelwiseError(f"iou_gate must be in [0, 1), got {self.iou_gate}")
        if self.min_hits < 1 or self.max_age < 0:
            raise PixelwiseError(f"min_hits must be >= 1 and max_age >= 0, got {self.min_hits}, {self.max_age}")
        if self.reid_gate < 0 or not 0 <= self.max_cosine <= 2:
            raise PixelwiseError(f"reid_gate must be >= 0 and max_cosine in [0, 2], got {self.reid_gate}, "
                                 f"{self.max_cosine}")
        if self.low_score > self.high_score:
            raise PixelwiseError(f"low_score ({self.low_score}) must not exceed high_score ({self.high_score})")


@dataclass
class Track:
    """One track: its motion filter, unit appearance feature (D,), matches so far, frames since the last
    match, and its current box (4,) xyxy px."""
    id: int
    filter: KalmanBoxFilter
    feature: np.ndarray | None
    box: np.ndarray
    hits: int = 1
    misses: int = 0


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


def iou_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of boxes a (N, 4) and b (M, 4) xyxy."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(r, c) for r, c in zip(rows, cols) if cost[r, c] < _NO_MATCH]


class Tracker:
    """Online tracker; `update(boxes, scores, features)` once per frame, in order.

    boxes (M, 4) xyxy px, scores (M,), features (M, D) appearance embeddings (needed when
    appearance_weight > 0). Returns ids (K,) int64 and boxes (K, 4) of the tracks reported this frame.
    """

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self.frame, self._next_id = 0, 1
        self.reported_detections = np.zeros(0, np.int64)

    def _cost(self, tracks: list[Track], boxes: np.ndarray, features: np.ndarray | None, w: float) -> np.ndarray:
        if not tracks or not len(boxes):
            return np.zeros((len(tracks), len(boxes)))
        iou = iou_xyxy(np.stack([t.box for t in tracks]), boxes)
        cost = (1 - w) * (1 - iou)
        allowed = iou >= self.config.iou_gate
        if w > 0:
            cosine = 1 - np.stack([t.feature for t in tracks]) @ features.T
            cost = cost + w * cosine
            if self.config.reid_gate > 0:
                near = np.stack([t.filter.mahalanobis(boxes, only_position=True) for t in tracks]) < self.config.reid_gate
                allowed |= near & (cosine < self.config.max_cosine)
        return np.where(allowed, cost, _NO_MATCH)

    def update(self, boxes, scores=None, features=None) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise PixelwiseError(f"got {len(boxes)} boxes but {len(scores)} scores")
        if cfg.appearance_weight > 0:
            if features is None or len(features) != len(boxes):
                raise PixelwiseError("appearance_weight > 0 needs one feature vector per box (features (M, D))")
            features = np.asarray(features, np.float64)
            features = _normalize(features.reshape(len(boxes), features.size // max(len(boxes), 1)))
        self.frame += 1
        for t in self.tracks:
            t.box = t.filter.predict()
        high = np.nonzero(scores >= cfg.high_score)[0]
        low = np.nonzero((scores >= cfg.low_score) & (scores < cfg.high_score))[0]
        feats = None if features is None or cfg.appearance_weight == 0 else features
        matches = [(self.tracks[r], high[c]) for r, c in
                   _assign(self._cost(self.tracks, boxes[high], None if feats is None else feats[high],
                                      cfg.appearance_weight))]
        matched = {id(t) for t, _ in matches}
        left = [t for t in self.tracks if id(t) not in matched]
        matches += [(left[r], low[c]) for r, c in _assign(self._cost(left, boxes[low], None, 0.0))]
        used = {int(j) for _, j in matches}
        matched = {id(t) for t, _ in matches}
        reported = []
        detection = {}
        for t, j in matches:
            detection[id(t)] = int(j)
            t.box = t.filter.update(boxes[j])
            t.hits, t.misses = t.hits + 1, 0
            if feats is not None:
                t.feature = _normalize(cfg.feature_momentum * t.feature + (1 - cfg.feature_momentum) * feats[j])
            reported.append(t)
        for t in self.tracks:
            if id(t) not in matched:
                t.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= cfg.max_age]
        for j in high:
            if int(j) not in used:
                feature = None if feats is None else feats[j]
                t = Track(self._next_id, KalmanBoxFilter(boxes[j]), feature, boxes[j].copy())
                detection[id(t)] = int(j)
                self._next_id += 1
                self.tracks.append(t)
                reported.append(t)
        reported = [t for t in reported if t.hits >= cfg.min_hits or self.frame <= cfg.min_hits]
        self.reported_detections = np.array([detection[id(t)] for t in reported], np.int64)
        return (np.array([t.id for t in reported], np.int64),
                np.stack([t.box for t in reported]) if reported else np.zeros((0, 4)))
