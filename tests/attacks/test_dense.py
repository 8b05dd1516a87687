"""Attacks on segmenters: the per-pixel loss ignores label 255, and so does the gradient."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.attacks import attack_loss, dense_loss, fgsm, input_gradient, pgd
from pixelwise.attacks.budgets import per_sample_norm
from tests.attacks.models import PointwiseSegmenter, conv_segmenter


def masks_with_ignore(n: int = 3, k: int = 4, side: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, k, (n, side, side), generator=g)
    masks[0] = 255                    # an image without labelled pixels
    masks[1, :, : side // 2] = 255    # half of another one
    return masks.to(torch.uint8)


def test_dense_loss_is_the_mean_over_labelled_pixels_of_each_image():
    logits = torch.randn(3, 4, 10, 10)
    masks = masks_with_ignore()
    got = dense_loss(logits, masks)
    assert got[0] == 0
    for i in (1, 2):  # reference: PyTorch's own ignore-aware mean, image by image
        ref = F.cross_entropy(logits[i:i + 1], masks[i:i + 1].long(), ignore_index=255)
        torch.testing.assert_close(got[i], ref)


def test_gradient_is_zero_where_every_target_is_ignored():
    torch.manual_seed(0)
    model = PointwiseSegmenter()
    x, masks = torch.rand(3, 3, 10, 10), masks_with_ignore()
    grad, _ = input_gradient(model, x, masks)
    assert grad[0].abs().max() == 0                  # whole image ignored
    assert grad[1, :, :, :5].abs().max() == 0        # ignored half of image 1 (pixels do not mix)
    assert grad[1, :, :, 5:].abs().min() > 0 and grad[2].abs().min() > 0
    adv = fgsm(model, x, masks, eps=0.05)
    assert torch.equal(adv[0], x[0]) and torch.equal(adv[1, :, :, :5], x[1, :, :, :5])


def test_dense_pgd_raises_the_loss_within_budget_on_a_convolutional_segmenter():
    model = conv_segmenter()
    x, masks = torch.rand(3, 3, 10, 10), masks_with_ignore()
    for norm, eps in (("linf", 0.03), ("l2", 0.5)):
        adv = pgd(model, x, masks, eps=eps, steps=5, norm=norm)
        assert adv.min() >= 0 and adv.max() <= 1
        assert (per_sample_norm(adv - x, norm) <= eps * (1 + 1e-5)).all()
        before, after = dense_loss(model(x), masks), dense_loss(model(adv), masks)
        assert torch.equal(adv[0], x[0])  # nothing labelled: nothing to attack
        assert (after[1:] > before[1:]).all()


def test_outlier_head_output_is_attacked_through_its_class_logits():
    torch.manual_seed(0)
    model = PointwiseSegmenter(outlier_head=True)
    x, masks = torch.rand(3, 3, 10, 10), masks_with_ignore()
    torch.testing.assert_close(attack_loss(model(x), masks), dense_loss(model(x)[0], masks))
    adv = fgsm(model, x, masks, eps=0.05)
    assert (dense_loss(model(adv)[0], masks)[1:] > dense_loss(model(x)[0], masks)[1:]).all()
