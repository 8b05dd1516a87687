"""Adversarial training through the engine: the attack's settings, BN statistics, exact resume."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pixelwise.attacks import adversarial_batch, fgsm, pgd
from pixelwise.attacks.budgets import per_sample_norm
from pixelwise.config import AdversarialConfig
from pixelwise.tasks import train
from pixelwise.models import create_model
from tests.attacks.conftest import adv_config


def batch():
    torch.manual_seed(0)
    return torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))


def bn_stats(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def test_fast_fgsm_steps_1_25_eps_then_projects():
    model = create_model("cnn", width=4, hidden=16, dropout=0.0).train()
    x, y = batch()
    cfg = AdversarialConfig(method="fgsm", eps=0.1, random_start=False)
    adv = adversarial_batch(model, x, y, cfg, F.cross_entropy, torch.Generator().manual_seed(0))
    # Without a random start, 1.25 eps projected back to the ball is plain FGSM at eps.
    torch.testing.assert_close(adv, fgsm(model, x, y, eps=0.1), rtol=0, atol=1e-6)


def test_pgd_batch_uses_train_mode_keeps_bn_statistics_and_draws_from_gen():
    model = create_model("cnn", width=4, hidden=16, dropout=0.0).train()
    x, y = batch()
    before = bn_stats(model)
    cfg = AdversarialConfig(method="pgd", eps=0.1, steps=3, random_start=True)
    a = adversarial_batch(model, x, y, cfg, F.cross_entropy, torch.Generator().manual_seed(3))
    after = bn_stats(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training
    b = adversarial_batch(model, x, y, cfg, F.cross_entropy, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    ref = pgd(model, x, y, eps=0.1, steps=3, alpha=2.5 * 0.1 / 3, random_start=True,
              generator=torch.Generator().manual_seed(3))
    # BN in train mode: the reference moved the running statistics, but the images agree.
    torch.testing.assert_close(a, ref, rtol=0, atol=1e-6)
    assert per_sample_norm(a - x, "linf").max() <= 0.1 + 1e-6 and a.min() >= 0 and a.max() <= 1


def test_adversarial_training_resumes_exactly(adv_run, data_dir, tmp_path):
    part = tmp_path / "part"
    assert train(adv_config(data_dir, part), stop_after=5, progress=False)["status"] == "stopped"
    assert train(adv_config(data_dir, part), resume=True, progress=False)["status"] == "finished"
    a, b = load_file(str(adv_run / "model.safetensors")), load_file(str(part / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    clean = load_file(str(_clean_run(data_dir, tmp_path / "clean") / "model.safetensors"))
    assert any(not torch.equal(a[k], clean[k]) for k in a)  # the attack did change the training


def _clean_run(data_dir, out) -> Path:
    train(adv_config(data_dir, out, "adversarial.method=none"), progress=False)
    return out
