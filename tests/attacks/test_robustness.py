"""Robustness tables: clean and robust accuracy (mIoU for segmenters) against independent references."""
from __future__ import annotations

import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score
from torch.utils.data import TensorDataset

from pixelwise.attacks import fgsm, pgd, robustness_curve, robustness_table
from pixelwise.attacks.robustness import plot_robustness_curve
from tests.attacks.models import conv_segmenter, linear_classifier


def test_classifier_rows_match_accuracy_of_the_attacked_images(tmp_path):
    model = linear_classifier()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 8, 8, generator=g), torch.randint(0, 5, (40,), generator=g)
    # Labels the model gets mostly right, so that the attack has something to take away.
    y = torch.where(torch.rand(40, generator=g) < 0.7, model(x).argmax(1), y)
    rows = robustness_curve(model, TensorDataset(x, y), 5, [0.0, 0.02, 0.1], attack="fgsm", batch_size=16,
                            progress=False)
    assert [r["eps"] for r in rows] == [0.0, 0.02, 0.1] and all(r["n"] == 40 for r in rows)
    assert rows[0]["attack"] == "none" and rows[1]["attack"] == "fgsm"
    for r in rows:
        adv = fgsm(model, x, y, r["eps"]) if r["eps"] else x
        assert r["accuracy"] == pytest.approx(accuracy_score(y, model(adv).argmax(1)))
    assert rows[2]["accuracy"] < rows[0]["accuracy"]
    table = robustness_table(rows)
    assert table.count("\n") == 5 and "| fgsm | linf | 1 | 0.1 |" in table
    assert plot_robustness_curve({"linear": rows}, tmp_path / "curve.png").stat().st_size > 1000


def test_limit_and_model_mode():
    model = linear_classifier().train()
    x, y = torch.rand(30, 1, 8, 8), torch.randint(0, 5, (30,))
    rows = robustness_curve(model, TensorDataset(x, y), 5, [0.05], attack="pgd", steps=3, limit=10,
                            progress=False)
    assert rows[0]["n"] == 10 and rows[0]["steps"] == 3 and model.training


def test_segmenter_rows_give_miou_over_labelled_pixels():
    model = conv_segmenter()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 12, 12, generator=g)
    masks = model(x).argmax(1)  # mostly right before the attack
    masks[torch.rand(masks.shape, generator=g) < 0.3] = 255
    rows = robustness_curve(model, TensorDataset(x, masks.to(torch.uint8)), 4, [0.0, 0.05], attack="pgd",
                            steps=3, batch_size=4, progress=False)
    adv = torch.cat([pgd(model, x[:4], masks[:4], 0.05, steps=3), pgd(model, x[4:], masks[4:], 0.05, steps=3)])
    for r, images in zip(rows, (x, adv)):
        keep = masks != 255
        truth, pred = masks[keep], model(images).argmax(1)[keep]
        assert r["miou"] == pytest.approx(jaccard_score(truth, pred, average="macro", labels=list(range(4))))
        assert r["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert rows[0]["miou"] == 1.0 and rows[1]["miou"] < 0.9
    assert "mIoU" in robustness_table(rows)
