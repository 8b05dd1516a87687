"""Forecasting metrics: the same mIoU as the segmentation meter on the same maps, mIoU over the moving
classes against scikit-learn's per-class Jaccard index, and the gap closed of the paper's numbers."""
import pytest
import torch
from sklearn.metrics import jaccard_score

from pixelwise.metrics.forecasting import ForecastMeter, gap_closed
from pixelwise.metrics.segmentation import SegmentationMeter


def test_forecast_miou_equals_the_segmentation_metric_on_the_same_maps():
    g = torch.Generator().manual_seed(0)
    meter = ForecastMeter(5, ["oracle", "copy_last", "f2f"], [3, 9], moving_classes=[1, 2, 3, 4])
    reference = {(m, h): SegmentationMeter(5) for m in ["oracle", "copy_last", "f2f"] for h in (3, 9)}
    truth_all, pred_all = [], []
    for _ in range(3):   # accumulated over batches, not averaged per batch
        target = torch.randint(0, 5, (2, 16, 16), generator=g)
        target[:, :2] = 255
        for (m, h), ref in reference.items():
            pred = torch.where(torch.rand(2, 16, 16, generator=g) < 0.6, target.clamp(max=4),
                               torch.randint(0, 5, (2, 16, 16), generator=g))
            meter.update(m, h, pred, target)
            ref.update_preds(pred, target)
            if (m, h) == ("f2f", 3):
                truth_all.append(target.flatten())
                pred_all.append(pred.flatten())
    summary = meter.summary()
    for (m, h), ref in reference.items():
        assert summary[f"{m}_t{h}_miou"] == pytest.approx(ref.summary()["miou"], abs=1e-12)
    truth, pred = torch.cat(truth_all).numpy(), torch.cat(pred_all).numpy()
    keep = truth != 255
    per_class = jaccard_score(truth[keep], pred[keep], labels=[0, 1, 2, 3, 4], average=None)   # all 5 classes occur
    assert summary["f2f_t3_miou"] == pytest.approx(per_class.mean(), abs=1e-12)
    assert summary["f2f_t3_miou_mo"] == pytest.approx(per_class[1:].mean(), abs=1e-12)
    assert summary["miou"] == summary["f2f_t3_miou"]
    expected_gap = (summary["f2f_t9_miou"] - summary["copy_last_t9_miou"]) / (
        summary["oracle_t9_miou"] - summary["copy_last_t9_miou"])
    if summary["oracle_t9_miou"] > summary["copy_last_t9_miou"]:
        assert summary["f2f_t9_gap_closed"] == pytest.approx(expected_gap)


def test_gap_closed_of_the_paper_and_without_a_gap():
    # Saric et al. 2019 on Cityscapes, short term: F2F 52.4, copy-last 38.6, oracle 72.5 -> 41%.
    assert gap_closed(52.4, 38.6, 72.5) == pytest.approx(0.407, abs=5e-4)
    assert gap_closed(0.5, 0.6, 0.6) is None


def test_moving_class_miou_leaves_out_absent_classes():
    meter = ForecastMeter(4, ["f2f"], [3], moving_classes=[1, 2, 3])
    target = torch.tensor([[[0, 0, 1, 1]]])
    meter.update("f2f", 3, torch.tensor([[[0, 1, 1, 1]]]), target)   # classes 2, 3 never occur
    s = meter.summary()
    assert s["f2f_t3_miou_mo"] == pytest.approx(2 / 3)          # class 1 alone: TP 2, FP 1
    assert s["f2f_t3_miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
