"""FGSM and PGD: equal to torchattacks, within budget and [0, 1], and they move the loss the right way."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelwise.attacks import fgsm, pgd
from pixelwise.attacks.budgets import per_sample_norm
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from tests.attacks.models import linear_classifier


@pytest.fixture(scope="module")
def cnn_batch():
    """The registry's CNN in eval mode and 8 images (a power of two: torchattacks' mean loss then
    scales the gradient exactly, so signs agree bit for bit)."""
    torch.manual_seed(0)
    model = create_model("cnn", width=8, hidden=32).eval()
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    return model, x, y


def test_fgsm_equals_torchattacks(cnn_batch):
    model, x, y = cnn_batch
    ours = fgsm(model, x, y, eps=8 / 255)
    theirs = torchattacks.FGSM(model, eps=8 / 255)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert (ours - x).abs().max() > 7.9 / 255  # it moved


def test_pgd_linf_equals_torchattacks(cnn_batch):
    model, x, y = cnn_batch
    ours = pgd(model, x, y, eps=0.1, alpha=0.02, steps=6, norm="linf")
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=6, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_pgd_l2_equals_torchattacks(cnn_batch):
    model, x, y = cnn_batch
    ours = pgd(model, x, y, eps=1.0, alpha=0.3, steps=6, norm="l2")
    theirs = torchattacks.PGDL2(model, eps=1.0, alpha=0.3, steps=6, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert per_sample_norm(ours - x, "l2").max() > 0.9


def test_targeted_pgd_equals_torchattacks(cnn_batch):
    model, x, y = cnn_batch
    target = (y + 3) % 10
    attack = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=4, random_start=False)
    # set_mode_targeted_by_function exists in every torchattacks 3.x; pip resolves 3.3.0 beside timm's
    # huggingface_hub (torchattacks 3.5.1 pins requests 2.25), so the test must not need 3.5's API.
    attack.set_mode_targeted_by_function(lambda images, labels: target)
    ours = pgd(model, x, target, eps=0.1, alpha=0.02, steps=4, targeted=True)
    torch.testing.assert_close(ours, attack(x, y), rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(eps=st.floats(0.0, 0.5), steps=st.integers(1, 4), norm=st.sampled_from(["linf", "l2"]),
       random_start=st.booleans(), targeted=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_budget_and_bounds_hold(eps, steps, norm, random_start, targeted, seed):
    model = linear_classifier(in_chans=3, side=6)
    g = torch.Generator().manual_seed(seed)
    # Pixels at 0 and 1 exercise the clipping.
    x = torch.rand(4, 3, 6, 6, generator=g).round() * torch.rand(4, 3, 6, 6, generator=g).ge(0.5)
    y = torch.randint(0, 5, (4,), generator=g)
    adv = pgd(model, x, y, eps=eps, alpha=0.7 * eps + 1e-3, steps=steps, norm=norm,
              random_start=random_start, targeted=targeted, generator=g)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    assert (per_sample_norm(adv - x, norm) <= eps * (1 + 1e-5) + 1e-6).all()


def test_fgsm_raises_every_loss_and_pgd_raises_it_more():
    model = linear_classifier()
    x = 0.2 + 0.6 * torch.rand(16, 1, 8, 8)  # far enough from 0 and 1 that no clipping happens
    y = torch.randint(0, 5, (16,))
    loss = lambda images: F.cross_entropy(model(images), y, reduction="none")  # noqa: E731
    clean = loss(x)
    one = loss(fgsm(model, x, y, eps=0.05))
    many = loss(pgd(model, x, y, eps=0.05, steps=10))
    # The loss is convex in x: the sign step raises it by at least eps * ||grad||_1 > 0.
    assert (one > clean).all()
    assert many.mean() >= one.mean() - 1e-6


def test_targeted_attack_lowers_the_target_loss():
    model = linear_classifier()
    x = 0.2 + 0.6 * torch.rand(16, 1, 8, 8)
    target = torch.randint(0, 5, (16,))
    loss = lambda images: F.cross_entropy(model(images), target, reduction="none")  # noqa: E731
    adv = pgd(model, x, target, eps=0.05, steps=10, targeted=True)
    assert (loss(adv) < loss(x)).all()
    assert (model(adv).argmax(1) == target).float().mean() > (model(x).argmax(1) == target).float().mean()


def test_random_start_is_drawn_from_the_generator_only():
    model = linear_classifier()
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 5, (4,))
    run = lambda seed: pgd(model, x, y, eps=0.1, steps=2, random_start=True,  # noqa: E731
                           generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(1)
    a = run(5)
    torch.manual_seed(2)
    assert torch.equal(a, run(5))
    assert not torch.equal(a, run(6))


def test_attack_leaves_model_and_inputs_alone():
    model = create_model("cnn", width=4, hidden=8).train()
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    before = x.clone()
    pgd(model, x, y, eps=0.1, steps=2)
    assert model.training and torch.equal(x, before)
    assert all(p.grad is None for p in model.parameters())


def test_zero_budget_returns_the_images_and_bad_input_is_named():
    model = linear_classifier()
    x, y = torch.rand(2, 1, 8, 8), torch.randint(0, 5, (2,))
    assert torch.equal(fgsm(model, x, y, eps=0.0), x)
    with pytest.raises(PixelwiseError, match="eps=-0.1"):
        pgd(model, x, y, eps=-0.1)
    with pytest.raises(PixelwiseError, match="norm"):
        pgd(model, x, y, eps=0.1, norm="l1")
    with pytest.raises(PixelwiseError, match="uint8"):
        fgsm(model, (x * 255).to(torch.uint8), y, eps=0.1)
