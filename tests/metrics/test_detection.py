"""coco_map against pycocotools' COCOeval, on random and hand-made cases: every number equal."""
import contextlib
import io

import numpy as np
import pytest
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.metrics.detection import box_iou_coco, coco_map

pytest.importorskip("pycocotools", reason="pycocotools is the reference for coco_map (test extra)")
from pycocotools import mask as coco_mask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

STAT_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
             "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def as_numpy(x, dtype=np.float64) -> np.ndarray:
    return np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, dtype)


def cocoeval(targets, predictions, labels, iou_thresholds=None, max_dets=(1, 10, 100)) -> COCOeval:
    """COCOeval on in-memory COCO objects built from the same dicts (xyxy -> xywh, area w*h by default)."""
    images = [{"id": i + 1} for i in range(len(targets))]
    annotations, results = [], []
    for i, (t, p) in enumerate(zip(targets, predictions)):
        boxes = as_numpy(t["boxes"]).reshape(-1, 4)
        crowd = as_numpy(t.get("iscrowd", np.zeros(len(boxes))), np.int64)
        for j, (box, label) in enumerate(zip(boxes, as_numpy(t["labels"], np.int64))):
            w, h = box[2] - box[0], box[3] - box[1]
            area = float(as_numpy(t["area"])[j]) if "area" in t else float(w * h)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label),
                                "bbox": [float(box[0]), float(box[1]), float(w), float(h)],
                                "area": area, "iscrowd": int(crowd[j])})
        for box, score, label in zip(as_numpy(p["boxes"]).reshape(-1, 4), as_numpy(p["scores"]),
                                     as_numpy(p["labels"], np.int64)):
            results.append({"image_id": i + 1, "category_id": int(label), "score": float(score),
                            "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]})
    categories = [{"id": int(k)} for k in labels]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:   # loadRes cannot take an empty list (it reads results[0])
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": categories}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, np.float64)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_equal_to_cocoeval(targets, predictions, iou_thresholds=None, max_dets=(1, 10, 100)) -> dict:
    ours = coco_map(targets, predictions, iou_thresholds, max_dets)
    labels = sorted(ours["per_class_ap"])
    expected = set()
    for d in list(targets) + list(predictions):
        expected |= set(as_numpy(d["labels"], np.int64).tolist())
    assert labels == sorted(expected)
    ev = cocoeval(targets, predictions, labels, iou_thresholds, max_dets)
    keys = STAT_KEYS[:6] + tuple(f"ar{m}" for m in max_dets) + STAT_KEYS[9:]
    for key, ref in zip(keys, ev.stats):
        assert abs(ours[key] - ref) < 1e-12, (key, ours[key], ref)
    for c, k in enumerate(labels):
        s = ev.eval["precision"][:, :, c, 0, 2]
        ref = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
        assert abs(ours["per_class_ap"][k] - ref) < 1e-12, (k, ours["per_class_ap"][k], ref)
    return ours


def random_case(rng: np.random.Generator, integer: bool):
    n_images, classes = int(rng.integers(1, 7)), rng.choice([1, 2, 3, 5, 7], int(rng.integers(1, 5)), replace=False)
    targets, predictions = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 9))
        xy = rng.uniform(0, 200, (m, 2))
        wh = np.exp(rng.uniform(np.log(2), np.log(150), (m, 2)))   # small, medium and large boxes
        gt = np.concatenate([xy, xy + wh], 1)
        if integer:   # integer corners make IoUs exactly at the thresholds common
            gt = np.round(gt)
        labels = rng.choice(classes, m)
        target = {"boxes": gt, "labels": labels, "iscrowd": (rng.random(m) < 0.15).astype(np.int64)}
        if rng.random() < 0.3:
            target["area"] = wh.prod(1) * rng.uniform(0.3, 1.0, m)
        copies = rng.integers(0, 3, m)                     # 0, 1 or 2 detections per ground-truth box
        src = np.repeat(np.arange(m), copies)
        jitter = rng.normal(0, 0.12, (len(src), 4)) * np.tile(wh[src], 2) if m else np.zeros((0, 4))
        det = gt[src] + (np.round(jitter) if integer else jitter)
        extra = int(rng.integers(0, 6))
        exy = rng.uniform(0, 200, (extra, 2))
        det = np.concatenate([det, np.concatenate([exy, exy + rng.uniform(2, 100, (extra, 2))], 1)])
        det = np.concatenate([np.minimum(det[:, :2], det[:, 2:]), np.maximum(det[:, :2], det[:, 2:])], 1)
        det_labels = np.concatenate([labels[src], rng.choice(classes, extra)])
        swap = rng.random(len(det_labels)) < 0.1
        det_labels[swap] = rng.choice(classes, int(swap.sum()))
        scores = rng.integers(0, 5, len(det)) / 4 if rng.random() < 0.5 else rng.random(len(det))   # ties or not
        prediction = {"boxes": det, "scores": scores, "labels": det_labels}
        if rng.random() < 0.5:
            target = {k: torch.as_tensor(v) for k, v in target.items()}
            prediction = {k: torch.as_tensor(v, dtype=torch.float32 if k != "labels" else torch.int64)
                          for k, v in prediction.items()}
        targets.append(target)
        predictions.append(prediction)
    return targets, predictions


