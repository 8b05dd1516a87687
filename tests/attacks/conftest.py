"""A tiny adversarially trained run, shared by the engine and command-line tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from pixelwise.config import load_config
from pixelwise.tasks import train
from tests.conftest import make_pattern_images, write_idx

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fmnist")
    for split, n, seed in (("train", 256, 0), ("t10k", 128, 1)):
        images, labels = make_pattern_images(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def adv_config(data_dir, out_dir, *overrides):
    return load_config(ROOT / "configs" / "cnn_fashion_mnist_pgd.yaml", [
        "model_kwargs={width: 4, hidden: 16}", f"data.root={data_dir}", "batch_size=32", "epochs=1",
        "max_steps=16", "adversarial.steps=2", "adversarial.eps=0.05", "checkpoint_every=2",
        f"out_dir={out_dir}", "threads=1", *overrides])


@pytest.fixture(scope="package")
def adv_run(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    summary = train(adv_config(data_dir, out), progress=False)
    assert summary["status"] == "finished"
    return out
