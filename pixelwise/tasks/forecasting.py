"""Semantic segmentation forecasting on FS-Forecast: F2F (pixelwise.models.forecast) against the oracle,
copy-last and flow-warp baselines, all evaluated in one pass over the test clips (DESIGN.md, FS-Forecast).

Training regresses the frozen segmenter's level features of t+3 and t+9 (mean squared error), plus,
with the model's ce_weight > 0, the cross-entropy of their decoding (through the frozen decoder)
against the true labels of those frames.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.config import DataSection, TrainConfig
from pixelwise.data.fs_forecast import HORIZONS, MOVING_CLASSES, OBSERVED, OFFSETS, FSForecast
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.labels import IGNORE_INDEX
from pixelwise.metrics.forecasting import ForecastMeter
from pixelwise.models.flow_warp import flow_warp_forecast
from pixelwise.models.outputs import unwrap
from pixelwise.tasks.base import Task, output_stems, read_images
from pixelwise.tasks.registry import register_task
from pixelwise.tasks.segmentation import run_data, write_prediction_pictures

METHODS = ("oracle", "copy_last", "flow_warp", "f2f")
LABELS = {"oracle": "oracle (true future frame)", "copy_last": "copy-last", "flow_warp": "flow warp (Farneback)",
          "f2f": "F2F"}
EXAMPLES = 4          # clips drawn in the report's strips
FLOW_STEP = 3         # the flow runs between t-3 and t


def segmenter_architecture(folder: str | Path) -> tuple[str, dict]:
    """(model name, kwargs) of the segmenter run in `folder` (its config.json)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise PixelwiseError(f"model_kwargs.pretrained={folder}: no config.json there; give the run folder of "
                             "the single-frame segmenter (model=swiftnet_f2f data.name=fs_forecast)")
    config = json.loads(path.read_text())
    return config["model"], config.get("model_kwargs", {})