@pytest.mark.parametrize("seed", range(60))
def test_random_cases_equal_cocoeval(seed):
    targets, predictions = random_case(np.random.default_rng(seed), integer=seed % 2 == 0)
    assert_equal_to_cocoeval(targets, predictions)


def test_iou_is_bit_equal_to_pycocotools():
    # Equal bits, not just close: a last-bit difference flips matches at IoU exactly on a threshold.
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (300, 4))
    dets = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])], 1)
    gts = dets[rng.integers(0, 300, 50)] + rng.normal(0, 3, (50, 4))
    gts = np.concatenate([np.minimum(gts[:, :2], gts[:, 2:]), np.maximum(gts[:, :2], gts[:, 2:])], 1)
    crowd = rng.random(50) < 0.3
    xywh = lambda b: np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)  # noqa: E731
    reference = coco_mask.iou(xywh(dets), xywh(gts), crowd.astype(np.uint8))
    assert np.array_equal(box_iou_coco(dets, gts, crowd), reference)


def test_custom_thresholds_and_max_dets_equal_cocoeval():
    rng = np.random.default_rng(100)
    for thresholds, max_dets in (([0.3, 0.5, 0.75], (1, 2, 100)), ([0.6], (1, 3, 5)), (None, (2, 4, 8))):
        targets, predictions = random_case(rng, integer=True)
        ours = assert_equal_to_cocoeval(targets, predictions, thresholds, max_dets)
        if 100 not in max_dets:   # COCOeval's headline AP looks for maxDets == 100
            assert ours["ap"] == -1


def test_more_detections_than_max_dets_equal_cocoeval():
    rng = np.random.default_rng(7)
    gt = np.round(rng.uniform(0, 100, (30, 2)))
    gt = np.concatenate([gt, gt + rng.integers(5, 60, (30, 2))], 1)
    det = np.repeat(gt, 5, 0) + rng.normal(0, 2, (150, 4))
    det = np.concatenate([np.minimum(det[:, :2], det[:, 2:]), np.maximum(det[:, :2], det[:, 2:])], 1)
    targets = [{"boxes": gt, "labels": np.ones(30, np.int64)}] * 2
    predictions = [{"boxes": det, "scores": rng.random(150), "labels": np.ones(150, np.int64)},
                   {"boxes": det, "scores": np.round(rng.random(150), 1), "labels": rng.integers(1, 3, 150)}]
    assert_equal_to_cocoeval(targets, predictions)


BOX = [10.0, 20.0, 60.0, 90.0]


def det(boxes, scores, labels):
    return {"boxes": np.asarray(boxes, float).reshape(-1, 4), "scores": np.asarray(scores, float),
            "labels": np.asarray(labels, np.int64)}


def gt(boxes, labels, iscrowd=None):
    t = {"boxes": np.asarray(boxes, float).reshape(-1, 4), "labels": np.asarray(labels, np.int64)}
    if iscrowd is not None:
        t["iscrowd"] = np.asarray(iscrowd, np.int64)
    return t


