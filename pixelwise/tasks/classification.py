"""Image classification: targets (N,) class indices; top-1/top-5, confusion matrix, per-class recall."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from pixelwise.config import TrainConfig
from pixelwise.engine.evaluate import evaluate_classifier
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.models import model_info
from pixelwise.metrics.classification import ClassificationMeter
from pixelwise.tasks.base import Task, read_images
from pixelwise.tasks.registry import register_task


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched augmentation drawn from `gen`: 'crop_flip' = random crop of the `pad`-padded image, h-flip."""
    if kind == "none":
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)           # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None])
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(x.device)  # (n, w)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@torch.inference_mode()
def classify(model: nn.Module, images: torch.Tensor, classes: list[str], topk: int = 5) -> list[list[dict]]:
    """Top-k classes with probabilities for images (N, C, H, W) float in [0, 1]."""
    probs = model(images).float().softmax(1)
    p, idx = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [[{"class": classes[j], "index": int(j), "probability": float(q)} for q, j in zip(pr, ix)]
            for pr, ix in zip(p, idx)]


def run_input_size(config: dict) -> tuple[int, int]:
    """(channels, side) that a classifier run expects: its model's in_chans or the data's channels, and
    its image_size, the data's, or 28 for Fashion-MNIST (224 for anything else)."""
    kw, data = config.get("model_kwargs", {}), config.get("train_config", {}).get("data", {})
    channels = kw.get("in_chans", data.get("channels", 1))
    side = kw.get("image_size") or data.get("image_size") or (28 if data.get("name") == "fashion_mnist" else 224)
    return channels, side


class Classification(Task):
    name = "classification"
    model_kind = "classification"

    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict:
        """Also in_chans = the data's channels (folder datasets), where the model's default differs."""
        kwargs = super().model_kwargs(cfg, classes)
        channels = getattr(cfg.data, "channels", None)
        if channels is None:
            return kwargs
        if "in_chans" in cfg.model_kwargs and cfg.model_kwargs["in_chans"] != channels:
            raise PixelwiseError(f"model_kwargs.in_chans {cfg.model_kwargs['in_chans']} but data.channels "
                                 f"{channels}: the model reads the images the data gives; make them equal")
        if model_info(cfg.model).input_size[0] != channels:
            kwargs.setdefault("in_chans", channels)
        return kwargs

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        x, y = super().prepare_batch(batch, cfg, device, gen)
        return augment_batch(x, cfg.data.augment, gen, cfg.data.crop_padding), y

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        return F.cross_entropy(output, target, label_smoothing=cfg.label_smoothing)

    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> ClassificationMeter:
        return evaluate_classifier(model, dataset, num_classes, device, cfg.eval_batch_size,
                                   workers=cfg.data.workers, progress=progress)

    def write_report(self, meter: ClassificationMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        """confusion_matrix.{json,png} and per_class.md (recall of each class) in out_dir."""
        from pixelwise.viz.figures import plot_confusion_matrix
        out_dir = Path(out_dir)
        write_json(out_dir / "confusion_matrix.json", {"classes": classes, "matrix": meter.cm.tolist()})
        plot_confusion_matrix(meter.cm, classes, out_dir / "confusion_matrix.png")
        recall = (meter.cm.diag().double() / meter.cm.sum(1).clamp(min=1).double()).tolist()
        lines = ["| class | recall |", "| --- | --- |"] + [f"| {c} | {r:.4f} |" for c, r in zip(classes, recall)]
        (out_dir / "per_class.md").write_text("\n".join(lines) + "\n")
        return {**meter.summary(), "per_class_recall": dict(zip(classes, recall))}

    def describe(self, metrics: dict) -> str:
        return f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} on {metrics['n']} images"

    def accuracy_meter(self, num_classes: int):
        return ClassificationMeter(num_classes), "top1"

    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Top-k classes of each image file, read as the run's channels and resized to its side."""
        channels, side = run_input_size(config)
        batch = [TF.resize(x, [side, side], antialias=True) for x in read_images(images, "L" if channels == 1 else "RGB")]
        tops = classify(model, torch.stack(batch).to(device), config["classes"], topk)
        return [{"image": str(p), "top": top} for p, top in zip(images, tops)]

    def smoke_overrides(self, root: str) -> list[str]:
        return ["model=cnn", "data.name=fashion_mnist", "data.augment=crop_flip", "data.train_limit=64",
                "data.test_limit=16", "batch_size=16", "epochs=2", "optim.lr=0.05"]

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        if config is None:
            return super().example_input(None, model_name, size, channels)
        c, side = run_input_size(config)
        h, w = size or (side, side)
        return channels or c, h, w


register_task(Classification())
