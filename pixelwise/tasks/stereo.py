"""Stereo reconstruction: a rectified pair in, the left view's disparity (N, 1, H, W) px out; EPE, bad-t
and D1 over all and non-occluded pixels of the dataset (FS-Stereo protocol, pixelwise.metrics.stereo).

A batch's inputs are the tuple (left, right), each (N, 3, H, W) float in [0, 1]; its targets the dict
of FSStereo (disparity px, valid, occluded). `pixelwise stereo LEFT RIGHT` (reconstruct_pair) runs a
trained run or OpenCV's StereoSGBM on a pair of files; `pixelwise predict` takes side-by-side stereo
images (left half = left view), the one-file form of a pair.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.config import DataSection, FSStereoData, TrainConfig
from pixelwise.data.fs_stereo import FSStereo
from pixelwise.data.stereo_files import (depth_from_disparity, image_channels, write_depth_png,
                                         write_disparity_png)
from pixelwise.data.stereo_transforms import stereo_train_transform
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.metrics.stereo import StereoMeter
from pixelwise.models.stereo import PairOnChannels
from pixelwise.tasks.base import Task, output_stems, read_images
from pixelwise.tasks.registry import register_task

CLASSES = ["disparity"]          # what a stereo run predicts (config.json's classes)
SCALE_WEIGHTS = (0.5, 0.7, 1.0)  # loss weights of the stride-4, stride-2 and full-resolution estimates
# Depth abs-rel counts pixels whose true depth is at most this (m) and clips predicted depth to it,
# as KITTI's depth protocol does at 80 m: a near-zero predicted disparity otherwise gives an unbounded
# depth (on FS-Stereo 1.5% of the pixels gave 97% of the uncapped figure).
DEPTH_CAP = 80.0
EXAMPLES = 4                     # pairs kept for the report's picture strip
PAD_MULTIPLE = 32                # a learned model's inputs are padded to this (its deepest stride)


class StereoPairs(Dataset):
    """FS-Stereo sets (e.g. the clean and the textured pairs) one after the other, as one dataset with
    `classes`, `focal`, `baseline` and `set_epoch` (which every part follows)."""

    classes = CLASSES

    def __init__(self, parts: Sequence[FSStereo]):
        self.parts = list(parts)
        self.focal, self.baseline = self.parts[0].focal, self.parts[0].baseline
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int):
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[part][i - int(self.starts[part])]

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        for p in self.parts:
            p.set_epoch(epoch, seed)


class StereoEvaluation(StereoMeter):
    """A StereoMeter over a dataset plus what the report shows beside the figures: the first pairs'
    maps (`examples`) and the model's time (`seconds`, `pairs`; not part of `summary`, which a repeated
    evaluation must reproduce exactly)."""

    def __init__(self, focal: float | None = None, baseline: float | None = None, max_depth: float | None = None):
        super().__init__(focal, baseline, max_depth=max_depth)
        self.examples: list[dict] = []
        self.seconds, self.pairs = 0.0, 0


@torch.inference_mode()
def evaluate_stereo(model: nn.Module, dataset: Dataset, device: torch.device = torch.device("cpu"),
                    batch_size: int = 16, workers: int = 0, progress: bool = True,
                    max_depth: float | None = DEPTH_CAP) -> StereoEvaluation:
    """Disparity errors of `model` (forward(left, right) -> (N, 1, H, W) px; a learned model or
    StereoSGBM) over every pair of `dataset` (FSStereo items), with depth abs-rel from the dataset's
    focal length and baseline, and the model's seconds per pair (data loading excluded)."""
    was_training = model.training
    model.eval()
    meter = StereoEvaluation(getattr(dataset, "focal", None), getattr(dataset, "baseline", None), max_depth)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for left, right, target in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
        left, right = left.to(device), right.to(device)
        started = time.perf_counter()
        pred = model(left, right)
        meter.seconds += time.perf_counter() - started
        meter.pairs += len(left)
        if pred.shape != target["disparity"].shape:
            raise PixelwiseError(f"stereo model output {tuple(pred.shape)} differs from the disparity maps "
                                 f"{tuple(target['disparity'].shape)}; return (N, 1, H, W) at input size")
        pred = pred.float().cpu()
        meter.update(pred, target["disparity"], target["valid"], target["occluded"])
        for i in range(min(len(left), EXAMPLES - len(meter.examples))):
            meter.examples.append({"left": left[i].cpu(), "pred": pred[i, 0], **{k: target[k][i, 0] for k in
                                                                                   ("disparity", "valid")}})
    model.train(was_training)
    return meter


