"""Runs seen through their task: train a config, evaluate a run folder, predict on files, attack it.

What `pixelwise train`, `eval`, `predict` and `attack` do; each asks the run's task object what differs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from pixelwise.config import TrainConfig, load_config, saved_train_config
from pixelwise.engine.device import pick_device
from pixelwise.engine.runs import load_run
from pixelwise.engine.train import fit
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.tasks.registry import get_task, resolve_task


EVAL_SPLITS = ("train", "test")


def with_task(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its task decided (pixelwise.tasks.registry.resolve_task) and written into it."""
    task = resolve_task(cfg)
    return cfg if cfg.task == task.name else cfg.model_copy(update={"task": task.name})


def load_task_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """load_config, then the task decided once: the run's config.json records it."""
    return with_task(load_config(path, list(overrides)))


def resolved_paths(cfg: TrainConfig) -> TrainConfig:
    """data.root and data.val_root as absolute paths, so that the run evaluates from any folder."""
    paths = {k: str(Path(getattr(cfg.data, k)).expanduser().resolve()) for k in ("root", "val_root")
             if getattr(cfg.data, k, None)}
    return cfg.model_copy(update={"data": cfg.data.model_copy(update=paths)}) if paths else cfg


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None, progress: bool = True,
          datasets: tuple | None = None, overwrite: bool = False) -> dict:
    """Train the run `cfg` describes (see pixelwise.engine.train.fit) with the task it means.

    overwrite: replace a run already in cfg.run_dir (without it, and without resume, that is refused)."""
    cfg = resolved_paths(with_task(cfg))
    return fit(cfg, get_task(cfg.task), resume_run=resume, stop_after=stop_after, progress=progress,
               datasets=datasets, overwrite=overwrite)


def run_config(config: dict) -> TrainConfig:
    """The TrainConfig a run folder was trained with (its config.json), with its task decided."""
    if "train_config" not in config:
        raise PixelwiseError("config.json has no train_config: not a run folder written by `pixelwise train`")
    return with_task(saved_train_config(config["train_config"]))


def task_of_run(config: dict):
    """The Task object of a run folder's config.json (runs written before tasks were recorded too)."""
    return get_task(run_config(config).task)


def evaluate_run(run: str | Path, split: str = "test", data_dir: str | None = None,
                 out_dir: str | Path | None = None, progress: bool = True,
                 scales: Sequence[float] | None = None, flip: bool | None = None,
                 limit: int | str | None = None, device: str = "auto") -> dict:
    """Metrics of a run on its dataset; tables, figures and metrics.json written to out_dir (default RUN/eval).

    scales, flip: test-time augmentation of a segmentation run (default: the run's data.eval_scales
    and data.eval_flip; see pixelwise.engine.inference.segment_logits). limit: evaluate the first
    `limit` images of the split, or 'all' of them (default: the run's data.test_limit, or
    data.train_limit for split 'train', the subset it was trained and evaluated with).
    device: 'auto' (a GPU when there is one), 'cpu' or 'cuda'.
    """
    if split not in EVAL_SPLITS:
        raise PixelwiseError(f"--split {split!r}: give one of {', '.join(EVAL_SPLITS)}")
    dev = pick_device(device)
    model, config = load_run(run, dev)
    cfg = run_config(config)
    task = get_task(cfg.task)
    task.check_eval_options(run, scales, flip)
    if limit is not None and limit != "all" and (not isinstance(limit, int) or limit < 1):
        raise PixelwiseError(f"eval limit must be a positive number of images or 'all', got {limit!r}")
    limit_key = "train_limit" if split == "train" else "test_limit"
    data = cfg.data
    run_limit = getattr(data, limit_key) if limit is None else None
    # Not validated here: segment_logits checks the scales.
    update = {k: v for k, v in {"eval_scales": scales, "eval_flip": flip}.items() if v is not None}
    if data_dir:
        update["root"] = data_dir
    if limit is not None:
        update[limit_key] = None if limit == "all" else limit
    if split == "train":   # evaluation never augments: the training images whole, as they are
        update.update({k: v for k, v in {"augment": "none", "photometric": False}.items() if hasattr(data, k)})
    cfg = cfg.model_copy(update={"data": data.model_copy(update=update)})
    dataset = task.dataset(cfg.data, split)
    classes = config["classes"]
    meter = task.evaluate(model, dataset, cfg, len(classes), dev, progress)
    out = Path(out_dir or Path(run) / "eval")
    if out.exists() and not out.is_dir():
        raise PixelwiseError(f"--out {out}: is a file; give a folder for the tables and figures")
    metrics = {"run": str(run), "split": split, "task": task.name,
               **task.write_report(meter, classes, out, title=f"{Path(run).name} {split}"), "classes": classes}
    write_json(out / "metrics.json", metrics)
    text = f"{split}: {task.describe(metrics)}; tables and figures in {out}"
    if getattr(dataset, "test_is_train", False):
        metrics["test_is_train"] = True
        text += " (these are the training images: the run has no data.val_root and data.val_fraction 0)"
    if run_limit is not None:
        text += f" (the first {run_limit}: the run's data.{limit_key}; --limit all evaluates the whole split)"
    return {"metrics": metrics, "text": text}


