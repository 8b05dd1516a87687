import numpy as np
import pytest
import torch
from torchvision import tv_tensors

import pixelwise.data.scenes as scenes
from pixelwise.data.fashion_mnist import load_fashion_mnist
from pixelwise.data.scenes import (FASHION_SCENES_CLASSES, SHIFTS, FashionScenes, generate_scenes,
                                   scene_instances)
from pixelwise.errors import PixelwiseError
from tests.data.conftest import solid_fashion_mnist


@pytest.fixture
def solid_items(monkeypatch):
    """Fashion-MNIST replaced by solid white squares: train items of classes 0-4, test items of 5-9."""
    fake = solid_fashion_mnist
    monkeypatch.setattr(scenes, "load_fashion_mnist", fake)


def test_scene_composition_follows_the_protocol(solid_items, tmp_path):
    images, masks = generate_scenes("train", 30, seed=0, size=128, root=tmp_path)
    assert images.shape == masks.shape == (30, 128, 128) and images.dtype == masks.dtype == np.uint8
    # Train scenes hold only train-split garments (labels 1-5), test scenes only test-split ones (6-10).
    assert set(np.unique(masks)) <= set(range(6)) and 0 in masks
    _, test_masks = generate_scenes("test", 30, seed=2, size=128, root=tmp_path)
    assert set(np.unique(test_masks)) <= {0, *range(6, 11)}
    for image, mask in zip(images, masks):
        garment = mask > 0
        # At least two garments of at least 28x28 px each, but never the whole canvas.
        assert 28 * 28 <= garment.sum() < 128 * 128
        assert (image[garment] == 255).all()          # opaque items occlude what lies below
        assert image[~garment].max() <= round(0.6 * 255)  # background brightness at most 0.6
        rows, cols = np.nonzero(garment)
        assert rows.max() - rows.min() >= 27 and cols.max() - cols.min() >= 27


def test_generation_is_deterministic_cached_and_prefix_stable(solid_items, tmp_path):
    a = generate_scenes("val", 12, seed=1, size=64, root=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "val_n12_seed1_size64" in files[0].name
    b = scenes.render_scenes("val", 12, 1, 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    cached = generate_scenes("val", 12, seed=1, size=64, root=tmp_path)
    assert np.array_equal(a[0], cached[0])
    first = generate_scenes("val", 5, seed=1, size=64, root=tmp_path)
    assert np.array_equal(first[0], a[0][:5]) and np.array_equal(first[1], a[1][:5])
    other = generate_scenes("val", 12, seed=3, size=64, root=tmp_path)
    assert not np.array_equal(other[0], a[0])
    assert len(list(tmp_path.glob("*.npz"))) == 3


@pytest.mark.parametrize("shift", SHIFTS)
def test_shift_keeps_garments_and_changes_the_look(solid_items, tmp_path, shift):
    clean_images, clean_masks = generate_scenes("test", 4, seed=2, size=64, root=tmp_path)
    images, masks = generate_scenes("test", 4, seed=2, size=64, shift=shift, root=tmp_path)
    assert np.array_equal(masks, clean_masks)
    assert not np.array_equal(images, clean_images)


def test_dataset_on_real_fashion_mnist(tmp_path):
    ds = FashionScenes("test", root=tmp_path, size=32, n=6)
    assert len(ds) == 6 and ds.classes == FASHION_SCENES_CLASSES and len(ds.classes) == 11
    assert ds.classes[0] == "background"
    image, mask = ds[0]
    assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and mask.dtype == torch.int64
    assert 0 <= image.min() and image.max() <= 1
    assert torch.equal(image[0], image[2])
    assert 0 < int((mask > 0).sum()) < 32 * 32 and int(mask.max()) <= 10


def test_instances_explain_the_masks(tmp_path):
    # Real Fashion-MNIST: every labelled pixel belongs to a pasted garment whose test-split label it carries.
    _, masks = generate_scenes("test", 20, seed=2, size=64, root=tmp_path)
    instances, picked = scene_instances("test", 20, seed=2, size=64)
    labels = load_fashion_mnist("test")[1].numpy()
    assert instances.shape == masks.shape and np.array_equal(instances > 0, masks > 0)
    for inst, mask, garments in zip(instances, masks, picked):
        assert 2 <= len(garments) <= 6 and inst.max() <= len(garments)
        expected = np.concatenate([[0], labels[garments] + 1])[inst]
        assert np.array_equal(mask, expected)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(PixelwiseError, match="split"):
        FashionScenes("training", root=tmp_path)
    with pytest.raises(PixelwiseError, match="FS-Shift"):
        generate_scenes("test", 2, 2, shift="fog", root=tmp_path)
