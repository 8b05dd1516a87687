"""The parts of a task that the engine, the commands and the benchmarks ask for, with the defaults
most tasks share. A task is one object (a class only because the defaults are shared); it holds no
state of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from pixelwise.config import DataSection, TrainConfig
from pixelwise.data import build_dataset
from pixelwise.data.folders import read_image
from pixelwise.errors import PixelwiseError
from pixelwise.models import model_info


class Task:
    """What differs between tasks.

    name: registry name, written into config.json; model_kind: the kind of registered model it trains
    (pixelwise.models.ModelInfo.kind); priority: among tasks of one kind, the more specific one asks
    first whether it `accepts` a config. collate: the DataLoader's collate_fn (None: torch's default).
    """
    name = "task"
    model_kind = "classification"
    priority = 0
    collate = None
    test_time_augmentation = False   # whether eval/predict take --scales/--flip

    def accepts(self, cfg: TrainConfig) -> bool:
        """Whether a config whose model is of this task's kind means this task."""
        return True

    # --- data -----------------------------------------------------------------------------------
    def dataset(self, data: DataSection, split: str) -> Dataset:
        """The `split` ('train' or 'test') of the dataset `data` names; items as the task's loss expects."""
        return build_dataset(data, split)

    def datasets(self, cfg: TrainConfig) -> tuple[Dataset, Dataset]:
        return self.dataset(cfg.data, "train"), self.dataset(cfg.data, "test")

    # --- training -------------------------------------------------------------------------------
    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict:
        """Factory kwargs of the model for these classes; the config's model_kwargs win."""
        return {"num_classes": len(classes), **cfg.model_kwargs}

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        """A loader batch -> (inputs (N, C, H, W) in [0, 1], targets) on `device`; random draws from `gen`."""
        return batch[0].to(device), torch.as_tensor(batch[1]).to(device)

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        """The training loss of a model output (what adversarial training climbs too)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, x, target, cfg: TrainConfig) -> torch.Tensor:
        """The training loss of a batch; a task whose model needs the targets (a detector) overrides this."""
        return self.output_loss(model(x), target, cfg)

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True):
        """A meter accumulated over the whole dataset; `.summary()` gives its numbers."""
        raise NotImplementedError

    def write_report(self, meter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        """Tables (Markdown, JSON) and figures of an evaluation in `out_dir`; returns its metrics."""
        raise NotImplementedError

    def describe(self, metrics: dict) -> str:
        """One line for people: the headline numbers of `metrics` (as write_report returned them)."""
        return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))

    def accuracy_meter(self, num_classes: int):
        """(a fresh meter with .update(logits, targets) and .summary(), the key of its headline number),
        for comparing low-precision copies of a model (int8) with the original."""
        raise NotImplementedError

    def check_eval_options(self, run, scales: Sequence[float] | None, flip: bool | None) -> None:
        """Refuse test-time augmentation where this task would ignore it."""
        if not self.test_time_augmentation and (scales is not None or flip is not None):
            raise PixelwiseError(f"{run}: --scales/--flip (test-time augmentation) apply to segmentation "
                                 f"runs only (without outlier scoring), not to {self.name} runs; leave them out")

    def export_module(self, model: nn.Module) -> nn.Module:
        """The module `pixelwise bench` and `export` run: one tensor of images (N, C, H, W) in [0, 1] in
        (C as `example_input` gives it), a tensor or a named tuple of tensors out. Most tasks export the
        model itself; a detector its dense maps (peak picking outside the graph), a stereo model a
        wrapper taking left and right stacked on channels."""
        return model

    def smoke_overrides(self, root: str) -> list[str]:
        """Config overrides (on the defaults) for a run of a few steps on tiny data cached under `root`,
        a few seconds on a CPU: tests/tasks/test_every_task.py trains, resumes, evaluates, predicts
        and exports every registered task with them."""
        raise NotImplementedError(f"task {self.name!r} gives no smoke_overrides")

    # --- user files -----------------------------------------------------------------------------
    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """Predictions of a trained run for image files; pictures written to out_dir. One dict per image."""
        raise NotImplementedError

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        """(C, H, W) of an input for bench and export: the run's data where known, else the model's
        registered input size; `size` and `channels` override."""
        c, h, w = model_info(model_name).input_size
        if config is not None:
            c = config.get("model_kwargs", {}).get("in_chans", c)
        h, w = size or (h, w)
        return channels or c, h, w


def output_stems(paths: Sequence[str]) -> list[str]:
    """A distinct file stem per input for the pictures written about it: the file's stem; where inputs
    share one (a/coffee.jpg, b/coffee.png), its folder's name before it; where that still clashes, a number."""
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    stems = [f"{p.parent.name}_{s}" if stems.count(s) > 1 and p.parent.name else s for p, s in zip(paths, stems)]
    seen: dict[str, int] = {}
    out = []
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if stems.count(s) == 1 else f"{s}_{seen[s]}")
    return out


def read_images(paths: Sequence[str], mode: str) -> list[torch.Tensor]:
    """Image files as (C, H, W) float tensors in [0, 1] ('L' or 'RGB'); errors name the file."""
    return [read_image(p, mode) for p in paths]