STEREO_ROWS = (("epe", "EPE (px)"), ("bad1", "bad-1"), ("bad2", "bad-2"), ("bad3", "bad-3"),
               ("d1", "D1 (> 3 px and > 5%)"), ("abs_rel", f"depth abs-rel (<= {DEPTH_CAP:g} m)"))


def stereo_table(metrics: dict) -> list[str]:
    """Markdown rows: each figure over all valid and over non-occluded pixels."""
    lines = ["| metric | all | non-occluded |", "| --- | ---: | ---: |"]
    for key, name in STEREO_ROWS:
        if key in metrics:
            lines.append(f"| {name} | {metrics[key]:.4f} | {metrics.get(key + '_noc', float('nan')):.4f} |")
    return lines


def write_stereo_report(meter: StereoEvaluation, out_dir: Path, title: str = "") -> dict:
    """stereo_metrics.json, stereo_metrics.md and stereo_examples.png in out_dir; returns the metrics."""
    from pixelwise.viz.disparity import plot_disparity_strip
    out_dir = Path(out_dir)
    metrics = meter.summary()
    write_json(out_dir / "stereo_metrics.json", {"title": title, "depth_cap_m": meter.max_depth, **metrics})
    (out_dir / "stereo_metrics.md").write_text("\n".join(
        [f"# {title or 'stereo'}: EPE {metrics['epe']:.3f} px, D1 {metrics.get('d1_noc', float('nan')):.4f} "
         f"(non-occluded) on {metrics['n']} pairs", "", *stereo_table(metrics)]) + "\n")
    if getattr(meter, "examples", None):
        plot_disparity_strip(meter.examples, out_dir / "stereo_examples.png", title=title)
    return metrics


def padded_disparity(model: nn.Module, left: torch.Tensor, right: torch.Tensor, multiple: int) -> torch.Tensor:
    """model(left, right) for (N, C, H, W) views of any size: both padded on the right and bottom (edge
    pixels repeated) to a multiple of `multiple`, the disparity cropped back to (N, 1, H, W)."""
    h, w = left.shape[-2:]
    pad = (0, -w % multiple, 0, -h % multiple)
    if any(pad):
        left, right = (F.pad(v, pad, mode="replicate") for v in (left, right))
    return model(left, right)[..., :h, :w]


def write_stereo_outputs(disparity: torch.Tensor, out_dir: Path, stem: str, focal: float | None = None,
                         baseline: float | None = None, matched: torch.Tensor | None = None) -> dict:
    """The files of one reconstructed pair in out_dir: STEM_disparity.png (colours), STEM_disparity16.png
    (KITTI: uint16 of d * 256), with focal (px) and baseline (m) STEM_depth.npy (float32 m, inf where
    d <= 0) and STEM_depth_mm.png (uint16 mm, 0 = none), and with `matched` STEM_matched.png (255 where
    the matcher found the pixel itself). disparity: (H, W) px. Returns {kind: path}."""
    from pixelwise.viz.disparity import colorize_disparity
    from pixelwise.viz.overlays import save_png
    d = disparity.detach().float().cpu().numpy()
    files = {"disparity_colour": str(save_png(colorize_disparity(d), out_dir / f"{stem}_disparity.png")),
             "disparity_16bit": str(write_disparity_png(d, out_dir / f"{stem}_disparity16.png"))}
    if matched is not None:
        files["matched"] = str(save_png(matched.cpu().numpy().astype(np.uint8) * 255, out_dir / f"{stem}_matched.png"))
    if focal is not None and baseline is not None:
        depth = depth_from_disparity(d, focal, baseline)
        np.save(out_dir / f"{stem}_depth.npy", depth)
        files["depth_npy"] = str(out_dir / f"{stem}_depth.npy")
        files["depth_mm"] = str(write_depth_png(depth, out_dir / f"{stem}_depth_mm.png"))
    return files


def disparity_stats(disparity: torch.Tensor) -> dict:
    d = disparity.detach().float().flatten()
    return {"min": float(d.min()), "median": float(d.median()), "max": float(d.max())}


