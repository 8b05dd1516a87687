"""Every registered task, end to end on tiny data: train, resume exactly, evaluate, predict on an image
file, export. A new task gets this test by registering itself with its `smoke_overrides`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pixelwise.cli import main
from pixelwise.tasks import evaluate_run, get_task, list_tasks, load_task_config, predict_images, train


def tiny(task_name: str, tmp_path, out: str, *extra: str):
    task = get_task(task_name)
    cfg = load_task_config(None, [f"name=smoke_{task_name}", "threads=1", "checkpoint_every=2",
                                  f"out_dir={tmp_path / out}", *task.smoke_overrides(str(tmp_path / "data")), *extra])
    assert cfg.task == task_name, "the smoke config must mean its own task"
    return cfg


@pytest.mark.parametrize("task_name", list_tasks())
def test_task_trains_resumes_evaluates_predicts_and_exports(task_name, tmp_path):
    full = train(tiny(task_name, tmp_path, "full"), progress=False)
    assert full["status"] == "finished" and full["task"] == task_name and full["step"] >= 3
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["task"] == task_name and config["train_config"]["task"] == task_name

    # Interrupted after 2 steps, then resumed: bit-identical weights.
    assert train(tiny(task_name, tmp_path, "part"), stop_after=2, progress=False)["status"] == "stopped"
    resumed = train(tiny(task_name, tmp_path, "part"), resume=True, progress=False)
    assert resumed["step"] == full["step"]
    a, b = load_file(str(tmp_path / "full/model.safetensors")), load_file(str(tmp_path / "part/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "part" / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if not r.get("eval")]
    assert steps == list(range(1, full["step"] + 1)), "the step log has each step once, also across a resume"
    assert (tmp_path / "full" / "training_curves.png").stat().st_size > 1000

    # Evaluating the run folder gives the numbers training reported.
    metrics = evaluate_run(tmp_path / "full", progress=False, device="cpu")["metrics"]
    numbers = {k: v for k, v in full["test"].items() if isinstance(v, float)}
    assert numbers and all(metrics[k] == pytest.approx(v, abs=1e-9) for k, v in numbers.items()), (metrics, numbers)
    assert (tmp_path / "full" / "eval" / "metrics.json").is_file()

    # Prediction on an image file of the user's.
    picture = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(picture)
    results = predict_images([str(picture)], checkpoint=str(tmp_path / "full"), out_dir=tmp_path / "pred",
                             device="cpu")
    assert len(results) == 1 and results[0]["image"] == str(picture)
    assert results[0].get("top") or all((tmp_path / "pred").joinpath(p).exists() for p in results[0]["files"].values())

    # Export to ONNX with the parity check.
    onnx = tmp_path / "model.onnx"
    assert main(["export", str(tmp_path / "full"), "--onnx", str(onnx), "--runs", "1", "--check", "1",
                 "--threads", "1", "--json", str(tmp_path / "export.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "export.json").read_text())["parity"]["ok"]
