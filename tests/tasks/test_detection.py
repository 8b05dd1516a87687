"""The detection task: evaluation over a dataset equal to pycocotools, the report's files, labelled
boxes drawn by predict, the exported dense maps and the clear refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from pixelwise.bench.export import output_names
from pixelwise.data.fs_det import FS_DET_CLASSES, FSDet
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.tasks import get_task
from pixelwise.tasks.detection import evaluate_detector, write_detection_report
from pixelwise.viz.overlays import palette_for

pytest.importorskip("pycocotools", reason="pycocotools is the reference for the detection metrics (test extra)")
from tests.metrics.test_detection import STAT_KEYS, cocoeval  # noqa: E402


class NoisyOracle(nn.Module):
    """Returns, in dataset order, each scene's ground-truth boxes jittered, some dropped, with random scores."""

    def __init__(self, dataset: FSDet, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.answers = []
        for i in range(len(dataset)):
            t = dataset[i][1]
            boxes = t["boxes"].as_subclass(torch.Tensor).clone()
            keep = torch.from_numpy(rng.random(len(boxes)) < 0.8)
            boxes = (boxes + torch.from_numpy(rng.normal(0, 1.5, boxes.shape)).float())[keep]
            boxes = torch.cat([boxes[:, :2], torch.maximum(boxes[:, 2:], boxes[:, :2])], 1)
            self.answers.append({"boxes": boxes, "scores": torch.from_numpy(rng.random(len(boxes))).float(),
                                 "labels": t["labels"][keep]})
        self.calls = 0

    def forward(self, images: torch.Tensor) -> list[dict]:
        out = self.answers[self.calls:self.calls + len(images)]
        self.calls += len(images)
        return out


def test_evaluation_over_a_dataset_equals_cocoeval_and_writes_the_report(tmp_path):
    ds = FSDet("test", root=tmp_path / "data", size=64, n=12)
    model = NoisyOracle(ds)
    meter = evaluate_detector(model, ds, 10, torch.device("cpu"), batch_size=5, progress=False)
    targets = [ds[i][1] for i in range(len(ds))]
    ev = cocoeval(targets, model.answers, range(1, 11))
    summary = meter.summary()
    for key, ref in zip(STAT_KEYS, ev.stats):
        assert abs(summary[key] - ref) < 1e-12, (key, summary[key], ref)
    metrics = write_detection_report(meter, list(FS_DET_CLASSES), tmp_path / "report", title="noisy oracle")
    assert set(metrics["per_class_ap"]) == set(FS_DET_CLASSES)
    saved = json.loads((tmp_path / "report" / "detection_ap.json").read_text())
    assert saved["ap"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert f"{ev.stats[0]:.4f}" in (tmp_path / "report" / "detection_ap.md").read_text()
    assert (tmp_path / "report" / "precision_recall.png").stat().st_size > 5000


class OneBox(nn.Module):
    """A detector that finds one 'Bag' (label 9) at (8, 10)-(30, 26) with score 0.9, and a weak 'Sneaker'."""

    def forward(self, images: torch.Tensor) -> list[dict]:
        return [{"boxes": torch.tensor([[8.0, 10.0, 30.0, 26.0], [1.0, 1.0, 5.0, 5.0]]),
                 "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([9, 8])} for _ in images]


def test_predict_draws_the_labelled_boxes(tmp_path):
    picture = tmp_path / "scene.png"
    Image.fromarray(np.full((40, 48), 128, np.uint8)).save(picture)
    config = {"classes": list(FS_DET_CLASSES), "model_kwargs": {}}
    results = get_task("detection").predict(OneBox(), config, [str(picture)], tmp_path / "pred")
    assert results[0]["detections"] == [{"box": [8.0, 10.0, 30.0, 26.0], "score": pytest.approx(0.9),
                                         "label": 9, "class": "Bag"}]
    drawn = np.asarray(Image.open(results[0]["files"]["boxes"]))
    colour = palette_for(["background", *FS_DET_CLASSES])[9]
    assert drawn.shape == (40, 48, 3)
    assert (drawn[20, 8] == colour).all() and (drawn[26, 20] == colour).all()   # left and bottom edges
    assert (drawn[24, 12] == 128).all()                                        # inside, below the label: the image
    assert (drawn[3, 1] == 128).all()                                          # the weak box is not drawn


def test_export_runs_the_dense_maps_and_int8_comparison_is_refused():
    task = get_task("detection")
    model = create_model("swiftnet_det", num_classes=10, num_features=16, head_width=8,
                         backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8})
    dense = task.export_module(model).eval()
    x = torch.rand(1, 3, 64, 64)
    assert output_names(dense, x) == ["heatmap", "size", "offset"]
    maps = dense(x)
    assert maps.heatmap.shape == (1, 10, 16, 16) and maps.size.shape == maps.offset.shape == (1, 2, 16, 16)
    with pytest.raises(PixelwiseError, match="int8"):
        task.accuracy_meter(10)
