"""Semantic segmentation: targets (N, H, W) class indices with 255 = ignore; mIoU over the dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from pixelwise.config import DataSection, TrainConfig, saved_data_config
from pixelwise.engine.inference import evaluate_segmenter, segment_logits, write_segmentation_report
from pixelwise.labels import IGNORE_INDEX
from pixelwise.metrics.segmentation import SegmentationMeter
from pixelwise.tasks.base import Task, output_stems, read_images
from pixelwise.tasks.registry import register_task


def run_data(config: dict) -> DataSection:
    """The data section of a run's config.json (saved_data_config reads old runs too)."""
    return saved_data_config(config.get("train_config", {}).get("data", {}))


def write_prediction_pictures(image: torch.Tensor, pred: torch.Tensor, palette, out_dir: Path, stem: str) -> dict:
    """STEM_overlay.png (prediction blended on the image) and STEM_labels.png (class indices) in out_dir."""
    from pixelwise.viz.overlays import overlay, save_png
    return {"overlay": str(save_png(overlay(image, pred, palette), out_dir / f"{stem}_overlay.png")),
            "labels": str(save_png(pred.to(torch.uint8).cpu().numpy(), out_dir / f"{stem}_labels.png"))}


class Segmentation(Task):
    name = "segmentation"
    model_kind = "segmentation"
    test_time_augmentation = True

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        return F.cross_entropy(output, target.long(), ignore_index=IGNORE_INDEX)

    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> SegmentationMeter:
        return evaluate_segmenter(model, dataset, num_classes, device, cfg.eval_batch_size,
                                  workers=cfg.data.workers, progress=progress, window=cfg.data.eval_window,
                                  scales=cfg.data.eval_scales, flip=cfg.data.eval_flip)

    def write_report(self, meter: SegmentationMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        return write_segmentation_report(meter, classes, out_dir, title=title)

    def describe(self, metrics: dict) -> str:
        return (f"mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} on "
                f"{metrics['n']} images")

    def accuracy_meter(self, num_classes: int):
        return SegmentationMeter(num_classes), "miou"

    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Segment image files: colour overlays and label maps as PNG, and each class's share of pixels.

        Each image is read as RGB at its own size (sliding windows when the run used data.eval_window;
        test-time scales and flip as given, else as the run's data.eval_scales and data.eval_flip).
        """
        from pixelwise.viz.overlays import palette_for
        classes, out_dir, data = config["classes"], Path(out_dir), run_data(config)
        scales = scales if scales is not None else data.eval_scales
        flip = flip if flip is not None else data.eval_flip
        palette, results = palette_for(classes), []
        for path, stem, image in zip(images, output_stems(images), read_images(images, "RGB")):
            logits = segment_logits(model, image[None].to(device), data.eval_window, scales=scales, flip=flip)
            pred = logits.argmax(1)[0].cpu()
            files = write_prediction_pictures(image, pred, palette, out_dir, stem)
            files.update(self.extra_pictures(model, config, image, device, out_dir, stem))
            share = torch.bincount(pred.flatten(), minlength=len(classes)).double() / pred.numel()
            results.append({"image": str(path), "files": files,
                            "class_fractions": {c: float(f) for c, f in zip(classes, share) if f > 0}})
        return results

    def smoke_overrides(self, root: str) -> list[str]:
        return ["model=swiftnet", "model_kwargs={num_features: 16, backbone_kwargs: {channels: [8, 16, 32, 64], "
                "stem_width: 8}}", "data.name=fashion_scenes", f"data.root={root}", "data.canvas_size=32",
                "data.train_limit=16", "data.test_limit=4", "data.augment=scale_crop_flip", "data.crop_size=32",
                "batch_size=4", "epochs=2", "optim.name=adam", "optim.lr=0.01", "eval_batch_size=4"]

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        """A run on generated scenes takes its canvas; anything else the registered size (1024x2048)."""
        c, h, w = super().example_input(config, model_name, size, channels)
        data = (config or {}).get("train_config", {}).get("data", {})
        if size is None and data.get("name") in ("fashion_scenes", "fs_ood", "fs_forecast"):
            h = w = data["canvas_size"]
        return c, h, w

    def extra_pictures(self, model: nn.Module, config: dict, image: torch.Tensor, device: torch.device,
                       out_dir: Path, stem: str) -> dict:
        """More pictures of one predicted image beside the overlay (none for plain segmentation)."""
        return {}


register_task(Segmentation())
