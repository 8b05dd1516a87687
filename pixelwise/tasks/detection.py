"""Object detection: per image torchvision-style targets ("boxes" xyxy pixels, "labels" 1..K, "iscrowd",
"area"); COCO AP over the whole dataset (pixelwise.metrics.detection.coco_map, equal to pycocotools).

Detectors (pixelwise.models.centernet, pixelwise.models.fcos) follow torchvision's interface:
`model(images, targets)` gives a dict of losses (summed for training), `model(images)` one dict of
"boxes", "scores", "labels" per image. Export runs the detector's dense maps (`model.dense`); turning
them into boxes (peak picking, NMS) stays outside the graph.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.config import DataSection, TrainConfig
from pixelwise.data.fs_det import FSDet, detection_collate, detection_train_transform
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.metrics.detection import IOU_THRESHOLDS, RECALL_THRESHOLDS, DetectionMeter
from pixelwise.tasks.base import Task, output_stems, read_images
from pixelwise.tasks.registry import register_task

PREDICT_SCORE = 0.3      # detections drawn and listed by `pixelwise predict` score at least this
HEADLINE = (("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("ap_small", "AP small"), ("ap_medium", "AP medium"),
            ("ap_large", "AP large"), ("ar1", "AR@1"), ("ar10", "AR@10"), ("ar100", "AR@100"))


class DenseMapsOf(nn.Module):
    """A detector seen through its dense maps (`model.dense(images)`, a named tuple of tensors): what
    `pixelwise bench` and `export` run, since boxes come from data-dependent peak picking or NMS."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor):
        return self.detector.dense(images)


@torch.inference_mode()
def evaluate_detector(model: nn.Module, dataset: Dataset, num_classes: int, device: torch.device,
                      batch_size: int = 16, workers: int = 0, progress: bool = True) -> DetectionMeter:
    """COCO evaluation of `model` (eval mode, fp32) on every image of `dataset` ((image, target) pairs);
    classes 1..num_classes are evaluated."""
    was_training = model.training
    model.eval()
    meter = DetectionMeter(labels=range(1, num_classes + 1))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=detection_collate)
    for images, targets in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
        if isinstance(images, list):   # images of different sizes: one at a time
            predictions = [p for im in images for p in model(im[None].to(device))]
        else:
            predictions = model(images.to(device))
        meter.update(predictions, targets)
    model.train(was_training)
    return meter


