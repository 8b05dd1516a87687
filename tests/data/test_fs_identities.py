import numpy as np
import pytest
import torch

import pixelwise.data.fs_video as fs_video
from pixelwise.data.fs_identities import (GALLERY, QUERY, UNUSED, FSIdentities, crop_boxes, identity_crops,
                                          retrieval_roles, twin_tracks)
from pixelwise.data.fs_video import render_videos
from pixelwise.errors import PixelwiseError


@pytest.fixture
def solid_items(monkeypatch):
    """Fashion-MNIST replaced by solid squares of distinct brightness (one item per class)."""
    def fake(split="train", data_dir=None, download=True):
        images = (torch.arange(10) * 10 + 150).to(torch.uint8)[:, None, None].expand(10, 28, 28).clone()
        return images, torch.arange(10)
    monkeypatch.setattr(fs_video, "load_fashion_mnist", fake)


def test_crops_sample_the_box_bilinearly():
    # On a ramp I[y, x] = x, bilinear sampling is exact: bin j of a box from x1 to x2 (pixel edges)
    # has its centre at x1 + (j + 0.5) (x2 - x1) / S, where the ramp (pixel i centred at i + 0.5) is that - 0.5.
    image = torch.arange(40.0).repeat(30, 1)[None]          # (1, 30, 40)
    box = torch.tensor([[6.0, 4.0, 26.0, 20.0]])
    crop = crop_boxes(image, box, 8)
    expected = 6 + (torch.arange(8) + 0.5) * 20 / 8 - 0.5
    assert crop.shape == (1, 1, 8, 8)
    assert torch.allclose(crop[0, 0], expected.expand(8, 8), atol=1e-5)
    assert crop_boxes(image, torch.zeros(0, 4), 8).shape == (0, 1, 8, 8)


def test_twins_share_class_and_size():
    labels = np.array([3, 3, 3, 5, 0, 0])
    boxes = np.zeros((2, 6, 4))
    visibility = np.zeros((2, 6))
    boxes[0, :4] = [[0, 0, 10, 12], [5, 5, 15, 17], [0, 0, 11, 12], [0, 0, 10, 12]]
    visibility[0, :4] = 1
    assert twin_tracks(labels, boxes, visibility) == {1}


def test_identity_crops_cover_the_visible_views(solid_items, tmp_path):
    arrays = render_videos("test", 6, seed=12, size=64, frames=8)
    a = identity_crops(arrays, size=16, min_visibility=0.5)
    assert a["crops"].shape[1:] == (16, 16) and a["crops"].dtype == np.uint8
    for s, k, t, crop in zip(a["sequence"][:50], a["track"][:50], a["frame"][:50], a["crops"][:50]):
        assert arrays["visibility"][s, t, k - 1] >= 0.5
        x1, y1, x2, y2 = arrays["boxes"][s, t, k - 1]
        region = arrays["images"][s, t, y1:y2, x1:x2]
        assert abs(float(crop.mean()) - float(region.mean())) < 25   # the same pixels, resampled
    visible = sum(int((arrays["visibility"][s, :, j] >= 0.5).sum()) for s in range(6) for j in range(6)
                  if j not in twin_tracks(arrays["labels"][s], arrays["boxes"][s], arrays["visibility"][s]))
    assert len(a["crops"]) == visible
    assert a["identity"].max() + 1 == len(a["names"]) and np.all(np.diff(a["identity"]) >= 0)
    roles = retrieval_roles(a["identity"], a["frame"])
    for i in np.unique(a["identity"]):
        r = roles[a["identity"] == i]
        assert (r == QUERY).sum() == (len(r) >= 2) and (r[0] == QUERY or len(r) < 2)
        assert (r == GALLERY).sum() == (len(r) // 2 if len(r) >= 2 else 0)
    assert set(np.unique(roles)) <= {GALLERY, QUERY, UNUSED}
    with pytest.raises(PixelwiseError, match="min_visibility"):
        identity_crops({**arrays, "visibility": arrays["visibility"] * 0}, 16)


def test_dataset_items(solid_items, tmp_path):
    train = FSIdentities("train", tmp_path, canvas=32, n=3, size=16)
    x, y = train[0]
    assert x.shape == (3, 16, 16) and 0 <= x.min() and x.max() <= 1 and y == 0
    assert len(train.classes) == int(train.identity.max()) + 1
    test = FSIdentities("test", tmp_path, canvas=32, n=3, size=16)
    assert len(test[0]) == 3 and test[0][2] == QUERY
