"""Run folders stand on their own: a run trained from a local weight file evaluates, predicts and
exports after that file has moved (load_run rebuilds with pretrained=False)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
from PIL import Image
from safetensors.torch import save_file

from pixelwise.cli import main
from pixelwise.engine.runs import load_run, standalone_kwargs
from pixelwise.tasks import evaluate_run, load_task_config, predict_images, train

SMALL_RESNET = {"channels": [8, 16, 32, 64], "stem_width": 8}
CASES = {
    "segmentation": ["model=swiftnet", "data.name=fashion_scenes", "data.canvas_size=32", "data.train_limit=8",
                     "data.test_limit=4", "batch_size=4", "eval_batch_size=4",
                     "model_kwargs={backbone: resnet18, num_features: 16, pretrained: WEIGHTS, "
                     "backbone_kwargs: {channels: [8, 16, 32, 64], stem_width: 8}}"],
    "classification": ["model=transfer", "data.name=fashion_mnist", "data.train_limit=16", "data.test_limit=8",
                       "batch_size=8", "model_kwargs={backbone: resnet18, pretrained: WEIGHTS, input_size: 32, "
                       "in_chans: 1}"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_works_after_its_starting_weights_moved(case, tmp_path):
    weights = tmp_path / "resnet18.safetensors"
    arch = SMALL_RESNET if case == "segmentation" else {}
    save_file({k: v.contiguous() for k, v in timm.create_model("resnet18", **arch).state_dict().items()}, weights)
    overrides = [o.replace("WEIGHTS", str(weights)) for o in CASES[case]]
    cfg = load_task_config(None, [*overrides, "max_steps=2", "threads=1", f"out_dir={tmp_path / 'run'}",
                                  f"data.root={tmp_path / 'scenes'}" if case == "segmentation" else "seed=0"])
    summary = train(cfg, progress=False)
    weights.rename(tmp_path / "moved.safetensors")

    model, config = load_run(tmp_path / "run")
    assert config["model_kwargs"]["pretrained"] == str(weights)   # recorded as trained, not used to rebuild
    metrics = evaluate_run(tmp_path / "run", progress=False)["metrics"]
    key = "miou" if case == "segmentation" else "top1"
    assert metrics[key] == pytest.approx(summary["test"][key], abs=1e-12)
    image = tmp_path / "image.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(image)
    assert len(predict_images([str(image)], checkpoint=str(tmp_path / "run"), out_dir=tmp_path / "pred")) == 1
    assert main(["export", str(tmp_path / "run"), "--onnx", str(tmp_path / "m.onnx"), "--runs", "1",
                 "--check", "1", "--quiet"]) == 0


def test_standalone_kwargs_switch_off_starting_weights_only_where_the_factory_takes_them():
    assert standalone_kwargs("swiftnet", {"pretrained": "/gone.safetensors", "backbone": "resnet18"}) == {
        "pretrained": False, "backbone": "resnet18"}
    assert standalone_kwargs("transfer", {}) == {"pretrained": False}   # its default would load ImageNet weights
    assert standalone_kwargs("cnn", {"in_chans": 1}) == {"in_chans": 1}
