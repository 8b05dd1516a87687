"""Segmentation with dense outlier detection (FS-OOD): negatives pasted into training scenes, an
outlier head or a (K+1)-th class, and AP / AUROC / FPR95 of every outlier score beside inlier mIoU."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from pixelwise.config import TrainConfig
from pixelwise.errors import PixelwiseError
from pixelwise.outliers.evaluate import OutlierEvaluation, evaluate_outliers, write_outlier_report
from pixelwise.outliers.training import add_negatives, outlier_loss, outlier_model_kwargs
from pixelwise.tasks.registry import register_task
from pixelwise.tasks.segmentation import Segmentation


class OutlierSegmentation(Segmentation):
    """A segmentation run with `outliers.mode` other than none, or any segmentation run on FS-OOD
    (whose mode none gives the max-softmax, entropy and max-logit baselines)."""
    name = "outlier_segmentation"
    priority = 1
    test_time_augmentation = False

    def accepts(self, cfg: TrainConfig) -> bool:
        return cfg.outliers.mode != "none" or cfg.data.name == "fs_ood"

    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict:
        return {"num_classes": len(classes), **outlier_model_kwargs(cfg.outliers, len(classes)),
                **cfg.model_kwargs}

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        x, y = super().prepare_batch(batch, cfg, device, gen)
        if cfg.outliers.mode == "none":
            return x, y
        scale = cfg.data.canvas_size / 128 if cfg.data.name in ("fs_ood", "fashion_scenes") else 1.0
        return add_negatives(x, y, cfg.outliers, gen, scale)   # y: (semantic masks, outlier targets)

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        if cfg.outliers.mode == "none":
            return super().output_loss(output, target, cfg)
        return outlier_loss(output, target, cfg.outliers)

    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> OutlierEvaluation:
        return evaluate_outliers(model, dataset, num_classes, cfg.outliers.mode, device, cfg.eval_batch_size,
                                 workers=cfg.data.workers, progress=progress)

    def write_report(self, meter: OutlierEvaluation, classes: list[str], out_dir: Path, title: str = "") -> dict:
        return {"mode": meter.mode, **write_outlier_report(meter, classes, out_dir)}

    def describe(self, metrics: dict) -> str:
        names = [k[:-3] for k in metrics if k.endswith("_ap")]
        rows = ", ".join(f"{n} AP {metrics[n + '_ap']:.4f} / AUROC {metrics[n + '_auroc']:.4f} / FPR95 "
                         f"{metrics[n + '_fpr95']:.4f}" for n in names)
        return f"inlier mIoU {metrics['miou']:.4f}; outliers: {rows}"

    def smoke_overrides(self, root: str) -> list[str]:
        seg = super().smoke_overrides(root)
        return [o.replace("data.name=fashion_scenes", "data.name=fs_ood") for o in seg] + [
            "outliers.mode=two_heads", "outliers.negatives=digits", "outliers.min_size=8", "outliers.max_size=16"]

    def accuracy_meter(self, num_classes: int):
        raise PixelwiseError("int8 accuracy comparison of outlier runs is not supported: compare the "
                             "segmentation of a run without outlier scoring")

    def extra_pictures(self, model: nn.Module, config: dict, image: torch.Tensor, device: torch.device,
                       out_dir: Path, stem: str) -> dict:
        """STEM_outliers.png: the outlier heat map beside the overlay and the label map."""
        from pixelwise.outliers.scores import outlier_probability, run_outlier_mode
        from pixelwise.viz.heatmaps import heatmap
        from pixelwise.viz.overlays import save_png
        with torch.inference_mode():
            score = outlier_probability(model(image[None].to(device)), run_outlier_mode(config))[0].cpu()
        return {"outliers": str(save_png(heatmap(image, score), out_dir / f"{stem}_outliers.png"))}


register_task(OutlierSegmentation())