class Stereo(Task):
    name = "stereo"
    model_kind = "stereo"

    # --- data -----------------------------------------------------------------------------------
    def dataset(self, data: DataSection, split: str) -> StereoPairs:
        """FS-Stereo's `split`: the training pairs of data.train_variants (or data.variant), through the
        rectified joint transforms under augment crop_flip; the test pairs of data.variant, as they are."""
        if not isinstance(data, FSStereoData):
            raise PixelwiseError(f"data.name {data.name!r}: stereo runs train and test on FS-Stereo pairs; "
                                 "set data.name=fs_stereo")
        train = split == "train"
        transform = (stereo_train_transform(data.crop_size, flip=True, photometric=data.photometric)
                     if train and data.augment == "crop_flip" else None)
        variants = data.train_variants if train and data.train_variants else [data.variant]
        limit = data.train_limit if train else data.test_limit
        return StereoPairs([FSStereo(split, root=data.root, size=data.canvas_size, n=limit, variant=v,
                                     transform=transform) for v in variants])

    # --- training -------------------------------------------------------------------------------
    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict:
        return dict(cfg.model_kwargs)

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        """(left, right, target) -> ((left, right), target) on `device`."""
        if cfg.channels_last or cfg.adversarial.method != "none":
            raise PixelwiseError("stereo runs take a pair of images per input, which channels_last and "
                                 "adversarial training do not handle; set channels_last=false and "
                                 "adversarial.method=none")
        left, right, target = batch
        return (left.to(device), right.to(device)), {k: v.to(device) for k, v in target.items()}

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        """Smooth-L1 (px) over the valid pixels of each estimate, weighted by SCALE_WEIGHTS (the last
        weight for the full-resolution one); `output` a disparity (N, 1, H, W) or the list of them."""
        outputs = output if isinstance(output, (list, tuple)) else [output]
        valid = target["valid"]
        true = target["disparity"][valid]
        weights = SCALE_WEIGHTS[-len(outputs):]
        return sum(w * F.smooth_l1_loss(o.float()[valid], true) for w, o in zip(weights, outputs))

    def loss(self, model: nn.Module, x, target, cfg: TrainConfig) -> torch.Tensor:
        return self.output_loss(model(*x, every_scale=True), target, cfg)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> StereoEvaluation:
        return evaluate_stereo(model, dataset, device, cfg.eval_batch_size, cfg.data.workers, progress)

    def write_report(self, meter: StereoEvaluation, classes: list[str], out_dir: Path, title: str = "") -> dict:
        return write_stereo_report(meter, out_dir, title)

    def describe(self, metrics: dict) -> str:
        return (f"EPE {metrics['epe']:.3f} px, bad-3 {metrics['bad3']:.4f}, D1 {metrics['d1']:.4f}; "
                f"non-occluded: EPE {metrics['epe_noc']:.3f} px, D1 {metrics['d1_noc']:.4f} "
                f"on {metrics['n']} pairs")

    def accuracy_meter(self, num_classes: int):
        raise PixelwiseError("int8 accuracy comparisons take single images; stereo runs are not supported "
                             "by `pixelwise export --int8`")

    def smoke_overrides(self, root: str) -> list[str]:
        return ["model=swiftnet_stereo",
                "model_kwargs={max_disparity: 16, num_features: 16, match_features: 8, width: 16, refine_width: 8, "
                "backbone_kwargs: {channels: [8, 16, 32, 64], stem_width: 8}}",
                "data.name=fs_stereo", f"data.root={root}", "data.canvas_size=32", "data.train_limit=8",
                "data.test_limit=4", "data.crop_size=[24, 32]", "data.train_variants=[clean, textured]",
                "batch_size=4", "epochs=2", "optim.name=adam", "optim.lr=0.005", "eval_batch_size=4",
                "channels_last=false"]

    # --- bench and export -----------------------------------------------------------------------
    def export_module(self, model: nn.Module) -> nn.Module:
        """The pair as one tensor: left and right stacked on channels (N, 2C, H, W) -> StereoOutput."""
        return PairOnChannels(model)

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        """(2C, H, W): both views on channels; a run on FS-Stereo takes its canvas size. `channels`
        counts the channels of one view."""
        c, h, w = super().example_input(config, model_name, size, channels)
        data = (config or {}).get("train_config", {}).get("data", {})
        if size is None and data.get("name") == "fs_stereo":
            h = w = data["canvas_size"]
        return 2 * c, h, w

    # --- user files -----------------------------------------------------------------------------
    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Disparity of side-by-side stereo images (left half = left view, right half = right view; of an
        odd width the middle column is dropped): colour and KITTI 16-bit PNGs per image. For a pair in
        two files, and for depth, use `pixelwise stereo LEFT RIGHT` (reconstruct_pair)."""
        results = []
        for path, stem, image in zip(images, output_stems(images), read_images(images, "RGB")):
            half = image.shape[-1] // 2
            if half < 8:
                raise PixelwiseError(f"{path}: {image.shape[-1]} px wide; `pixelwise predict` on a stereo run "
                                     "takes side-by-side pairs (left half, right half); give each half >= 8 px, "
                                     "or two files to `pixelwise stereo LEFT RIGHT`")
            left, right = image[None, :, :, :half], image[None, :, :, image.shape[-1] - half:]
            with torch.inference_mode():
                disparity = padded_disparity(model, left.to(device), right.to(device), PAD_MULTIPLE)[0, 0].cpu()
            results.append({"image": str(path), "layout": "side by side", "disparity_px": disparity_stats(disparity),
                            "files": write_stereo_outputs(disparity, Path(out_dir), stem)})
        return results


def read_pair(left: str | Path, right: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image files of a rectified pair as (1, 3, H, W) float in [0, 1]; refused (naming both) when
    their sizes or channel counts differ."""
    channels = image_channels(left), image_channels(right)
    if channels[0] != channels[1]:
        raise PixelwiseError(f"{left} has {channels[0]} channel(s) but {right} has {channels[1]}; give the two "
                             "views of one rectified pair, both colour or both grayscale")
    a, b = read_images([str(left), str(right)], "RGB")
    if a.shape != b.shape:
        raise PixelwiseError(f"{left} is {a.shape[-1]}x{a.shape[-2]} px but {right} is {b.shape[-1]}x{b.shape[-2]}; "
                             "give the two views of one rectified pair, of one size")
    return a[None], b[None]


