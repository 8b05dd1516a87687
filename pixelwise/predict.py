"""Prediction and evaluation of trained runs: what `pixelwise predict` and `pixelwise eval` do."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torchvision.transforms.v2 import functional as TF

from pixelwise.data.folders import read_image
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model


def load_run(run: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a run folder in eval mode, and its config.json."""
    from pixelwise.engine.checkpoint import read_run
    config, weights = read_run(run)
    model = create_model(config["model"], **config.get("model_kwargs", {}))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise PixelwiseError(f"{run}: weights do not fit model {config['model']!r}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval(), config


def input_size(config: dict) -> tuple[int, int]:
    """(channels, side) that a classifier of this run expects."""
    kw, data = config.get("model_kwargs", {}), config.get("train_config", {}).get("data", {})
    channels = kw.get("in_chans", data.get("channels", 1))
    side = kw.get("image_size") or data.get("image_size") or (28 if data.get("name") == "fashion_mnist" else 224)
    return channels, side


@torch.inference_mode()
def classify(model: nn.Module, images: torch.Tensor, classes: list[str], topk: int = 5) -> list[list[dict]]:
    """Top-k classes with probabilities for images (N, C, H, W) float in [0, 1]."""
    probs = model(images).float().softmax(1)
    p, idx = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [[{"class": classes[j], "index": int(j), "probability": float(q)} for q, j in zip(pr, ix)]
            for pr, ix in zip(p, idx)]


def predict_images(images: list[str], checkpoint: str | None = None, model: str | None = None,
                   topk: int = 5, out_dir: str | Path = "predictions", scales: Sequence[float] | None = None,
                   flip: bool | None = None) -> list[dict]:
    """Top-k predictions of a trained run (or of a named pretrained model) for image files.

    Segmentation runs write overlays instead; `scales`/`flip` set their test-time augmentation
    (default: the run's data.eval_scales / data.eval_flip, see segment_logits)."""
    net, config = (None, {}) if model is not None else load_run(checkpoint)
    if config.get("task") == "segmentation":
        return segment_images(net, config, images, out_dir, scales, flip)
    if scales is not None or flip is not None:
        raise PixelwiseError("--scales/--flip (test-time augmentation) apply to segmentation runs only")
    if model is not None:
        from pixelwise.models.pretrained import load_pretrained_classifier
        net, classes, preprocess = load_pretrained_classifier(model)
        batch = [preprocess(read_image(p, "RGB")) for p in images]
    else:
        classes = config["classes"]
        channels, side = input_size(config)
        batch = [TF.resize(read_image(p, "L" if channels == 1 else "RGB"), [side, side], antialias=True)
                 for p in images]
    return [{"image": str(p), "top": top} for p, top in zip(images, classify(net, torch.stack(batch), classes, topk))]


def evaluate_run(run: str | Path, split: str = "test", data_dir: str | None = None,
                 out_dir: str | Path | None = None, progress: bool = True,
                 scales: Sequence[float] | None = None, flip: bool | None = None,
                 limit: int | str | None = None) -> dict:
    """Metrics of a run on its dataset; tables and figures written to out_dir (default RUN/eval).

    scales, flip: test-time augmentation of a segmentation run (default: the run's data.eval_scales
    and data.eval_flip; see pixelwise.engine.inference.segment_logits). limit: evaluate the first
    `limit` images of the split, or 'all' of them (default: the run's data.test_limit, or
    data.train_limit for split 'train', the subset it was trained and evaluated with)."""
    from pixelwise.config import DataConfig
    from pixelwise.data import build_dataset
    from pixelwise.outliers.scores import run_outlier_mode
    model, config = load_run(run)
    data = DataConfig.model_validate(config["train_config"]["data"])
    if data_dir:
        data.root = data_dir
    if (scales is not None or flip is not None) and (
            config.get("task") != "segmentation" or run_outlier_mode(config) is not None):
        raise PixelwiseError(f"{run}: --scales/--flip (test-time augmentation) apply to segmentation runs "
                             "without outlier scoring; evaluate this run without them")
    limit_key = "train_limit" if split == "train" else "test_limit"
    if limit is not None and limit != "all" and (not isinstance(limit, int) or limit < 1):
        raise PixelwiseError(f"eval limit must be a positive number of images or 'all', got {limit!r}")
    run_limit = getattr(data, limit_key) if limit is None else None
    overrides = {"eval_scales": scales, "eval_flip": flip}
    # Not validated here: segment_logits checks the scales.
    data = data.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if limit is not None:
        data = data.model_copy(update={limit_key: None if limit == "all" else limit})
    dataset = build_dataset(data, split)
    result = _evaluate_dataset(model, config, dataset, data, run, split, out_dir, progress)
    if run_limit is not None:
        result["text"] += (f" (the first {run_limit}: the run's data.{limit_key}; --limit all evaluates the "
                           "whole split)")
    return result


def _evaluate_dataset(model: nn.Module, config: dict, dataset, data, run, split: str,
                      out_dir: str | Path | None, progress: bool) -> dict:
    from pixelwise.engine.checkpoint import write_json
    from pixelwise.engine.evaluate import evaluate_classifier
    from pixelwise.outliers.scores import run_outlier_mode
    from pixelwise.viz.figures import plot_confusion_matrix
    classes = config["classes"]
    if config.get("task") == "segmentation" and run_outlier_mode(config) is not None:
        from pixelwise.outliers.evaluate import evaluate_outlier_run
        return evaluate_outlier_run(model, dataset, classes, run_outlier_mode(config), run, split, out_dir,
                                    progress)
    if config.get("task") == "segmentation":
        return evaluate_segmentation_run(model, dataset, classes, data, run, split, out_dir, progress)
    meter = evaluate_classifier(model, dataset, len(classes), torch.device("cpu"), progress=progress)
    out = Path(out_dir or Path(run) / "eval")
    metrics = {"run": str(run), "split": split, **meter.summary(), "classes": classes,
               "confusion_matrix": meter.cm.tolist()}
    write_json(out / "metrics.json", metrics)
    plot_confusion_matrix(meter.cm, classes, out / "confusion_matrix.png")
    per_class = meter.cm.diag().double() / meter.cm.sum(1).clamp(min=1).double()
    lines = ["| class | recall |", "| --- | --- |"] + [f"| {c} | {r:.4f} |" for c, r in zip(classes, per_class.tolist())]
    (out / "per_class.md").write_text("\n".join(lines) + "\n")
    text = (f"{split}: top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} on {metrics['n']} images; "
            f"figures and tables in {out}")
    return {"metrics": metrics, "text": text}


def segment_images(model: nn.Module, config: dict, images: list[str], out_dir: str | Path,
                   scales: Sequence[float] | None = None, flip: bool | None = None) -> list[dict]:
    """Segment image files with a trained segmenter; colour overlays and label maps written as PNG.

    Each image is read as RGB at its own size (sliding windows when the run used data.eval_window;
    test-time scales and flip as given, else as the run's data.eval_scales and data.eval_flip);
    writes OUT/STEM_overlay.png (prediction blended on the image) and OUT/STEM_labels.png (class
    indices). Returns per image the files and the fraction of pixels of each predicted class.
    """
    from pixelwise.config import DataConfig
    from pixelwise.engine.inference import segment_logits
    from pixelwise.viz.overlays import overlay, palette_for, save_png
    classes, out_dir = config["classes"], Path(out_dir)
    data = DataConfig.model_validate(config.get("train_config", {}).get("data", {}))
    window = data.eval_window
    scales = scales if scales is not None else data.eval_scales
    flip = flip if flip is not None else data.eval_flip
    palette, results = palette_for(classes), []
    from pixelwise.outliers.scores import run_outlier_mode
    outlier_mode = run_outlier_mode(config)
    for path in images:
        image = read_image(path, "RGB")
        pred = segment_logits(model, image[None], window, scales=scales, flip=flip).argmax(1)[0]
        stem = Path(path).stem
        files = {"overlay": str(save_png(overlay(image, pred, palette), out_dir / f"{stem}_overlay.png")),
                 "labels": str(save_png(pred.to(torch.uint8).numpy(), out_dir / f"{stem}_labels.png"))}
        if outlier_mode is not None:   # the outlier heat map beside the overlay
            from pixelwise.outliers.scores import outlier_probability
            from pixelwise.viz.heatmaps import heatmap
            with torch.inference_mode():
                score = outlier_probability(model(image[None]), outlier_mode)[0]
            files["outliers"] = str(save_png(heatmap(image, score), out_dir / f"{stem}_outliers.png"))
        share = torch.bincount(pred.flatten(), minlength=len(classes)).double() / pred.numel()
        results.append({"image": str(path), "files": files,
                        "class_fractions": {c: float(f) for c, f in zip(classes, share) if f > 0}})
    return results


def evaluate_segmentation_run(model: nn.Module, dataset, classes: list[str], data, run, split: str,
                              out_dir: str | Path | None, progress: bool = True) -> dict:
    """mIoU, per-class IoU table (Markdown, JSON) and confusion-matrix figure of a segmentation run."""
    from pixelwise.engine.inference import evaluate_segmenter, write_segmentation_report
    meter = evaluate_segmenter(model, dataset, len(classes), torch.device("cpu"), progress=progress,
                               window=data.eval_window, scales=data.eval_scales, flip=data.eval_flip)
    out = Path(out_dir or Path(run) / "eval")
    metrics = {"run": str(run), "split": split,
               **write_segmentation_report(meter, classes, out, title=f"{Path(run).name} {split}")}
    text = (f"{split}: mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} on "
            f"{metrics['n']} images; per-class table and confusion figure in {out}")
    return {"metrics": metrics, "text": text}
