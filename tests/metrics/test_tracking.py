"""Tracking metrics against TrackEval (HOTA, CLEAR, Identity) and py-motmetrics (CLEAR, Identity)."""
import numpy as np
import pytest

from pixelwise.errors import PixelwiseError
from pixelwise.metrics.tracking import ALPHAS, TrackingMeter, box_iou_xywh, tracking_metrics


def track(tid: int, frames, x0: float, y0: float, dx: float = 2.0, dy: float = 0.0, w: float = 10, h: float = 20):
    """MOT rows of a box moving by (dx, dy) px per frame over `frames` (1-based)."""
    return np.array([[f, tid, x0 + dx * (f - 1), y0 + dy * (f - 1), w, h, 1, 1, 1] for f in frames], float)


def rows(*parts):
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros((0, 9))


F = range(1, 11)
GT = rows(track(1, F, 0, 0), track(2, F, 60, 40, dx=-2))
CASES = {
    "perfect": (GT, GT.copy()),
    "id_switch": (GT, rows(track(7, range(1, 6), 0, 0), track(8, range(6, 11), 0, 0), track(9, F, 60, 40, dx=-2))),
    "miss": (GT, GT[~((GT[:, 0] == 4) & (GT[:, 1] == 1))]),
    "false_track": (GT, rows(GT, track(5, range(3, 8), 100, 100))),
    "fragmented": (GT, rows(track(1, [1, 2, 3, 6, 7, 8, 9, 10], 0, 0), track(2, F, 60, 40, dx=-2))),
    "shifted": (GT, rows(track(1, F, 3, 2), track(2, F, 62, 41, dx=-2))),
    "swap_at_crossing": (rows(track(1, F, 0, 30, dx=4), track(2, F, 40, 30, dx=-4)),
                         rows(track(1, range(1, 6), 0, 30, dx=4), track(2, range(6, 11), 0, 30, dx=4),
                              track(2, range(1, 6), 40, 30, dx=-4), track(1, range(6, 11), 40, 30, dx=-4))),
    "frame_without_predictions": (GT, GT[GT[:, 0] != 5]),
    "empty_prediction": (GT, np.zeros((0, 9))),
    "empty_ground_truth": (np.zeros((0, 9)), GT),
}


def random_case(seed: int):
    """Noisy, dropped, swapped and spurious copies of random ground-truth tracks."""
    rng = np.random.default_rng(seed)
    gt, pred, next_id = [], [], 100
    for tid in range(1, int(rng.integers(2, 7))):
        start, end = sorted(rng.integers(1, 16, 2))
        frames = range(start, end + 2)
        x0, y0, dx, dy = rng.uniform(0, 60), rng.uniform(0, 60), rng.normal(0, 3), rng.normal(0, 3)
        w, h = rng.uniform(8, 30, 2)
        t = track(tid, frames, x0, y0, dx, dy, w, h)
        gt.append(t)
        p = t.copy()
        p[:, 2:6] += rng.normal(0, 2.5, (len(p), 4))
        p[:, 4:6] = np.abs(p[:, 4:6])
        p = p[rng.random(len(p)) > 0.15]
        p[:, 1] = next_id
        cut = rng.integers(0, len(p) + 1)
        p[cut:, 1] = next_id + 1 if rng.random() < 0.5 else next_id
        next_id += 2
        pred.append(p)
    for _ in range(int(rng.integers(0, 3))):
        start = int(rng.integers(1, 12))
        pred.append(track(next_id, range(start, start + int(rng.integers(1, 6))), *rng.uniform(0, 80, 2)))
        next_id += 1
    return rows(*gt), rows(*pred)


ALL = {**CASES, **{f"random{s}": random_case(s) for s in range(12)}}