def reconstruct_pair(left: str | Path, right: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None,
                     method: str | None = None, focal: float | None = None, baseline: float | None = None,
                     num_disparities: int = 48, block_size: int = 5, device: str = "auto") -> dict:
    """Disparity (and, given focal length px and baseline m, depth) of the left view of a rectified pair
    of image files of any size, by a trained stereo run (`checkpoint`) or by `method='sgbm'` (OpenCV's
    StereoSGBM with num_disparities, a multiple of 16, and block_size). Files: see write_stereo_outputs;
    the SGBM pixels it did not match are filled from their farther neighbour and shown in STEM_matched.png."""
    from pixelwise.engine.device import pick_device
    from pixelwise.engine.runs import load_run
    from pixelwise.tasks.runs import task_of_run
    if (checkpoint is None) == (method is None):
        raise PixelwiseError("stereo: give either --checkpoint RUN_FOLDER (a trained stereo run) or --method sgbm")
    if (focal is None) != (baseline is None):
        raise PixelwiseError(f"stereo: depth needs both --focal (px) and --baseline (m); got focal={focal}, "
                             f"baseline={baseline}")
    if focal is not None and (focal <= 0 or baseline <= 0):
        raise PixelwiseError(f"stereo: --focal ({focal}) and --baseline ({baseline}) must be > 0")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PixelwiseError(f"--out {out}: is a file; give a folder for the maps")
    l_img, r_img = read_pair(left, right)
    stem = Path(left).stem
    result: dict = {"left": str(left), "right": str(right), "size": [l_img.shape[-2], l_img.shape[-1]]}
    started = time.perf_counter()
    if method is not None:
        if method != "sgbm":
            raise PixelwiseError(f"stereo: --method {method!r} is unknown; the classical method is 'sgbm'")
        from pixelwise.models.sgbm import StereoSGBM
        sgbm = StereoSGBM(num_disparities=num_disparities, block_size=block_size).predict_with_validity(l_img, r_img)
        disparity, matched = sgbm.disparity[0, 0], sgbm.valid[0, 0]
        result |= {"method": "sgbm", "density": sgbm.density}
    else:
        dev = pick_device(device)
        model, config = load_run(checkpoint, dev)
        task = task_of_run(config)
        if task.name != "stereo":
            raise PixelwiseError(f"{checkpoint}: is a {task.name} run; `pixelwise stereo` needs a run trained "
                                 "with a stereo model (e.g. configs/swiftnet_stereo_fs_stereo.yaml)")
        with torch.inference_mode():
            disparity = padded_disparity(model, l_img.to(dev), r_img.to(dev), PAD_MULTIPLE)[0, 0].cpu()
        matched = None
        result |= {"checkpoint": str(checkpoint)}
    result["seconds"] = time.perf_counter() - started
    result["disparity_px"] = disparity_stats(disparity)
    result["files"] = write_stereo_outputs(disparity, out, stem, focal, baseline, matched)
    return result


register_task(Stereo())
