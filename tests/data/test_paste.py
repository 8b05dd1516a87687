"""Pasting negatives keeps images, semantic masks and outlier targets consistent."""
import numpy as np
import pytest
import torch

from pixelwise.data.fs_ood import OUTLIER_PHOTOS, digit_negatives, generate_fs_ood, load_negatives, photo_bank
from pixelwise.data.scenes import TEXTURE_PHOTOS
from pixelwise.errors import PixelwiseError
from pixelwise.data.paste import object_shapes, paste_negatives


def batch(n=6, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g)
    masks = torch.randint(0, 11, (n, size, size), generator=g)
    masks[:, :3] = 255   # an ignored band that must stay ignored
    return images, masks


def test_pasted_pixels_are_ignored_and_marked_elsewhere_unchanged():
    images, masks = batch()
    negatives = torch.zeros(4, 1, 8, 8)
    negatives[:, :, 2:6, 2:6] = torch.linspace(0.5, 1.0, 4)[:, None, None, None]   # a square object
    out, sem, target = paste_negatives(images, masks, negatives, torch.Generator().manual_seed(1),
                                       prob=1.0, count=(1, 2), size=(10, 20))
    pasted = target == 1
    assert pasted.any(1).any(1).all()                      # every scene got an object (prob=1)
    assert (sem[pasted] == 255).all()                      # semantic loss ignores pasted pixels
    assert torch.equal(sem[~pasted], masks[~pasted])       # and nothing else changed
    assert torch.equal(out.permute(0, 2, 3, 1)[~pasted], images.permute(0, 2, 3, 1)[~pasted])
    assert torch.equal(target[~pasted], torch.where(masks[~pasted] == 255, 255, 0))
    # Pasted pixels hold the negative's values (gray negatives go to all channels).
    values = out.permute(0, 2, 3, 1)[pasted]
    assert torch.equal(values[:, 0], values[:, 1]) and (values[:, 0] > 0.1).all()  # blurred edges stay on the object
    # Inputs are left alone.
    assert torch.equal(masks, batch()[1]) and torch.equal(images, batch()[0])


def test_paste_probability_count_and_determinism():
    images, masks = batch(n=40)
    digits, shapes = digit_negatives()
    never = paste_negatives(images, masks, digits, torch.Generator().manual_seed(0), prob=0.0, shapes=shapes)
    assert torch.equal(never[0], images) and not (never[2] == 1).any()
    a = paste_negatives(images, masks, digits, torch.Generator().manual_seed(3), prob=0.5, shapes=shapes)
    b = paste_negatives(images, masks, digits, torch.Generator().manual_seed(3), prob=0.5, shapes=shapes)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with_objects = (a[2] == 1).any(1).any(1).float().mean()
    assert 0.2 < with_objects < 0.8


def test_object_shapes_threshold():
    neg = torch.tensor([[[[0.0, 0.1], [0.5, 1.0]]]])
    assert object_shapes(neg).tolist() == [[[False, False], [True, True]]]


def test_bad_negatives_shape():
    images, masks = batch()
    with pytest.raises(ValueError, match="negatives must be"):
        paste_negatives(images, masks, torch.rand(3, 2, 8, 8), torch.Generator())


def test_fs_ood_scenes(tmp_path):
    images, masks, outliers = generate_fs_ood(n=12, size=64, root=tmp_path, progress=False)
    assert images.shape == masks.shape == outliers.shape == (12, 64, 64)
    per_scene = (outliers == 1).reshape(12, -1).sum(1)
    assert (per_scene > 0).all()                                   # 1 to 2 outliers in every scene
    assert ((masks == 255) == (outliers == 1)).all()               # outliers are exactly the ignored pixels
    again = generate_fs_ood(n=4, size=64, root=tmp_path, progress=False)   # scene i depends on i only
    assert np.array_equal(again[0], images[:4]) and np.array_equal(again[2], outliers[:4])
    assert not set(OUTLIER_PHOTOS) & set(TEXTURE_PHOTOS)


def test_jitter_keeps_range_and_masks():
    images, masks = batch(n=8)
    digits, shapes = digit_negatives()
    plain = paste_negatives(images, masks, digits, torch.Generator().manual_seed(5), prob=1.0, shapes=shapes)
    out, sem, target = paste_negatives(images, masks, digits, torch.Generator().manual_seed(5), prob=1.0,
                                       shapes=shapes, jitter=True)
    assert out.min() >= 0 and out.max() <= 1
    assert ((sem == 255) | (masks == 255)).eq((target == 1) | (masks == 255)).all()
    assert not torch.equal(out, plain[0])


def test_photo_negatives_come_from_other_photos_than_the_test_outliers():
    photos, shapes = load_negatives("photos")
    assert photos.shape == (256, 1, 64, 64) and shapes.shape == (256, 64, 64) and shapes.dtype == torch.bool
    assert 0 <= photos.min() and photos.max() <= 1 and photos.std() > 0.05   # real content, not flat
    assert shapes[1::2].all() and not shapes[0::2].all()                    # whole squares and ellipses
    test_bank, _ = photo_bank(n=64)
    # no training crop equals a test-outlier crop (different photos: scikit-learn's, not scikit-image's)
    distance = torch.cdist(photos.flatten(1), test_bank.flatten(1))
    assert distance.min() > 1.0
    mixed, mixed_shapes = load_negatives("digits+photos")
    digits, _ = digit_negatives()
    assert len(mixed) == 2 * len(digits) and mixed.shape[1:] == (1, 64, 64) and len(mixed_shapes) == len(mixed)
    with pytest.raises(PixelwiseError, match="known: digits, photos"):
        load_negatives("skimage")
