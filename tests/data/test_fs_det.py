"""FS-Det: boxes from instance maps, the dataset, its joint transforms and collate."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors

import pixelwise.data.fs_det as fs_det
import pixelwise.data.scenes as scenes
from pixelwise.data.fashion_mnist import find_data_dir
from pixelwise.data.fs_det import (FS_DET_CLASSES, MIN_VISIBLE_PIXELS, FSDet, detection_collate,
                                   detection_train_transform, scene_boxes)
from pixelwise.data.scenes import FashionScenes, scene_instances
from pixelwise.data.transforms import seeded_call
from pixelwise.errors import PixelwiseError
from tests.conftest import make_pattern_images

# 1 px slack: a box is scaled exactly (x -> s * x) while nearest-neighbour resampling moves a mask's
# edge to the next pixel edge (ceil(s * x)), so the two differ by less than a pixel; crops, pads
# and flips move both by whole pixels.
SLACK = 1 + 1e-3


@pytest.fixture
def pattern_items(monkeypatch):
    """Fashion-MNIST replaced by the conftest band patterns (speckled, so some garments are tiny)."""
    def fake(split="train", data_dir=None, download=True):
        images, labels = make_pattern_images(64, seed=0 if split == "train" else 1)
        return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    monkeypatch.setattr(scenes, "load_fashion_mnist", fake)
    monkeypatch.setattr(fs_det, "load_fashion_mnist", fake)
    return fake


def extents(instances: np.ndarray, ids) -> np.ndarray:
    """Pixel-edge xyxy of each id's pixels, computed independently of scene_boxes."""
    boxes = []
    for k in ids:
        rows, cols = np.nonzero(instances == k)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def check_scenes(split, n, seed, size, item_labels):
    instances, picked = scene_instances(split, n, seed, size)
    crowd_seen = 0
    for inst, garments in zip(instances, picked):
        t = scene_boxes(inst, item_labels[garments])
        visible = [k for k in range(1, len(garments) + 1) if (inst == k).any()]
        assert t["instance"].tolist() == visible
        assert np.array_equal(t["boxes"], extents(inst, visible))
        assert np.array_equal(t["labels"], item_labels[np.asarray(garments)[t["instance"] - 1]] + 1)
        counts = np.array([(inst == k).sum() for k in visible])
        assert np.array_equal(t["area"], counts) and np.array_equal(t["iscrowd"], counts < MIN_VISIBLE_PIXELS)
        crowd_seen += int(t["iscrowd"].sum())
    return crowd_seen


def test_boxes_are_the_visible_extents(pattern_items):
    crowd_seen = check_scenes("train", 40, 0, 64, pattern_items("train")[1].numpy())
    assert crowd_seen > 0   # the speckled items leave some garments with a few visible pixels


def test_boxes_on_real_fashion_mnist():
    if find_data_dir() is None:
        pytest.skip("real Fashion-MNIST not found ($PIXELWISE_DATA or /usr/share/datasets/fashion-mnist)")
    check_scenes("test", 30, 2, 128, scenes.load_fashion_mnist("test")[1].numpy())


def test_iscrowd_threshold_and_hidden_garments():
    inst = np.zeros((16, 16), np.uint8)
    inst.reshape(-1)[:MIN_VISIBLE_PIXELS - 1] = 1          # 19 pixels: crowd
    inst[8:13, 0:4] = 2                                    # 20 pixels: a box that counts
    inst[15, 15] = 4                                       # garment 3 is fully hidden: no box
    t = scene_boxes(inst, [0, 9, 3, 5])
    assert t["instance"].tolist() == [1, 2, 4] and t["labels"].tolist() == [1, 10, 6]
    assert t["iscrowd"].tolist() == [1, 0, 1] and t["area"].tolist() == [19, 20, 1]
    assert t["boxes"].tolist() == [[0, 0, 16, 2], [0, 8, 4, 13], [15, 15, 16, 16]]
    assert scene_boxes(np.zeros((4, 4), np.uint8), [1, 2])["boxes"].shape == (0, 4)
    with pytest.raises(PixelwiseError, match="id 4"):
        scene_boxes(inst, [0, 9])
    with pytest.raises(PixelwiseError, match="0-9"):
        scene_boxes(inst, [0, 9, 3, 10])


