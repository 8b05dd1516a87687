import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors

from pixelwise.data.transforms import RandomScale, seeded_call, train_transform

OFFSET = 1000   # mask value = OFFSET + row * W + col, clear of the ignore label 255


def coordinate_pair(h: int, w: int):
    """An image whose channels hold each pixel's row and column, and a mask encoding the same pixel."""
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    image = tv_tensors.Image(torch.stack([rows / 100, cols / 100, torch.ones(h, w)]))
    mask = tv_tensors.Mask((OFFSET + rows * w + cols).long())
    return image, mask


@settings(max_examples=40, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), crop=st.integers(8, 48),
       lo=st.floats(0.5, 1.0), span=st.floats(0.0, 1.0), key=st.integers(0, 2**31))
def test_joint_transform_keeps_image_and_mask_aligned(h, w, crop, lo, span, key):
    image, mask = coordinate_pair(h, w)
    out_image, out_mask = seeded_call(train_transform(crop, (lo, lo + span)), image, mask, (key, 0))
    assert isinstance(out_image, tv_tensors.Image) and isinstance(out_mask, tv_tensors.Mask)
    assert out_image.shape == (3, crop, crop) and out_mask.shape == (crop, crop)
    assert out_mask.dtype == torch.int64
    padded = out_mask == 255
    # Padding: ignore label in the mask exactly where the image's constant channel is 0.
    assert torch.equal(padded, out_image[2] < 0.5)
    valid = ~padded & (out_image[2] > 0.999)   # away from the blend of image and padding at its edge
    code = out_mask[valid] - OFFSET
    assert (code >= 0).all() and (code < h * w).all()
    row, col = code // w, code % w
    # The mask's nearest source pixel and the image's interpolated coordinates agree within 2 source px.
    assert (row - out_image[0][valid] * 100).abs().max() <= 2.0
    assert (col - out_image[1][valid] * 100).abs().max() <= 2.0


@settings(max_examples=20, deadline=None)
@given(h=st.integers(4, 30), w=st.integers(4, 30), key=st.integers(0, 2**31))
def test_crop_and_flip_without_scaling_are_exact(h, w, key):
    image, mask = coordinate_pair(h, w)
    out_image, out_mask = seeded_call(train_transform(min(h, w), (1.0, 1.0)), image, mask, (key,))
    code = out_mask - OFFSET
    assert torch.equal(code // w, (out_image[0] * 100).round().long())
    assert torch.equal(code % w, (out_image[1] * 100).round().long())


def test_seeded_call_is_a_function_of_the_key_and_leaves_global_rng_alone():
    image, mask = coordinate_pair(32, 32)
    t = train_transform(24, (0.5, 2.0))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = seeded_call(t, image, mask, (7, 1, 5))
    assert torch.equal(torch.rand(3), expected_next)
    b = seeded_call(t, image, mask, (7, 1, 5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    others = [seeded_call(t, image, mask, (7, 2, k))[1] for k in range(5)]
    assert any(not torch.equal(a[1], o) for o in others)


def test_random_scale_resizes_mask_with_nearest_labels():
    mask = tv_tensors.Mask(torch.tensor([[0, 1], [2, 255]]).repeat_interleave(5, 0).repeat_interleave(5, 1))
    image = tv_tensors.Image(torch.rand(3, 10, 10))
    torch.manual_seed(0)
    out_image, out_mask = RandomScale((1.7, 1.7))(image, mask)
    assert out_image.shape == (3, 17, 17) and out_mask.shape == (17, 17)
    assert set(out_mask.unique().tolist()) == {0, 1, 2, 255}


def test_photometric_changes_image_not_mask():
    import torch
    from torchvision import tv_tensors

    from pixelwise.data.transforms import seeded_call, train_transform
    image = tv_tensors.Image(torch.rand(3, 32, 32))
    mask = tv_tensors.Mask(torch.randint(0, 5, (32, 32)))
    plain = train_transform(32, (1.0, 1.0), flip=False)
    photo = train_transform(32, (1.0, 1.0), flip=False, photometric=True)
    changed = 0
    for i in range(8):
        (a, ma), (b, mb) = seeded_call(plain, image, mask, (0, i)), seeded_call(photo, image, mask, (0, i))
        assert torch.equal(ma, mb) and torch.equal(ma, mask)
        assert 0 <= b.min() and b.max() <= 1
        changed += not torch.allclose(a, b)
    assert changed >= 4
