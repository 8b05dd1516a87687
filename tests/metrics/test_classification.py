import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import top_k_accuracy_score

from pixelwise.metrics.classification import ClassificationMeter, confusion_matrix, topk_correct


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_matches_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, 10, generator=g)
    targets = torch.randint(0, 10, (200,), generator=g)
    got = topk_correct(logits, targets, (1, 3, 5))
    for k in (1, 3, 5):
        ref = top_k_accuracy_score(targets.numpy(), logits.numpy(), k=k, labels=range(10), normalize=False)
        assert got[k] == ref


def test_confusion_matrix_matches_sklearn_and_ignores():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 5, (1000,), generator=g)
    targets = torch.randint(0, 5, (1000,), generator=g)
    ref = sk_confusion_matrix(targets.numpy(), preds.numpy(), labels=range(5))
    np.testing.assert_array_equal(confusion_matrix(preds, targets, 5).numpy(), ref)
    targets[:100] = 255
    cm = confusion_matrix(preds, targets, 5, ignore_index=255)
    assert cm.sum() == 900
    np.testing.assert_array_equal(cm.numpy(), sk_confusion_matrix(targets[100:], preds[100:], labels=range(5)))


def test_confusion_matrix_rejects_out_of_range_targets():
    with pytest.raises(ValueError, match="target value 7 outside"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 5)


def test_meter_accumulates_over_batches():
    logits = torch.tensor([[3.0, 1, 0], [0, 2, 1], [0, 1, 2], [2, 1, 0]])
    targets = torch.tensor([0, 2, 2, 1])
    m = ClassificationMeter(3, ks=(1, 2))
    m.update(logits[:2], targets[:2])
    m.update(logits[2:], targets[2:])
    s = m.summary()
    assert s["top1"] == 0.5 and s["top2"] == 1.0 and s["n"] == 4
    assert m.cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