def test_dataset_gives_the_fashion_scenes_images(pattern_items, tmp_path):
    ds = FSDet("test", root=tmp_path, size=64, n=8)
    seg = FashionScenes("test", root=tmp_path, size=64, n=8)
    instances, picked = scene_instances("test", 8, 2, 64)
    assert len(ds) == 8 and ds.classes == FS_DET_CLASSES and len(ds.classes) == 10
    item_labels = pattern_items("test")[1].numpy()
    for i in range(8):
        image, target = ds[i]
        assert isinstance(image, tv_tensors.Image) and image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert torch.equal(image, seg[i][0])
        boxes = target["boxes"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.canvas_size == (64, 64)
        assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY
        expected = scene_boxes(instances[i], item_labels[picked[i]])
        assert np.array_equal(boxes.numpy(), expected["boxes"])
        assert target["labels"].dtype == target["iscrowd"].dtype == torch.int64
        assert target["labels"].tolist() == expected["labels"].tolist()
        assert 1 <= target["labels"].min() and target["labels"].max() <= 10
        assert target["area"].dtype == torch.float32 and target["area"].tolist() == expected["area"].tolist()
    assert len(list(tmp_path.glob("fs_det_test_n8_seed2_size64_*.npz"))) == 1
    again = FSDet("test", root=tmp_path, size=64, n=8)       # from the cache
    assert all(torch.equal(again.targets[k], ds.targets[k]) for k in ds.targets)
    with pytest.raises(PixelwiseError, match="split"):
        FSDet("training", root=tmp_path)


def test_transforms_are_seeded_by_epoch_and_index(pattern_items, tmp_path):
    ds = FSDet("train", root=tmp_path, size=64, n=6, transforms=detection_train_transform(48))
    ds.set_epoch(3, seed=1)
    first = [ds[i] for i in range(6)]
    torch.rand(5)                          # the global generator does not matter
    again = [ds[i] for i in range(6)]
    for (a, ta), (b, tb) in zip(first, again):
        assert torch.equal(a, b) and all(torch.equal(ta[k], tb[k]) for k in ta)
    ds.set_epoch(4, seed=1)
    assert any(not torch.equal(first[i][0], ds[i][0]) for i in range(6))
    images, targets = detection_collate(first)
    assert images.shape == (6, 3, 48, 48) and type(images) is torch.Tensor and len(targets) == 6
    for _, t in first:
        n = len(t["boxes"])
        assert t["boxes"].canvas_size == (48, 48) and len(t["labels"]) == len(t["iscrowd"]) == len(t["area"]) == n
        b = t["boxes"]
        assert ((b[:, 2:] - b[:, :2]) >= 1).all() and (b >= 0).all() and (b <= 48).all()
    ragged, _ = detection_collate([FSDet("test", root=tmp_path, size=s, n=1)[0] for s in (32, 64)])
    assert isinstance(ragged, list) and [tuple(im.shape) for im in ragged] == [(3, 32, 32), (3, 64, 64)]


def sample(instances: np.ndarray) -> tuple[tv_tensors.Image, dict, np.ndarray]:
    """An (image, target) whose labels are the instance ids and whose per-box masks travel with it."""
    t = scene_boxes(instances, np.zeros(int(instances.max(initial=0)), np.int64))
    h, w = instances.shape
    masks = instances[None] == t["instance"][:, None, None]
    target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(t["boxes"]), format="XYXY", canvas_size=(h, w)),
              "labels": torch.from_numpy(t["instance"]), "iscrowd": torch.from_numpy(t["iscrowd"]),
              "area": torch.from_numpy(t["area"]), "masks": tv_tensors.Mask(torch.from_numpy(masks.astype(np.uint8)))}
    image = tv_tensors.Image(torch.from_numpy(instances).float().div(8).expand(3, -1, -1).clone())
    solid = t["area"] == (t["boxes"][:, 2] - t["boxes"][:, 0]) * (t["boxes"][:, 3] - t["boxes"][:, 1])
    return image, target, dict(zip(t["instance"].tolist(), solid.tolist()))


