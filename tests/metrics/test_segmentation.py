import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.segmentation import CITYSCAPES_CLASSES, CITYSCAPES_TRAIN_IDS, cityscapes
from pixelwise.metrics.segmentation import SegmentationMeter, iou_per_class, mean_iou, pixel_accuracy


def test_hand_computed_miou():
    targets = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    preds = torch.tensor([[[0, 1, 1], [1, 0, 2]]])
    meter = SegmentationMeter(num_classes=4)
    meter.update_preds(preds, targets)
    # class 0: TP 1, FP 1 (on the 2), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0;
    # class 3 never occurs -> NaN, left out of the mean; the prediction on the ignored pixel counts nowhere.
    iou = iou_per_class(meter.cm)
    assert iou[:3].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert math.isnan(iou[3])
    assert mean_iou(meter.cm) == pytest.approx(1 / 3)
    assert pixel_accuracy(meter.cm) == pytest.approx(3 / 5)
    assert meter.summary()["n"] == 1


def test_meter_accumulates_over_batches_not_per_image_means():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, 8, 8, generator=g)
    targets = torch.randint(0, 5, (6, 8, 8), generator=g)
    targets[0, :4] = 255
    whole, parts, merged = SegmentationMeter(5), SegmentationMeter(5), SegmentationMeter(5)
    whole.update(logits, targets)
    for i in range(0, 6, 2):
        parts.update(logits[i:i + 2], targets[i:i + 2])
    other = SegmentationMeter(5)
    merged.update(logits[:3], targets[:3])
    other.update(logits[3:], targets[3:])
    merged.merge(other)
    assert torch.equal(whole.cm, parts.cm) and torch.equal(whole.cm, merged.cm)
    assert whole.cm.sum() == (targets != 255).sum()
    assert whole.summary() == parts.summary()


def test_miou_equals_cityscapesscripts(tmp_path, monkeypatch):
    from cityscapesscripts.helpers.labels import trainId2label
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as csev

    rng = np.random.default_rng(0)
    train_to_label_id = np.array([trainId2label[t].id for t in range(19)], np.uint8)
    preds, gts, pred_files, gt_files = [], [], [], []
    for i in range(3):
        city = "aachen" if i < 2 else "bonn"
        stem = f"{city}_{i:06d}_000019"
        gt = rng.integers(0, 34, (12, 20)).astype(np.uint8)   # every labelId, ignored ones included
        pred = rng.integers(0, 19, (12, 20))
        pred[gt == 7] = 0                                      # some agreement, so IoUs are not all tiny
        for sub, name, arr in (("leftImg8bit", f"{stem}_leftImg8bit.png", rng.integers(0, 256, (12, 20, 3))),
                               ("gtFine", f"{stem}_gtFine_labelIds.png", gt)):
            path = tmp_path / "cs" / sub / "val" / city / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(path)
        gt_files.append(str(tmp_path / "cs" / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"))
        pred_files.append(str(tmp_path / "results" / f"{stem}_pred.png"))
        (tmp_path / "results").mkdir(exist_ok=True)
        Image.fromarray(train_to_label_id[pred]).save(pred_files[-1])
        preds.append(torch.from_numpy(pred))

    ds = cityscapes(tmp_path / "cs", "val")
    meter = SegmentationMeter(19)
    for i in range(len(ds)):
        _, mask = ds[i]
        meter.update_preds(preds[i][None], mask[None])

    monkeypatch.setattr(csev.args, "evalInstLevelScore", False)
    monkeypatch.setattr(csev.args, "JSONOutput", False)
    monkeypatch.setattr(csev.args, "quiet", True)
    ref = csev.evaluateImgLists(pred_files, gt_files, csev.args)
    ours = dict(zip(CITYSCAPES_CLASSES, iou_per_class(meter.cm).tolist()))
    for name, value in ours.items():
        ref_value = ref["classScores"][name]
        assert (math.isnan(value) and math.isnan(ref_value)) or value == pytest.approx(ref_value, abs=1e-12), name
    assert 0.02 < ref["averageScoreClasses"] < 1
    assert mean_iou(meter.cm) == pytest.approx(ref["averageScoreClasses"], abs=1e-12)


def test_cityscapes_label_mapping_matches_cityscapesscripts():
    from cityscapesscripts.helpers.labels import labels
    expected = {l.id: (255 if l.trainId in (-1, 255) else l.trainId) for l in labels if 0 <= l.id <= 33}
    assert dict(enumerate(CITYSCAPES_TRAIN_IDS)) == expected
    names = {l.trainId: l.name for l in labels if 0 <= l.trainId < 19}
    assert tuple(names[t] for t in range(19)) == CITYSCAPES_CLASSES
