"""Segmentation inference: whole-image or sliding-window logits, test-time augmentation (image scales,
horizontal flip), and evaluation over a dataset."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.errors import PixelwiseError
from pixelwise.labels import IGNORE_INDEX
from pixelwise.metrics.segmentation import SegmentationMeter
from pixelwise.models.outputs import logits_of


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering [0, length): every `stride` px, the last one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


@torch.inference_mode()
def segment_logits(model: nn.Module, images: torch.Tensor, window: int | tuple[int, int] | None = None,
                   stride: int | tuple[int, int] | None = None, scales: Sequence[float] = (1.0,),
                   flip: bool = False) -> torch.Tensor:
    """Logits (N, K, H, W) of a segmenter for images (N, C, H, W) float in [0, 1].

    window None: one pass over the whole image. Otherwise overlapping (wh, ww) windows every
    `stride` px (default: half a window), their logits averaged where they overlap; images smaller
    than a window are zero-padded and the padding cropped from the output.
    Test-time augmentation: the model also sees the images resized by each factor in `scales`
    (bilinear, antialiased when shrinking) and, with `flip`, mirrored left-right; the class
    probabilities of all passes, resized back to (H, W), are averaged and their log returned (as
    logits: the argmax and the cross-entropy are those of the averaged probabilities). With the
    defaults (scales (1.0,), no flip) the model's raw logits are returned.
    """
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise PixelwiseError(f"test-time scales must be positive numbers, got {list(scales)}")
    if scales == (1.0,) and not flip:
        return _window_logits(model, images, window, stride)
    h, w = images.shape[-2:]
    total = None
    for s in scales:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = images if size == (h, w) else F.interpolate(images, size=size, mode="bilinear",
                                                         align_corners=False, antialias=s < 1)
        for mirrored in ((False, True) if flip else (False,)):
            logits = _window_logits(model, x.flip(-1) if mirrored else x, window, stride).float()
            logits = logits.flip(-1) if mirrored else logits
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
    return (total / (len(scales) * (2 if flip else 1))).clamp_min(1e-12).log()


def _window_logits(model: nn.Module, images: torch.Tensor, window: int | tuple[int, int] | None,
                   stride: int | tuple[int, int] | None) -> torch.Tensor:
    """One pass of `segment_logits` at one scale: the whole image, or averaged sliding windows."""
    if window is None:
        return logits_of(model(images))
    wh, ww = (window, window) if isinstance(window, int) else window
    stride = stride or (max(1, wh // 2), max(1, ww // 2))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if min(wh, ww, sh, sw) < 1:
        raise PixelwiseError(f"sliding window {window} with stride {stride}: both must be positive")
    n, _, h, w = images.shape
    padded = F.pad(images, (0, max(0, ww - w), 0, max(0, wh - h)))
    ph, pw = padded.shape[-2:]
    total, count = None, torch.zeros(1, 1, ph, pw, device=images.device)
    for y in window_starts(ph, wh, sh):
        for x in window_starts(pw, ww, sw):
            tile = logits_of(model(padded[:, :, y:y + wh, x:x + ww])).float()
            if total is None:
                total = torch.zeros(n, tile.shape[1], ph, pw, device=images.device)
            total[:, :, y:y + wh, x:x + ww] += tile
            count[:, :, y:y + wh, x:x + ww] += 1
    return (total / count)[:, :, :h, :w]


def _stack_same_size(batch: list):
    """Collate (image, mask) pairs: stacked when all sizes agree, else a list of singletons."""
    if len({tuple(x.shape) for x, _ in batch}) == 1:
        return [(torch.stack([x for x, _ in batch]), torch.stack([torch.as_tensor(y) for _, y in batch]))]
    return [(x[None], torch.as_tensor(y)[None]) for x, y in batch]


@torch.inference_mode()
def evaluate_segmenter(model: nn.Module, dataset: Dataset, num_classes: int, device: torch.device,
                       batch_size: int = 8, workers: int = 0, progress: bool = True,
                       window: int | tuple[int, int] | None = None,
                       stride: int | tuple[int, int] | None = None, scales: Sequence[float] = (1.0,),
                       flip: bool = False) -> SegmentationMeter:
    """Confusion matrix, mIoU, pixel accuracy and mean loss of `model` over all pixels of `dataset`.

    Images of different sizes are evaluated one at a time; `window`/`stride` select sliding-window
    inference, `scales`/`flip` test-time augmentation (see `segment_logits`).
    """
    was_training = model.training
    model.eval()
    meter = SegmentationMeter(num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=_stack_same_size)
    for groups in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
        for x, y in groups:
            x, y = x.to(device), y.to(device).long()
            logits = segment_logits(model, x, window, stride, scales, flip)
            if logits.shape[-2:] != y.shape[-2:]:
                raise PixelwiseError(f"model output {tuple(logits.shape[-2:])} differs from the mask size "
                                     f"{tuple(y.shape[-2:])}; segmenters must return logits at input size")
            loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE_INDEX, reduction="sum")
            meter.update(logits, y, loss.item())
    model.train(was_training)
    return meter


def write_segmentation_report(meter: SegmentationMeter, classes: list[str], out_dir, title: str = "") -> dict:
    """per_class_iou.md and .json, confusion_matrix.json and confusion_matrix.png in `out_dir`; the metrics."""
    from pathlib import Path

    from pixelwise.files import write_json
    from pixelwise.viz.figures import plot_confusion_matrix
    out_dir = Path(out_dir)
    summary, ious = meter.summary(), meter.per_class_iou()
    metrics = {**summary, "per_class_iou": dict(zip(classes, ious))}
    write_json(out_dir / "per_class_iou.json", {"classes": classes, **metrics})
    write_json(out_dir / "confusion_matrix.json", {"classes": classes, "matrix": meter.cm.tolist()})
    rows = [f"| {c} | {v:.4f} |" for c, v in zip(classes, ious)]
    (out_dir / "per_class_iou.md").write_text("\n".join(
        [f"# {title or 'segmentation'}: mIoU {summary['miou']:.4f}, pixel accuracy "
         f"{summary['pixel_accuracy']:.4f} ({summary['n']} images)", "", "| class | IoU |", "| --- | --- |",
         *rows, f"| **mean** | **{summary['miou']:.4f}** |"]) + "\n")
    plot_confusion_matrix(meter.cm, classes, out_dir / "confusion_matrix.png",
                          title="pixel confusion matrix (rows: true, normalized)")
    return metrics
