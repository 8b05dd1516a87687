"""Prediction and evaluation of trained runs: what `pixelwise predict` and `pixelwise eval` do."""
from __future__ import annotations

from pathlib import Path

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
                   topk: int = 5, out_dir: str | Path = "predictions") -> list[dict]:
    """Top-k predictions of a trained run (or of a named pretrained model) for image files."""
    if model is not None:
        from pixelwise.models.pretrained import load_pretrained_classifier
        net, classes, preprocess = load_pretrained_classifier(model)
        batch = [preprocess(read_image(p, "RGB")) for p in images]
    else:
        net, config = load_run(checkpoint)
        classes = config["classes"]
        channels, side = input_size(config)
        batch = [TF.resize(read_image(p, "L" if channels == 1 else "RGB"), [side, side], antialias=True)
                 for p in images]
    return [{"image": str(p), "top": top} for p, top in zip(images, classify(net, torch.stack(batch), classes, topk))]


def evaluate_run(run: str | Path, split: str = "test", data_dir: str | None = None,
                 out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Metrics of a run on its dataset; tables and figures written to out_dir (default RUN/eval)."""
    from pixelwise.config import DataConfig
    from pixelwise.data import build_dataset
    from pixelwise.engine.checkpoint import write_json
    from pixelwise.engine.evaluate import evaluate_classifier
    from pixelwise.viz.figures import plot_confusion_matrix
    model, config = load_run(run)
    data = DataConfig.model_validate(config["train_config"]["data"])
    if data_dir:
        data.root = data_dir
    dataset = build_dataset(data, split)
    classes = config["classes"]
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