HAND_MADE = {
    "perfect": ([gt([BOX, [100, 100, 120, 130]], [1, 2])], [det([BOX, [100, 100, 120, 130]], [0.9, 0.8], [1, 2])]),
    "shifted": ([gt([BOX], [1])], [det([[15, 20, 65, 90]], [0.9], [1])]),
    "iou_exactly_half": ([gt([[0, 0, 10, 10]], [1])], [det([[0, 0, 10, 5]], [0.5], [1])]),
    "duplicates": ([gt([BOX], [1])], [det([BOX, BOX, [11, 20, 60, 90]], [0.9, 0.9, 0.95], [1, 1, 1])]),
    "image_without_gt": ([gt([BOX], [1]), gt([], [])], [det([BOX], [0.5], [1]), det([BOX], [0.9], [1])]),
    "no_detections": ([gt([BOX, [0, 0, 5, 5]], [1, 1])], [det([], [], [])]),
    "no_detections_no_gt": ([gt([], [])], [det([], [], [])]),
    "crowd_only": ([gt([[0, 0, 100, 100]], [1], [1])],
                   [det([[10, 10, 20, 20], [50, 50, 70, 60]], [0.9, 0.8], [1, 1])]),
    "crowd_and_box": ([gt([[0, 0, 100, 100], [10, 10, 30, 30]], [1, 1], [1, 0])],
                      [det([[10, 10, 30, 30], [11, 10, 30, 30], [60, 60, 90, 90]], [0.7, 0.9, 0.8], [1, 1, 1])]),
    "ties_across_images": ([gt([BOX], [1]), gt([BOX], [1])],
                           [det([[0, 0, 5, 5], BOX], [0.5, 0.5], [1, 1]),
                            det([BOX, [0, 0, 5, 5]], [0.5, 0.5], [1, 1])]),
    "class_absent_from_gt": ([gt([BOX], [1])], [det([BOX, BOX], [0.9, 0.95], [1, 4])]),
    # The first detection has the same IoU with both boxes and takes the later one, leaving the
    # first for the second detection: two hits, where taking the first box would give one.
    "equal_iou_goes_to_the_later_gt": ([gt([[0, 0, 10, 10], [2, 0, 12, 10]], [1, 1])],
                                       [det([[1, 0, 11, 10], [0, 0, 10, 10]], [0.9, 0.8], [1, 1])]),
    "two_gt_equal_iou": ([gt([[0, 0, 10, 10], [0, 0, 10, 10]], [1, 1], [0, 0])],
                         [det([[0, 0, 10, 10]], [0.3], [1])]),
    "degenerate_boxes": ([gt([[5, 5, 5, 20], BOX], [1, 1])],
                         [det([[5, 5, 5, 20], [30, 30, 40, 30]], [0.9, 0.8], [1, 1])]),
    "sizes": ([gt([[0, 0, 4, 4], [0, 0, 32, 32], [0, 0, 50, 60], [0, 0, 96, 96], [0, 0, 150, 120]], [1] * 5)],
              [det([[0, 0, 4, 5], [0, 0, 32, 32], [0, 0, 50, 58], [0, 0, 96, 96], [0, 0, 20, 20]],
                   [0.1, 0.2, 0.3, 0.4, 0.5], [1] * 5)]),
}


@pytest.mark.parametrize("name", HAND_MADE)
def test_hand_made_cases_equal_cocoeval(name):
    targets, predictions = HAND_MADE[name]
    ours = assert_equal_to_cocoeval(targets, predictions)
    if name == "equal_iou_goes_to_the_later_gt":
        assert ours["ap75"] == pytest.approx(1.0)
    if name == "perfect":
        assert ours["ap"] == pytest.approx(1.0) and ours["ar100"] == pytest.approx(1.0)
    if name in ("crowd_only", "no_detections_no_gt"):
        assert all(ours[k] == -1 for k in STAT_KEYS)
    if name == "no_detections":
        assert ours["ap"] == 0 and ours["ar100"] == 0
    if name == "class_absent_from_gt":
        assert ours["per_class_ap"][4] == -1 and ours["ap"] == pytest.approx(1.0)


def test_explicit_labels_restrict_the_classes():
    targets, predictions = HAND_MADE["class_absent_from_gt"]
    ours = coco_map(targets, predictions, labels=[1, 2])
    assert ours["per_class_ap"] == {1: pytest.approx(1.0), 2: -1}


@pytest.mark.parametrize("targets, predictions, match", [
    ([gt([BOX], [1])], [], "1 target dicts but 0 prediction"),
    ([{"boxes": np.zeros((1, 3)), "labels": [1]}], [det([], [], [])], "shape"),
    ([gt([[10, 10, 5, 20]], [1])], [det([], [], [])], "x2 < x1"),
    ([gt([BOX], [1, 2])], [det([], [], [])], "2 labels for 1 boxes"),
    ([gt([BOX], [1], [2])], [det([], [], [])], "iscrowd"),
    ([gt([BOX], [1])], [{"boxes": np.zeros((1, 4)), "labels": [1]}], "scores"),
    ([gt([BOX], [1])], [det([BOX], [float("nan")], [1])], "NaN"),
])
def test_bad_input_is_a_clear_error(targets, predictions, match):
    with pytest.raises(PixelwiseError, match=match):
        coco_map(targets, predictions)
    with pytest.raises(PixelwiseError, match="max_dets"):
        coco_map([], [], max_dets=(10, 1, 100))


@pytest.mark.parametrize("seed", range(4))
def test_meter_over_batches_gives_cocoeval_precision_curves(seed):
    from pixelwise.metrics.detection import DetectionMeter
    targets, predictions = random_case(np.random.default_rng(100 + seed), integer=seed % 2 == 0)
    labels = [1, 2, 3, 5, 7]
    meter = DetectionMeter(labels)
    for i in range(0, len(targets), 2):    # batches of two images
        meter.update(predictions[i:i + 2], targets[i:i + 2])
    ev = cocoeval(targets, predictions, labels)
    result = meter.result()
    assert result["curve_labels"] == labels
    np.testing.assert_array_equal(result["precision"], ev.eval["precision"][:, :, :, 0, 2])
    summary = meter.summary()
    assert summary["n"] == len(targets)
    for key, ref in zip(STAT_KEYS, ev.stats):
        assert abs(summary[key] - ref) < 1e-12, (key, summary[key], ref)
