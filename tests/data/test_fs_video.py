import numpy as np
import pytest
import torch

import pixelwise.data.fs_video as fs_video
from pixelwise.data.fs_video import FSVideo, frame_targets, generate_videos, render_videos
from pixelwise.errors import PixelwiseError


@pytest.fixture
def solid_items(monkeypatch):
    """Fashion-MNIST replaced by solid squares of distinct brightness: train classes 0-4, test 5-9."""
    def fake(split="train", data_dir=None, download=True):
        labels = torch.arange(5) + (0 if split == "train" else 5)
        images = (torch.arange(5) * 20 + 150).to(torch.uint8)[:, None, None].expand(5, 28, 28).clone()
        return images, labels
    monkeypatch.setattr(fs_video, "load_fashion_mnist", fake)


def test_sequences_follow_the_protocol(solid_items):
    a = render_videos("train", 24, seed=10, size=64, frames=12)
    assert a["images"].shape == a["track_ids"].shape == (24, 12, 64, 64)
    assert a["boxes"].shape == (24, 12, 6, 4) and a["visibility"].shape == (24, 12, 6)
    labels = a["labels"]
    assert set(np.unique(labels)) <= set(range(6))        # train items only (class + 1 in 1-5)
    counts = (labels > 0).sum(1)
    assert counts.min() >= 2 and counts.max() <= 6
    for i in range(24):
        for t in range(12):
            ids = a["track_ids"][i, t]
            for j in range(6):
                rows, cols = np.nonzero(ids == j + 1)
                vis = a["visibility"][i, t, j]
                assert (len(rows) > 0) == (vis > 0)
                if len(rows):
                    assert labels[i, j] > 0 and 0 < vis <= 1
                    assert a["boxes"][i, t, j].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    present = a["visibility"] > 0
    # Garments enter or leave: some tracks are absent from some frames, and some are cut by the border.
    assert (present.any(1) & ~present.all(1)).any()
    assert ((a["visibility"] > 0) & (a["visibility"] < 1)).any()
    # Some sequences hold two copies of one item: two tracks with the same label (and here the same look).
    twins = [i for i in range(24) if len(set(labels[i][labels[i] > 0])) < counts[i]]
    assert twins


def test_motion_is_smooth_and_depth_order_fixed(solid_items):
    a = render_videos("test", 8, seed=12, size=128, frames=10)
    assert set(np.unique(a["labels"])) <= {0, *range(6, 11)}
    full = (a["visibility"] == 1)
    both = full[:, 1:] & full[:, :-1]
    centres = (a["boxes"][..., :2] + a["boxes"][..., 2:]) / 2
    step = np.abs(np.diff(centres, axis=1))[both]
    assert step.max() < 4 * 1.5 + 3         # at most 4 px/frame plus the random walk and rounding
    # Depth follows the id in every frame: the highest id shown is never occluded, so its (solid,
    # maybe border-clipped) square shows whole, a full rectangle.
    for i in range(8):
        for t in range(10):
            ids = a["track_ids"][i, t]
            top = int(ids.max())
            x1, y1, x2, y2 = a["boxes"][i, t, top - 1].astype(int)
            assert (ids[y1:y2, x1:x2] == top).all()


def test_generation_is_deterministic_cached_and_prefix_stable(solid_items, tmp_path):
    a = generate_videos("test", 6, seed=12, size=32, frames=5, root=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "fs_video_test_n6_seed12_size32_t5" in files[0].name
    b = generate_videos("test", 6, seed=12, size=32, frames=5, root=tmp_path)
    first = render_videos("test", 3, 12, 32, 5)
    for k in a:
        assert np.array_equal(a[k], b[k]) and np.array_equal(first[k], a[k][:3])
    other = render_videos("test", 6, 13, 32, 5)
    assert not np.array_equal(other["images"], a["images"])


def test_dataset_items(solid_items, tmp_path):
    ds = FSVideo("test", root=tmp_path, size=32, n=3, frames=5)
    assert len(ds) == 3 and ds.classes[0] == "background" and len(ds.classes) == 11
    item = ds[1]
    assert item["images"].shape == (5, 3, 32, 32) and item["images"].dtype == torch.float32
    assert 0 <= item["images"].min() and item["images"].max() <= 1
    ids, masks = item["track_ids"], item["masks"]
    assert masks.shape == ids.shape == (5, 32, 32) and masks.dtype == torch.int64
    assert torch.equal(masks > 0, ids > 0)
    for j in range(6):
        if (ids == j + 1).any():
            assert (masks[ids == j + 1] == item["labels"][j]).all()
    targets = frame_targets(item, 0)
    assert targets["boxes"].shape[1] == 4 and len(targets["boxes"]) == len(targets["ids"]) == len(targets["labels"])
    assert (targets["visibility"] > 0).all()
    with pytest.raises(PixelwiseError, match="frame index"):
        frame_targets(item, 5)


def test_bad_arguments_name_the_value():
    with pytest.raises(PixelwiseError, match="'val'"):
        FSVideo("val")
    with pytest.raises(PixelwiseError, match="size"):
        render_videos("test", 2, 0, size=8)