def write_detection_report(meter: DetectionMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
    """detection_ap.md and .json (COCO numbers, per-class AP) and precision_recall.png in out_dir;
    returns the metrics: the COCO floats, "n" and "per_class_ap" {class name: AP@[.5:.95]}."""
    out_dir = Path(out_dir)
    result = meter.result()
    metrics = {**meter.summary(),
               "per_class_ap": {classes[k - 1]: v for k, v in result["per_class_ap"].items()}}
    write_json(out_dir / "detection_ap.json", {"classes": classes, **metrics})
    lines = [f"# {title or 'detection'}: AP {metrics['ap']:.4f}, AP50 {metrics['ap50']:.4f}, "
             f"AP75 {metrics['ap75']:.4f} ({int(metrics['n'])} images, COCO protocol)", "",
             "| " + " | ".join(name for _, name in HEADLINE) + " |", "|" + " ---: |" * len(HEADLINE),
             "| " + " | ".join(f"{metrics[k]:.4f}" for k, _ in HEADLINE) + " |", "",
             "| class | AP@[.5:.95] |", "| --- | ---: |",
             *[f"| {c} | {v:.4f} |" for c, v in metrics["per_class_ap"].items()],
             "", "-1: no ground truth to measure against."]
    (out_dir / "detection_ap.md").write_text("\n".join(lines) + "\n")
    from pixelwise.viz.detections import plot_precision_recall
    names = [classes[k - 1] for k in result["curve_labels"]]
    plot_precision_recall(result["precision"], RECALL_THRESHOLDS, names, IOU_THRESHOLDS,
                          out_dir / "precision_recall.png", title=title)
    return metrics


class Detection(Task):
    name = "detection"
    model_kind = "detection"
    collate = staticmethod(detection_collate)

    def dataset(self, data: DataSection, split: str) -> Dataset:
        """FS-Det (the only detection dataset so far): the training split with `detection_train_transform`
        unless data.augment is none; the test split as it is."""
        if data.name != "fs_det":
            raise PixelwiseError(f"data.name {data.name!r}: detection runs train on fs_det; set data.name=fs_det")
        limit = data.train_limit if split == "train" else data.test_limit
        augment = split == "train" and data.augment == "scale_crop_flip"
        transforms = detection_train_transform(data.canvas_size, data.scale_range) if augment else None
        return FSDet(split, data.root, data.canvas_size, n=limit, transforms=transforms)

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        images, targets = batch
        if isinstance(images, list):
            raise PixelwiseError("detection training needs images of one size in a batch; FS-Det crops "
                                 "training scenes to data.canvas_size, so keep data.augment scale_crop_flip or none")
        return images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets]

    def loss(self, model: nn.Module, x, target, cfg: TrainConfig) -> torch.Tensor:
        return sum(model(x, target).values())

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        raise PixelwiseError("detection runs do not support adversarial training (its loss needs the targets "
                             "inside the model); leave adversarial.method none")

    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> DetectionMeter:
        return evaluate_detector(model, dataset, num_classes, device, cfg.eval_batch_size,
                                 workers=cfg.data.workers, progress=progress)

    def write_report(self, meter: DetectionMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        return write_detection_report(meter, classes, out_dir, title)

    def describe(self, metrics: dict) -> str:
        return (f"AP {metrics['ap']:.4f}, AP50 {metrics['ap50']:.4f}, AP75 {metrics['ap75']:.4f}, "
                f"AR@100 {metrics['ar100']:.4f} on {int(metrics['n'])} images")

    def accuracy_meter(self, num_classes: int):
        raise PixelwiseError("int8 accuracy comparison is not supported for detection runs (the exported "
                             "graph gives dense maps, not boxes); export without --int8, or evaluate the "
                             "run with `pixelwise eval`")

    def export_module(self, model: nn.Module) -> nn.Module:
        return DenseMapsOf(model) if hasattr(model, "dense") else model

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        """A run on FS-Det takes its canvas; anything else the registered size (128x128)."""
        c, h, w = super().example_input(config, model_name, size, channels)
        data = (config or {}).get("train_config", {}).get("data", {})
        if size is None and data.get("name") == "fs_det":
            h = w = data["canvas_size"]
        return c, h, w

    def smoke_overrides(self, root: str) -> list[str]:
        return ["model=swiftnet_det", "model_kwargs={num_features: 16, head_width: 8, backbone_kwargs: "
                "{channels: [8, 16, 32, 64], stem_width: 8}}", "data.name=fs_det", f"data.root={root}",
                "data.canvas_size=48", "data.train_limit=16", "data.test_limit=4", "batch_size=4", "epochs=2",
                "optim.name=adam", "optim.lr=0.01", "eval_batch_size=4"]

    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Detect objects in image files: STEM_boxes.png with the labelled boxes scoring at least
        PREDICT_SCORE, and those boxes (xyxy pixels), scores and class names. Images are read as
        grayscale and repeated on the model's channels, as FS-Det's scenes are."""
        from pixelwise.viz.detections import draw_detections
        from pixelwise.viz.overlays import save_png
        classes, out_dir = config["classes"], Path(out_dir)
        channels = config.get("model_kwargs", {}).get("in_chans", 3)
        was_training = model.training
        model.eval()
        results = []
        for path, stem, image in zip(images, output_stems(images), read_images(images, "L")):
            image = image.expand(channels, -1, -1)
            with torch.inference_mode():
                found = model(image[None].to(device))[0]
            keep = found["scores"] >= PREDICT_SCORE
            boxes, scores, labels = (found[k][keep].cpu() for k in ("boxes", "scores", "labels"))
            picture = save_png(draw_detections(image, boxes, labels, classes, scores), out_dir / f"{stem}_boxes.png")
            results.append({"image": str(path), "files": {"boxes": str(picture)},
                            "detections": [{"box": [round(float(v), 2) for v in b], "score": float(s),
                                            "label": int(k), "class": classes[int(k) - 1]}
                                           for b, s, k in zip(boxes, scores, labels)]})
        model.train(was_training)
        return results


register_task(Detection())