def trackeval_results(gt: np.ndarray, pred: np.ndarray):
    trackeval = pytest.importorskip("trackeval")
    from trackeval.datasets._base_dataset import _BaseDataset
    g_ids, p_ids = np.unique(gt[:, 1]), np.unique(pred[:, 1])
    frames = range(1, int(max(gt[:, 0].max(initial=0), pred[:, 0].max(initial=0))) + 1)
    data = {"num_timesteps": len(frames), "num_gt_ids": len(g_ids), "num_tracker_ids": len(p_ids),
            "num_gt_dets": len(gt), "num_tracker_dets": len(pred), "gt_ids": [], "tracker_ids": [],
            "similarity_scores": []}
    for f in frames:
        g, p = gt[gt[:, 0] == f], pred[pred[:, 0] == f]
        data["gt_ids"].append(np.searchsorted(g_ids, g[:, 1]))
        data["tracker_ids"].append(np.searchsorted(p_ids, p[:, 1]))
        data["similarity_scores"].append(_BaseDataset._calculate_box_ious(g[:, 2:6].copy(), p[:, 2:6].copy()))
    config = {"PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(config), trackeval.metrics.Identity(config)]
    return metrics, [m.eval_sequence(data) for m in metrics]


def assert_equal_to_trackeval(ours: dict, metrics, results):
    hota, clear, identity = results
    if clear["CLR_TP"] + clear["CLR_FN"] == 0:
        # TrackEval returns early without ground truth and leaves MOTA, MODA at 0; we keep the formula
        # (-FP / max(1, GT)), which is also what TrackEval's own combination of such a sequence gives.
        clear = {**clear, "MOTA": -clear["CLR_FP"], "MODA": -clear["CLR_FP"]}
    for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr"):
        assert ours[k] == pytest.approx(float(np.mean(hota[k])), abs=1e-9), k
        assert np.allclose(ours[f"{k}_alpha"], hota[k], atol=1e-9, rtol=0), k
    pairs = (("MOTA", "MOTA"), ("MOTP", "MOTP"), ("MODA", "MODA"), ("IDSW", "IDSW"), ("FP", "CLR_FP"), ("FN", "CLR_FN"),
             ("TP", "CLR_TP"), ("MT", "MT"), ("PT", "PT"), ("ML", "ML"), ("Frag", "Frag"))
    for ours_key, key in pairs:
        assert ours[ours_key] == pytest.approx(float(clear[key]), abs=1e-9), ours_key
    for k in ("IDF1", "IDP", "IDR", "IDTP", "IDFP", "IDFN"):
        assert ours[k] == pytest.approx(float(identity[k]), abs=1e-9), k


@pytest.mark.parametrize("case", ALL)
def test_one_sequence_equals_trackeval(case):
    gt, pred = ALL[case]
    assert_equal_to_trackeval(tracking_metrics(gt, pred), *trackeval_results(gt, pred))


def test_several_sequences_combine_as_trackeval():
    names = list(ALL)
    metrics, per_seq = None, {}
    for name in names:
        metrics, per_seq[name] = trackeval_results(*ALL[name])
    combined = [m.combine_sequences({n: per_seq[n][i] for n in names}) for i, m in enumerate(metrics)]
    ours = tracking_metrics([ALL[n][0] for n in names], [ALL[n][1] for n in names])
    assert_equal_to_trackeval(ours, metrics, combined)
    assert ours["sequences"] == len(names)
    half, rest = TrackingMeter(), TrackingMeter()
    for i, n in enumerate(names):
        (half if i % 2 else rest).update(*ALL[n])
    half.merge(rest)
    assert half.summary()["HOTA"] == pytest.approx(ours["HOTA"], abs=1e-12)


def motmetrics_accumulator(gt: np.ndarray, pred: np.ndarray, monkeypatch):
    mm = pytest.importorskip("motmetrics")
    # motmetrics 1.4.0 (the latest release) still calls np.asfarray, which NumPy 2 removed.
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=float: np.asarray(a, dtype=dtype), raising=False)
    acc = mm.MOTAccumulator(auto_id=True)
    for f in range(1, int(max(gt[:, 0].max(initial=0), pred[:, 0].max(initial=0))) + 1):
        g, p = gt[gt[:, 0] == f], pred[pred[:, 0] == f]
        acc.update(g[:, 1].astype(int), p[:, 1].astype(int), mm.distances.iou_matrix(g[:, 2:6], p[:, 2:6], max_iou=0.5))
    return mm, acc


