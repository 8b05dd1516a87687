"""The peer segmenters of benchmarks/segmentation_peers.py: each adapter takes [0, 1] images and gives the
library model's own logits (on ImageNet-normalized, padded input) at the input size; the benchmark's quick
mode runs end to end and writes its table, JSON and plot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "benchmarks"))

smp = pytest.importorskip("segmentation_models_pytorch",
                          reason="peer models are optional: pip install pixelwise[bench]")

from segmentation_peer_models import PEERS, register_peers, unregister_peers  # noqa: E402

from pixelwise.models import create_model, list_models  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture
def peers():
    names = register_peers()
    yield names
    unregister_peers()


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_logits_at_input_size_equal_the_library_model(name, peers):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    x = torch.rand(2, 3, 40, 72)              # not a multiple of 32: padded, then cropped back
    with torch.no_grad():
        logits = model(x)
        padded = F.pad((x - MEAN) / STD, (0, -72 % model.multiple, 0, -40 % model.multiple))
        out = model.net(padded)
        reference = (out["out"] if isinstance(out, dict) else out)[..., :40, :72]
        gray = model(torch.rand(1, 1, 64, 64))
    assert logits.shape == (2, 3, 40, 72) and gray.shape == (1, 3, 64, 64)
    torch.testing.assert_close(logits, reference)
    assert name in list_models(task="segmentation")


def test_peers_unregister_cleanly(peers):
    unregister_peers()
    assert not set(PEERS) & set(list_models())
    register_peers()                          # the fixture's teardown unregisters again


@pytest.mark.timeout(300)
def test_segmentation_peers_quick(fake_fmnist, tmp_path):
    env = dict(os.environ, PIXELWISE_DATA=str(fake_fmnist), OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "segmentation_peers.py"), "--quick",
                        "--models", "swiftnet_rn18half,lraspp_mnv3", "--precisions", "fp32", "--out", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp_path / "segmentation_peers.json").read_text())
    rows = {row["key"]: row for row in result["rows"]}
    assert set(rows) == {"swiftnet_rn18half", "lraspp_mnv3"}
    assert len(rows["lraspp_mnv3"]["lr_tuning"]) == 2 and not rows["swiftnet_rn18half"]["lr_tuning"]
    assert all(0 <= row["test_miou"] <= 1 and row["latency_fp32_ms"] > 0 and row["params"] > 1e6
               for row in rows.values())
    assert result["targets"]["judged"]
    assert (tmp_path / "segmentation_peers.png").stat().st_size > 1000
    assert "| SwiftNet, ResNet-18 half width |" in (tmp_path / "segmentation_peers.md").read_text()


@pytest.mark.parametrize("scores, chosen, tried", [
    # mIoU decides; the best (4e-3) lies on the grid's top edge, so 8e-3 is tried and loses
    ({1e-3: (0.20, 1.0), 2e-3: (0.25, 0.9), 4e-3: (0.27, 0.8), 8e-3: (0.26, 0.7)}, 4e-3, 4),
    # every rate labels all background (equal mIoU): the lowest cross-entropy decides, 2e-3 is inside
    ({1e-3: (0.0758, 1.2), 2e-3: (0.0758, 1.1), 4e-3: (0.0758, 1.3)}, 2e-3, 3),
    # the best on the bottom edge: 5e-4 is tried and wins
    ({5e-4: (0.31, 0.5), 1e-3: (0.30, 0.6), 2e-3: (0.2, 0.7), 4e-3: (0.1, 0.8)}, 5e-4, 4),
])
def test_tuning_breaks_ties_by_loss_and_steps_past_the_grid_edge(monkeypatch, scores, chosen, tried):
    import segmentation_peers as bench
    monkeypatch.setattr(bench, "train_run", lambda config, overrides: {})
    monkeypatch.setattr(bench, "validation_of", lambda run_dir, split, n: dict(
        zip(("miou", "loss"), scores[float(run_dir.name.split("_lr")[1])])))
    lr, rows = bench.tune_lr("peer", Path("unused.yaml"), [], steps=5, quick=False)
    assert lr == pytest.approx(chosen) and len(rows) == tried
    assert [r["lr"] for r in rows] == sorted(r["lr"] for r in rows)
