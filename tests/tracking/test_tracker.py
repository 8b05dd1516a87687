import numpy as np
import pytest

from pixelwise.data.mot import boxes_to_mot
from pixelwise.errors import PixelwiseError
from pixelwise.metrics.tracking import tracking_metrics
from pixelwise.tracking.tracker import Tracker, TrackerConfig


def two_objects(frames: int, bounce: bool):
    """Boxes (T, 2, 4) xyxy of two 10 x 20 boxes on nearly one row, meeting at frame 10 (and turning back)."""
    t = np.arange(frames, dtype=float)
    step = np.where(t <= 10, t, 20 - t) if bounce else t
    xa, xb = 2 * step, 40 - 2 * step
    zero = 0 * t
    return np.stack([np.stack([xa, zero, xa + 10, zero + 20], 1), np.stack([xb, zero + 2, xb + 10, zero + 22], 1)], 1)


def run(boxes: np.ndarray, weight: float, features=None):
    tracker = Tracker(TrackerConfig(appearance_weight=weight, min_hits=1))
    gt, pred = [], []
    for f, b in enumerate(boxes, 1):
        ids, out = tracker.update(b, np.ones(2), features)
        gt.append(boxes_to_mot(f, [1, 2], b))
        pred.append(boxes_to_mot(f, ids, out))
    return tracking_metrics(np.concatenate(gt), np.concatenate(pred))


def test_motion_tells_identical_crossing_objects_apart():
    m = run(two_objects(21, bounce=False), weight=0.0)
    assert m["IDSW"] == 0 and m["IDF1"] == 1 and m["FN"] == 0


def test_appearance_keeps_ids_where_motion_misleads():
    boxes = two_objects(21, bounce=True)
    sort = run(boxes, weight=0.0)
    assert sort["IDSW"] >= 1 and sort["IDF1"] < 0.8
    with_appearance = run(boxes, weight=0.5, features=np.eye(2))
    assert with_appearance["IDSW"] == 0 and with_appearance["IDF1"] == 1


def test_tracks_coast_through_missed_frames_and_low_scores():
    tracker = Tracker(TrackerConfig(min_hits=2, max_age=3, low_score=0.1))
    ids = []
    for f in range(12):
        box = np.array([[2.0 * f, 0, 2.0 * f + 10, 20]])
        if f in (5, 6):
            out, _ = tracker.update(np.zeros((0, 4)))
        else:
            out, _ = tracker.update(box, [0.3 if f == 8 else 0.9])   # frame 8: a low-score detection
        ids.append(out.tolist())
    assert ids[0] == [1] and ids[5] == ids[6] == [] and ids[8] == [1] and ids[11] == [1]
    with pytest.raises(PixelwiseError, match="features"):
        Tracker(TrackerConfig(appearance_weight=0.5)).update(np.zeros((1, 4)) + [0, 0, 1, 1])
    with pytest.raises(PixelwiseError, match="low_score"):
        TrackerConfig(low_score=0.9, high_score=0.5)


def test_appearance_finds_a_track_again_after_a_gap_that_iou_misses():
    # One 10 x 20 box moving 3 px/frame that stops, unseen, in frames 8-11 (so the Kalman filter's
    # prediction runs away from it); a second, different-looking box stays apart.
    def frame(f):
        x = 3.0 * min(f, 8)
        boxes = [[x, 0, x + 10, 20], [60, 40, 70, 60]]
        return (boxes[1:], np.eye(2)[1:]) if 8 <= f < 12 else (boxes, np.eye(2))

    def ids_after_gap(config):
        tracker = Tracker(config)
        for f in range(16):
            boxes, feats = frame(f)
            ids, out = tracker.update(boxes, features=feats if config.appearance_weight else None)
            assert np.allclose(out, np.asarray(boxes)[tracker.reported_detections], atol=3)
        return ids.tolist()

    base = dict(min_hits=1, max_age=6, iou_gate=0.3)
    assert ids_after_gap(TrackerConfig(**base)) == [2, 3]        # SORT: a new track after the gap
    assert ids_after_gap(TrackerConfig(appearance_weight=0.5, **base)) == [2, 3]
    assert ids_after_gap(TrackerConfig(appearance_weight=0.5, reid_gate=50.0, **base)) == [1, 2]
    with pytest.raises(PixelwiseError, match="reid_gate"):
        TrackerConfig(reid_gate=-1)
