"""AP, AUROC and FPR95 equal scikit-learn's, computed over pixels with ties and ignored labels."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from pixelwise.metrics.outliers import (OutlierMeter, average_precision, auroc, binary_curve,
                                        fpr_at_tpr, outlier_metrics)


def sklearn_reference(scores: np.ndarray, labels: np.ndarray) -> dict:
    keep = labels != 255
    s, y = scores[keep], labels[keep]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {"ap": average_precision_score(y, s), "auroc": roc_auc_score(y, s),
            "fpr95": fpr[np.argmax(tpr >= 0.95)]}


def make_case(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    shape = (3, 17, 23)
    labels = (rng.random(shape) < 0.15).astype(np.uint8)
    if kind == "random":
        scores = rng.normal(size=shape).astype(np.float32) + labels
    elif kind == "tied":  # only 5 distinct scores: every threshold takes in many pixels at once
        scores = rng.integers(0, 5, size=shape).astype(np.float32) + labels * rng.integers(0, 2, size=shape)
    else:  # tied scores and a band of ignored pixels
        scores = np.round(rng.normal(size=shape) + 2 * labels, 1).astype(np.float32)
        labels[:, :4] = 255
        labels[rng.random(shape) < 0.1] = 255
    return scores, labels


@pytest.mark.parametrize("kind", ["random", "tied", "ignored"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(kind, seed):
    scores, labels = make_case(kind, seed)
    got = outlier_metrics(binary_curve(torch.from_numpy(scores), torch.from_numpy(labels)))
    ref = sklearn_reference(scores, labels)
    for key in ("ap", "auroc", "fpr95"):
        assert got[key] == pytest.approx(ref[key], abs=1e-12), key
    assert got["outlier_pixels"] == int((labels == 1).sum())
    assert got["inlier_pixels"] == int((labels == 0).sum())


def test_meter_over_batches_equals_whole_dataset():
    scores, labels = make_case("ignored", 7)
    meter = OutlierMeter(["s", "neg"])
    for i in range(len(scores)):  # one image at a time: metrics must not be per-image averages
        s, y = torch.from_numpy(scores[i:i + 1]), torch.from_numpy(labels[i:i + 1])
        meter.update({"s": s, "neg": -s}, y)
    summary = meter.summary()
    ref = sklearn_reference(scores, labels)
    assert summary["s"]["ap"] == pytest.approx(ref["ap"], abs=1e-12)
    assert summary["s"]["auroc"] == pytest.approx(ref["auroc"], abs=1e-12)
    assert summary["neg"]["auroc"] == pytest.approx(1 - ref["auroc"], abs=1e-12)


def test_hand_computed_case():
    # scores 4,3,3,1 with labels 1,0,1,0: thresholds 4 (P=1, R=.5), 3 (P=2/3, R=1), 1.
    curve = binary_curve(torch.tensor([4.0, 3.0, 3.0, 1.0]), torch.tensor([1, 0, 1, 0]))
    assert average_precision(curve) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert auroc(curve) == pytest.approx(3.5 / 4)  # pairs: 4>3, 4>1, 3=3 (half), 3>1
    assert fpr_at_tpr(curve) == pytest.approx(0.5)


def test_bad_labels_and_degenerate_cases():
    with pytest.raises(ValueError, match="outlier label 2"):
        binary_curve(torch.zeros(3), torch.tensor([0, 1, 2]))
    curve = binary_curve(torch.rand(5), torch.zeros(5, dtype=torch.long))
    assert np.isnan(average_precision(curve)) and np.isnan(auroc(curve))
