"""The CenterNet detector on SwiftNet and the torchvision FCOS baseline: decoding, target encoding, a
one-batch overfit, and torchvision's detection interface."""
from __future__ import annotations

import math

import pytest
import torch

from pixelwise.data.fs_det import FSDet, detection_collate
from pixelwise.metrics.detection import coco_map
from pixelwise.models import create_model, list_models, model_info
from pixelwise.models.center_targets import encode_targets, focal_loss, gaussian_radius
from pixelwise.models.centernet import DenseMaps, decode_detections

TINY = {"num_features": 32, "backbone_kwargs": {"channels": [8, 16, 32, 64], "stem_width": 8}}


def maps_of(targets, num_classes: int, grid: tuple[int, int]) -> DenseMaps:
    """The dense maps a perfect detector would output: logit of the target heatmap, size and offset at peaks."""
    enc = encode_targets(targets, num_classes, grid)
    n = len(targets)
    size, offset = torch.zeros(n, 2, *grid), torch.zeros(n, 2, *grid)
    for i, c, s, o in zip(enc.image, enc.cell, enc.size, enc.offset):
        size[i, :, c // grid[1], c % grid[1]] = s
        offset[i, :, c // grid[1], c % grid[1]] = o
    return DenseMaps(torch.logit(enc.heatmap.clamp(1e-6, 1 - 1e-6)), size, offset)


def test_decoding_a_hand_made_heatmap_gives_its_boxes():
    heat = torch.full((1, 3, 8, 8), -10.0)
    heat[0, 1, 2, 3] = 2.0                         # class 2, a peak at x=3, y=2
    heat[0, 1, 2, 4] = 1.0                         # its neighbour: not a peak (3x3 max-pool)
    heat[0, 2, 6, 5] = 0.0                         # class 3 at x=5, y=6, score 0.5
    size, offset = torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)
    size[0, :, 2, 3] = torch.tensor([2.0, 3.0])    # 8 x 12 px
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    size[0, :, 6, 5] = torch.tensor([1.0, 1.0])
    out = decode_detections(DenseMaps(heat, size, offset), (32, 32), top_k=2)[0]
    # centres ((3 + 0.5) * 4, (2 + 0.25) * 4) = (14, 9), half size (4, 6); (5 * 4, 6 * 4), half size (2, 2)
    assert torch.allclose(out["boxes"], torch.tensor([[10.0, 3.0, 18.0, 15.0], [18.0, 22.0, 22.0, 26.0]]))
    assert torch.allclose(out["scores"], torch.sigmoid(torch.tensor([2.0, 0.0])))
    assert out["labels"].tolist() == [2, 3] and out["labels"].dtype == torch.int64
    assert out["boxes"].dtype == torch.float32


def test_gaussian_radius_matches_a_hand_computed_case():
    # CenterNet's formula for a 10 x 10 box at IoU 0.7: roots 19.07, 36.73 and (-28 + sqrt(1120)) / 2.
    r = gaussian_radius(torch.tensor([10.0]), torch.tensor([10.0]), 0.7)
    assert r.item() == pytest.approx((-28 + math.sqrt(28 ** 2 + 4 * 2.8 * 30)) / 2, rel=1e-6)


def test_targets_encoded_then_decoded_give_the_boxes_back(tmp_path):
    ds = FSDet("test", root=tmp_path, size=64, n=24)
    targets = [ds[i][1] for i in range(len(ds))]
    maps = maps_of(targets, 10, (16, 16))
    predictions = decode_detections(maps, (64, 64))
    assert coco_map(targets, predictions)["ap"] == pytest.approx(1.0)
    # Each non-crowd box is found exactly, at the top of its image's list, with score 1.
    t, p = targets[0], predictions[0]
    real = t["iscrowd"] == 0
    top = p["boxes"][:int(real.sum())]
    for box in t["boxes"][real]:
        assert (top - box).abs().amax(1).min() < 1e-4


def test_focal_loss_matches_a_hand_computed_case():
    logits = torch.tensor([0.0, 1.0, -1.0]).reshape(1, 1, 1, 3)
    target = torch.tensor([1.0, 0.5, 0.0]).reshape(1, 1, 1, 3)
    p = torch.sigmoid(logits).flatten().tolist()
    expected = -(math.log(p[0]) * (1 - p[0]) ** 2 + math.log(1 - p[1]) * p[1] ** 2 * 0.5 ** 4
                 + math.log(1 - p[2]) * p[2] ** 2)
    assert focal_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", list_models("detection"))
def test_detectors_follow_torchvision_interface(name):
    assert model_info(name).kind == "detection"
    model = create_model(name, num_classes=10, **TINY)
    x = torch.rand(2, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([3]),
                "iscrowd": torch.tensor([0])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                "iscrowd": torch.zeros(0, dtype=torch.int64)}]
    model.train()
    losses = model(x, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        out = model(x)
        maps = model.dense(x)
    assert len(out) == 2 and all(set(o) == {"boxes", "scores", "labels"} for o in out)
    for o in out:
        assert o["boxes"].shape[1:] == (4,) and o["boxes"].dtype == torch.float32 and len(o["boxes"]) <= 100
        assert o["labels"].dtype == torch.int64 and ((o["labels"] >= 1) & (o["labels"] <= 10)).all()
        assert (o["boxes"][:, 2:] >= o["boxes"][:, :2]).all()
    assert hasattr(maps, "_fields") and all(isinstance(m, torch.Tensor) for m in maps)


def test_a_tiny_detector_overfits_one_batch(tmp_path):
    torch.manual_seed(0)
    images, targets = detection_collate([FSDet("train", root=tmp_path, size=64, n=4)[i] for i in range(4)])
    model = create_model("swiftnet_det", num_classes=10, num_features=32, head_width=16,
                         backbone_kwargs={"channels": [16, 32, 64, 64], "stem_width": 16})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):    # AP50 0.98 from step 40 on (here)
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        predictions = model(images)
    assert coco_map(targets, predictions)["ap50"] > 0.9


@pytest.mark.parametrize("name", ["swiftnet_det", "fcos"])
def test_detectors_take_the_pretrained_efficientnet_lite0(name):
    from pixelwise.models.backbones import create_backbone
    model = create_model(name, num_classes=10, backbone="efficientnet_lite0", pretrained=True, num_features=32).eval()
    reference = create_backbone("efficientnet_lite0", pretrained=True).state_dict()
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in reference.items())
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out[0]["boxes"].shape[1:] == (4,)