def mask_box(mask: torch.Tensor) -> np.ndarray | None:
    rows, cols = np.nonzero(mask.numpy())
    return None if len(rows) == 0 else np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)


rectangles = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 14), st.integers(1, 14)),
                      min_size=1, max_size=5)


def paint(size: int, rects) -> np.ndarray:
    """Instance map of rectangles pasted in order, later ones on top (so earlier ones may be cut)."""
    inst = np.zeros((size, size), np.uint8)
    for k, (x, y, w, h) in enumerate(rects):
        inst[y % size:y % size + h, x % size:x % size + w] = k + 1
    return inst


@settings(max_examples=30, deadline=None)
@given(size=st.integers(16, 40), rects=rectangles, scale=st.tuples(st.floats(0.5, 2.0), st.floats(0.0, 1.0)),
       crop=st.integers(12, 48), seed=st.integers(0, 2 ** 31))
def test_boxes_follow_the_transformed_masks(size, rects, scale, crop, seed):
    image, target, solid = sample(paint(size, rects))
    lo, hi = scale[0], scale[0] + scale[1]
    out_image, out = seeded_call(detection_train_transform(crop, (lo, hi)), image, target, (seed,))
    assert out_image.shape == (3, crop, crop) and out["masks"].shape[1:] == (crop, crop)
    n = len(out["boxes"])
    assert len(out["labels"]) == len(out["iscrowd"]) == len(out["area"]) == len(out["masks"]) == n
    kept = out["labels"].tolist()
    assert kept == sorted(kept)                      # survivors keep their order, entries stay aligned
    before = {int(k): c for k, c in zip(target["labels"], target["iscrowd"])}
    assert all(before[k] == int(c) for k, c in zip(kept, out["iscrowd"]))
    box = out["boxes"].numpy().astype(float)
    assert np.allclose(out["area"].numpy(), (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), rtol=1e-5)
    for j, k in enumerate(kept):
        found = mask_box(out["masks"][j])
        if found is None:   # a cut garment may lose every pixel; a solid one only on a ~1 px box
            assert not solid[k] or min(box[j, 2] - box[j, 0], box[j, 3] - box[j, 1]) < SLACK
            continue
        if solid[k]:        # a rectangle stays a rectangle: its box is tight
            assert np.abs(found - box[j]).max() <= SLACK, (k, found, box[j])
        else:               # a cut one may be cropped to a part: its box still holds it
            assert (found[:2] >= box[j, :2] - SLACK).all() and (found[2:] <= box[j, 2:] + SLACK).all()


@settings(max_examples=20, deadline=None)
@given(size=st.integers(16, 32), rects=rectangles, scale=st.floats(1.0, 1.5), seed=st.integers(0, 2 ** 31))
def test_upscaled_boxes_stay_tight_on_any_shape(size, rects, scale, seed):
    # Upscaling with nearest neighbour keeps every pixel, so without a crop every box stays tight.
    image, target, _ = sample(paint(size, rects))
    crop = round(size * scale)
    _, out = seeded_call(detection_train_transform(crop, (scale, scale)), image, target, (seed,))
    assert len(out["boxes"]) == len(target["boxes"])
    for j in range(len(out["boxes"])):
        assert np.abs(mask_box(out["masks"][j]) - out["boxes"][j].numpy()).max() <= SLACK


def test_flips_mirror_x_exactly():
    image, target, _ = sample(paint(24, [(2, 3, 10, 6), (6, 5, 12, 12), (20, 0, 4, 2)]))
    transform = detection_train_transform(24, (1.0, 1.0), flip=True)
    seen = set()
    for seed in range(12):
        out_image, out = seeded_call(transform, image, target, (seed,))
        boxes, flipped = target["boxes"].numpy(), bool(torch.equal(out_image, image.flip(-1)))
        assert flipped or torch.equal(out_image, image)
        expected = np.stack([24 - boxes[:, 2], boxes[:, 1], 24 - boxes[:, 0], boxes[:, 3]], 1) if flipped else boxes
        assert np.array_equal(out["boxes"].numpy(), expected)
        assert all(np.array_equal(mask_box(m), b) for m, b in zip(out["masks"], expected))
        seen.add(flipped)
    assert seen == {True, False}