def predict_images(images: list[str], checkpoint: str | None = None, model: str | None = None,
                   topk: int = 5, out_dir: str | Path = "predictions", scales: Sequence[float] | None = None,
                   flip: bool | None = None, device: str = "auto") -> list[dict]:
    """Predictions of a trained run (its task decides what: classes, overlays, heat maps) or of a named
    pretrained classifier for image files. `scales`/`flip` set a segmentation run's test-time
    augmentation (default: the run's data.eval_scales / data.eval_flip)."""
    if topk < 1:
        raise PixelwiseError(f"--topk {topk}: give a positive number of classes")
    dev = pick_device(device)
    if model is not None:
        if scales is not None or flip is not None:
            raise PixelwiseError("--scales/--flip (test-time augmentation) apply to segmentation runs only")
        from pixelwise.models.pretrained import load_pretrained_classifier
        from pixelwise.tasks.base import read_images
        from pixelwise.tasks.classification import classify
        net, classes, preprocess = load_pretrained_classifier(model)
        batch = torch.stack([preprocess(x) for x in read_images(images, "RGB")])
        return [{"image": str(p), "top": top}
                for p, top in zip(images, classify(net.to(dev), batch.to(dev), classes, topk))]
    if checkpoint is None:
        raise PixelwiseError("predict: give --checkpoint RUN_FOLDER or --model NAME")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise PixelwiseError(f"--out {out_dir}: is a file; give a folder for the pictures")
    net, config = load_run(checkpoint, dev)
    task = task_of_run(config)
    task.check_eval_options(checkpoint, scales, flip)
    return task.predict(net, config, images, Path(out_dir), topk=topk, scales=scales, flip=flip, device=dev)


def attack_run(run: str | Path, attack: str = "pgd", norm: str = "linf", eps_list: Sequence[float] = (0.0,),
               steps: int = 10, alpha: float | None = None, random_start: bool = False,
               limit: int | None = None, batch_size: int = 256, data_dir: str | None = None,
               out_dir: str | Path | None = None, progress: bool = True, device: str = "auto") -> dict:
    """Robustness of a trained run on its test split: table (JSON, Markdown) and curve in out_dir."""
    from pixelwise.attacks.robustness import plot_robustness_curve, robustness_curve, robustness_table
    dev = pick_device(device)
    model, config = load_run(run, dev)
    cfg = run_config(config)
    if data_dir:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": data_dir})})
    dataset = get_task(cfg.task).dataset(cfg.data, "test")
    rows = robustness_curve(model, dataset, len(config["classes"]), eps_list, attack=attack, norm=norm,
                            steps=steps, alpha=alpha, random_start=random_start, batch_size=batch_size,
                            limit=limit, device=dev, progress=progress)
    out = Path(out_dir or Path(run) / "attack")
    name = f"{attack}_{norm}"
    table = robustness_table(rows)
    write_json(out / f"robustness_{name}.json", {"run": str(run), "rows": rows})
    (out / f"robustness_{name}.md").write_text(table)
    figure = plot_robustness_curve({f"{attack} {norm}": rows}, out / f"robustness_{name}.png",
                                   title=f"{Path(run).name}: {attack} ({norm})")
    return {"run": str(run), "rows": rows, "table": table, "files": [str(out / f"robustness_{name}.json"),
            str(out / f"robustness_{name}.md"), str(figure)]}