MM_METRICS = ["mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives", "num_misses"]


def assert_equal_to_motmetrics(ours: dict, row):
    for ours_key, key in (("MOTA", "mota"), ("IDF1", "idf1"), ("IDP", "idp"), ("IDR", "idr"), ("IDSW", "num_switches"),
                          ("FP", "num_false_positives"), ("FN", "num_misses")):
        # motmetrics gives NaN for a ratio 0 / 0 (no predictions, no ground truth); TrackEval and we give 0.
        expected = 0.0 if np.isnan(float(row[key])) else float(row[key])
        assert ours[ours_key] == pytest.approx(expected, abs=1e-9), ours_key
    if ours["TP"]:
        assert ours["MOTP"] == pytest.approx(1 - float(row["motp"]), abs=1e-9)   # motmetrics: mean 1 - IoU


MM_CASES = [c for c in ALL if c != "empty_ground_truth"]   # motmetrics: MOTA of no ground truth is NaN


@pytest.mark.parametrize("case", MM_CASES)
def test_one_sequence_equals_motmetrics(case, monkeypatch):
    gt, pred = ALL[case]
    mm, acc = motmetrics_accumulator(gt, pred, monkeypatch)
    row = mm.metrics.create().compute(acc, metrics=MM_METRICS, name=case)
    assert_equal_to_motmetrics(tracking_metrics(gt, pred), row.iloc[0])


def test_several_sequences_equal_motmetrics_overall(monkeypatch):
    cases = [c for c in MM_CASES if c != "empty_prediction"]   # its NaN MOTP would make the overall one NaN
    accs = [motmetrics_accumulator(*ALL[c], monkeypatch) for c in cases]
    mm = accs[0][0]
    table = mm.metrics.create().compute_many([a for _, a in accs], names=cases, metrics=MM_METRICS,
                                             generate_overall=True)
    ours = tracking_metrics([ALL[c][0] for c in cases], [ALL[c][1] for c in cases])
    assert_equal_to_motmetrics(ours, table.loc["OVERALL"])


def test_hand_computed_id_switch():
    gt, pred = CASES["id_switch"]
    m = tracking_metrics(gt, pred)
    # 20 gt boxes, all matched; gt 1 changes track once; the best identity match covers 5 of its 10.
    assert (m["TP"], m["FN"], m["FP"], m["IDSW"]) == (20, 0, 0, 1)
    assert m["MOTA"] == pytest.approx(19 / 20) and m["IDF1"] == pytest.approx(15 / 20)
    assert m["DetA"] == pytest.approx(1.0)
    # gt 1 with track 7 (or 8): TPA 5 of 10 + 5 - 5 -> AssA (10 * 1 + 5 * 0.5 + 5 * 0.5) / 20.
    assert m["AssA"] == pytest.approx(0.75) and m["HOTA"] == pytest.approx(np.sqrt(0.75))
    assert len(m["HOTA_alpha"]) == len(ALPHAS) == 19


def test_iou_and_bad_input():
    assert box_iou_xywh([[0, 0, 10, 10]], [[5, 0, 10, 10], [0, 0, 0, 0]]).tolist() == [[1 / 3, 0.0]]
    dup = np.array([[1, 1, 0, 0, 5, 5], [1, 1, 3, 3, 5, 5]], float)
    with pytest.raises(PixelwiseError, match="frame 1 holds an id twice"):
        tracking_metrics(dup, dup)
    with pytest.raises(PixelwiseError, match="as many"):
        tracking_metrics([GT, GT], [GT])
    with pytest.raises(PixelwiseError, match="frame"):
        tracking_metrics(np.array([[0, 1, 0, 0, 5, 5]], float), GT)