class Forecasting(Task):
    name = "forecasting"
    model_kind = "forecasting"

    def dataset(self, data: DataSection, split: str) -> Dataset:
        if data.name != "fs_forecast":
            raise PixelwiseError(f"data.name={data.name!r}: forecasting runs read FS-Forecast clips; "
                                 "set data.name=fs_forecast")
        limit = data.train_limit if split == "train" else data.test_limit
        return FSForecast(split, root=data.root, size=data.canvas_size, n=limit, test_t=data.test_t,
                          mirror=split == "train" and data.augment != "none")

    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict:
        """The segmenter's architecture is read from its run folder (model_kwargs.pretrained) into the
        forecasting run's config.json, so that the run rebuilds without that folder."""
        kwargs = {"num_classes": len(classes), **cfg.model_kwargs}
        folder = kwargs.get("pretrained")
        if folder and "segmenter_kwargs" not in kwargs:
            kwargs["segmenter"], kwargs["segmenter_kwargs"] = segmenter_architecture(folder)
        return kwargs

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        """Clips -> (observed frames stacked on channels (N, 4 * 3, H, W), {'future': (N, 2, 3, H, W)
        frames t+3, t+9, 'masks': (N, 2, H, W) their labels})."""
        frames, masks, o = batch["frames"].to(device), batch["masks"].to(device), len(OBSERVED)
        return frames[:, :o].flatten(1, 2), {"future": frames[:, o:], "masks": masks[:, o:]}

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        raise PixelwiseError("forecasting runs train on features (Forecasting.loss); adversarial training "
                             "does not apply to them")

    def loss(self, model: nn.Module, x: torch.Tensor, target: dict, cfg: TrainConfig) -> torch.Tensor:
        net = unwrap(model)
        n, c, h, w = x.shape
        observed = net.frame_features(x.reshape(n, len(OBSERVED), c // len(OBSERVED), h, w))
        truth = net.frame_features(target["future"])
        loss = x.new_zeros((), dtype=torch.float32)
        for k, forecast in enumerate(net.forecast(observed)):
            loss = loss + F.mse_loss(forecast.float(), truth[:, k].float())
            if net.ce_weight > 0:
                logits = net.decode(forecast, (h, w)).float()
                loss = loss + net.ce_weight * F.cross_entropy(logits, target["masks"][:, k].long(),
                                                              ignore_index=IGNORE_INDEX)
        return loss

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> ForecastMeter:
        """Oracle, copy-last, flow warp and F2F at t+3 and t+9 over every clip of `dataset`."""
        net, was_training = unwrap(model), model.training
        net.eval()
        meter = ForecastMeter(num_classes, METHODS, HORIZONS, MOVING_CLASSES)
        loader = DataLoader(dataset, batch_size=cfg.eval_batch_size, shuffle=False, num_workers=cfg.data.workers)
        o = len(OBSERVED)
        for batch in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
            frames, masks = batch["frames"].to(device), batch["masks"].to(device)
            size = frames.shape[-2:]
            features = net.frame_features(frames)
            segmented = [net.decode(features[:, i], size).argmax(1) for i in range(len(OFFSETS))]
            forecast = [net.decode(f, size).argmax(1) for f in net.forecast(features[:, :o])]
            warped = flow_warp_forecast(frames[:, o - 2], frames[:, o - 1], segmented[o - 1], FLOW_STEP, HORIZONS)
            preds = {h: {"oracle": segmented[o + k], "copy_last": segmented[o - 1], "flow_warp": warped[k],
                         "f2f": forecast[k]} for k, h in enumerate(HORIZONS)}
            for k, h in enumerate(HORIZONS):
                for m in METHODS:
                    meter.update(m, h, preds[h][m], masks[:, o + k])
            for i in range(min(len(frames), EXAMPLES - len(meter.examples))):
                meter.examples.append({"frames": frames[i, :, 0].cpu(), "truth": masks[i, o:].cpu(),
                                       "preds": {h: {m: p[i].cpu() for m, p in preds[h].items()} for h in HORIZONS},
                                       "sequence": int(batch["sequence"][i]), "t": int(batch["t"][i])})
            meter.clips += len(frames)
        model.train(was_training)
        return meter

    def write_report(self, meter: ForecastMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        """forecast.md and forecast.json (the table), forecast_examples.png (strips); returns the metrics."""
        out_dir = Path(out_dir)
        metrics = meter.summary()
        table = forecast_table(metrics, METHODS, HORIZONS)
        head = f"# {title or 'forecasting'}: {meter.clips} test clips, mIoU-MO over the {len(MOVING_CLASSES)} garment classes"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "forecast.md").write_text(head + "\n\n" + table + "\n")
        write_json(out_dir / "forecast.json", {"classes": classes, "moving_classes": list(MOVING_CLASSES), **metrics})
        if meter.examples:
            plot_forecast_strips(meter.examples, classes, out_dir / "forecast_examples.png", title)
        return metrics

    def describe(self, metrics: dict) -> str:
        parts = []
        for h in HORIZONS:
            parts.append(f"t+{h}: F2F mIoU {metrics[f'f2f_t{h}_miou']:.4f} (oracle {metrics[f'oracle_t{h}_miou']:.4f}, "
                         f"copy-last {metrics[f'copy_last_t{h}_miou']:.4f}, flow warp "
                         f"{metrics[f'flow_warp_t{h}_miou']:.4f}; gap closed {percent(metrics.get(f'f2f_t{h}_gap_closed'))})")
        return "; ".join(parts) + f" on {metrics['n']} clips"

    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Forecasts for image files, each taken as a still scene: observed as four identical frames, so the
        forecast is what the model expects of a scene that has not moved. Overlays and label maps of t+3
        and t+9 as PNG. Clips of real frames: `forecast_frames`."""
        from pixelwise.viz.overlays import palette_for
        classes, out_dir = config["classes"], Path(out_dir)
        palette, results = palette_for(classes), []
        for path, stem, image in zip(images, output_stems(images), read_images(images, "RGB")):
            out = forecast_frames(model, image[None].expand(len(OBSERVED), -1, -1, -1).to(device))
            files = {}
            for h, logits in zip(HORIZONS, out):
                pics = write_prediction_pictures(image, logits.argmax(1)[0].cpu(), palette, out_dir, f"{stem}_t{h}")
                files.update({f"t{h}_{k}": v for k, v in pics.items()})
            results.append({"image": str(path), "files": files, "note": "a still image: observed as four identical "
                            "frames; pixelwise.tasks.forecasting.forecast_frames forecasts real clips"})
        return results

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        """The four observed frames stacked on channels (12, canvas, canvas)."""
        c, h, w = super().example_input(config, model_name, size, channels)
        if config is not None and size is None:
            h = w = run_data(config).canvas_size
        return c, h, w

    def smoke_overrides(self, root: str) -> list[str]:
        """A randomly initialised tiny frozen segmenter (no segmenter run needed), 32 px clips."""
        return ["model=f2f", "model_kwargs={segmenter_kwargs: {num_features: 16, backbone_kwargs: {channels: "
                "[8, 16, 32, 64], stem_width: 8}}, width: 16, layers: 2, ce_weight: 0.5}",
                "data.name=fs_forecast", f"data.root={root}", "data.canvas_size=32", "data.train_limit=8",
                "data.test_limit=2", "data.augment=crop_flip", "batch_size=4", "epochs=2", "optim.name=adam",
                "optim.lr=0.01", "eval_batch_size=2"]


@torch.inference_mode()
def forecast_frames(model: nn.Module, observed: torch.Tensor):
    """ForecastOutput(short, mid) logits (1, K, H, W) of t+3 and t+9 from the frames t-9, t-6, t-3, t
    (4, 3, H, W) float in [0, 1], oldest first, of a trained F2F run's model (pixelwise.tasks.load_run)."""
    if observed.ndim != 4 or observed.shape[0] != len(OBSERVED):
        raise PixelwiseError(f"forecast_frames takes the {len(OBSERVED)} observed frames (4, 3, H, W), got "
                             f"{tuple(observed.shape)}")
    return model.eval()(observed.flatten(0, 1)[None])


def percent(share: float | None) -> str:
    """0.523 -> '52.3%'; None (no gap to close) -> 'n/a'."""
    return "n/a" if share is None else f"{share:.1%}"


def forecast_table(metrics: dict, methods: Sequence[str], horizons: Sequence[int]) -> str:
    """Markdown: one row per method, mIoU and mIoU-MO per horizon, and the gap closed of the forecasts."""
    head = "| method | " + " | ".join(f"t+{h} mIoU | t+{h} mIoU-MO" for h in horizons) + " |"
    rows = [head, "| --- |" + " ---: | ---: |" * len(horizons)]
    for m in methods:
        cells = " | ".join(f"{metrics[f'{m}_t{h}_miou']:.4f} | {metrics[f'{m}_t{h}_miou_mo']:.4f}" for h in horizons)
        rows.append(f"| {LABELS.get(m, m)} | {cells} |")
    gaps = [f"{LABELS.get(m, m)} t+{h} {percent(metrics[k])}" for m in methods for h in horizons
            if (k := f"{m}_t{h}_gap_closed") in metrics]
    return "\n".join(rows) + "\n\nGap closed, (forecast - copy-last) / (oracle - copy-last) in mIoU: " + ", ".join(gaps)


def plot_forecast_strips(examples: list[dict], classes: list[str], path: Path, title: str = "") -> Path:
    """One row per clip: the observed frames, then per horizon the truth and each method's forecast
    (one mosaic image, labelled columns)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pixelwise.viz.figures import save_figure
    from pixelwise.viz.overlays import colorize, palette_for
    palette, gap = palette_for(classes), 2
    columns = [(f"t{o:+d}" if o else "t", None, None) for o in OBSERVED]
    columns += [(f"t+{h} {name}", h, m) for h in HORIZONS
                for m, name in [("truth", "truth"), *[(m, LABELS[m].split(" (")[0]) for m in METHODS]]]
    rows = []
    for ex in examples:
        tiles = []
        for c, (_, h, m) in enumerate(columns):
            if h is None:
                tiles.append(np.repeat((ex["frames"][c].numpy()[..., None] * 255).round().astype(np.uint8), 3, -1))
            else:
                tiles.append(colorize(ex["truth"][HORIZONS.index(h)] if m == "truth" else ex["preds"][h][m], palette))
        height = tiles[0].shape[0]
        spacer = np.full((height, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([x for tile in tiles for x in (tile, spacer)][:-1], 1))
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    mosaic = np.concatenate([x for row in rows for x in (row, spacer)][:-1], 0)
    h, w = examples[0]["frames"].shape[-2:]
    fig, ax = plt.subplots(figsize=(1.1 * len(columns), 1.1 * len(examples) + 0.9))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([c * (w + gap) + w / 2 for c in range(len(columns))], [name for name, _, _ in columns],
                  rotation=45, ha="left", fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(len(examples))],
                  [f"seq {ex['sequence']}, t={ex['t']}" for ex in examples], fontsize=7)
    ax.set_title(title or "forecasts", fontsize=9, pad=40)
    return save_figure(fig, path)


register_task(Forecasting())
