"""The training loop shared by every task, readable top to bottom: setup, resume, one step, evaluation,
checkpoints. It knows no task: what differs (datasets, collate, batch preparation, loss, evaluation,
report) comes from a task object (pixelwise.tasks), which `fit` is given.

Resumable at any step: the data order, augmentation and dropout are functions of (seed, step), and
the checkpoint holds model, optimizer and step, so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelwise.config import TrainConfig
from pixelwise.engine import distributed as dist
from pixelwise.engine.checkpoint import RESUME, WEIGHTS, load_resume_state, save_resume_state, save_weights
from pixelwise.engine.device import native_bf16, pick_device, pick_precision, seed_device  # noqa: F401
from pixelwise.engine.optim import build_optimizer, lr_factor, param_groups  # noqa: F401
from pixelwise.errors import PixelwiseError
from pixelwise.files import append_jsonl, read_jsonl, write_json, write_jsonl
from pixelwise.models import create_model

LOG = "train_log.jsonl"   # one line per step (loss, lr, throughput) and per evaluation
# Keys a resumed run may change: where things are and how fast, not what is trained.
RESUMABLE_CHANGES = ("name", "out_dir", "threads", "device", "checkpoint_every", "eval_batch_size",
                     "eval_every_epoch", "eval_train", "data.root", "data.val_root", "data.workers",
                     "data.test_limit")


class TaskLike(Protocol):
    """What the loop asks of a task (pixelwise.tasks.Task implements it)."""
    name: str
    collate: Any

    def datasets(self, cfg: TrainConfig) -> tuple[Dataset, Dataset]: ...
    def model_kwargs(self, cfg: TrainConfig, classes: list[str]) -> dict: ...
    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator): ...
    def loss(self, model: nn.Module, x, y, cfg: TrainConfig) -> torch.Tensor: ...
    def output_loss(self, output, y, cfg: TrainConfig) -> torch.Tensor: ...
    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True): ...
    def write_report(self, meter, classes: list[str], out_dir: Path, title: str = "") -> dict: ...


def epoch_indices(n: int, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of a permutation that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world_size
    return perm[rank * per_rank:(rank + 1) * per_rank]


@contextmanager
def stop_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks, so it can save before exiting."""
    flag = {"stop": None}
    handlers = {}

    def handler(signum, frame):
        flag["stop"] = signal.Signals(signum).name

    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            handlers[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield flag
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


@dataclass
class TrainState:
    """Everything a run holds between steps; `setup` builds it, `resume` restores it from a checkpoint."""
    cfg: TrainConfig
    task: TaskLike
    device: torch.device
    precision: str
    model: nn.Module
    ddp_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    base_lrs: list[float]
    train_ds: Dataset
    test_ds: Dataset
    classes: list[str]
    steps_per_epoch: int
    total: int
    rank: int = 0
    world_size: int = 1
    step: int = 0
    history: list[dict] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)   # JSONL rows not yet written

    @property
    def lead(self) -> bool:
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.cfg.run_dir / RESUME

    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.precision != "fp32")

    def model_config(self) -> dict:
        """config.json of the run: how to rebuild the model, its classes, its task and the whole config."""
        return {"model": self.cfg.model, "model_kwargs": self.task.model_kwargs(self.cfg, self.classes),
                "classes": self.classes, "task": self.task.name, "train_config": self.cfg.model_dump()}


def setup(cfg: TrainConfig, task: TaskLike, datasets: tuple | None = None) -> TrainState:
    """Device, datasets, model, optimizer and the step count of a fresh run of `cfg` for `task`."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    dist.init_from_env(device)
    device = pick_device(cfg.device)
    rank, world_size = dist.world()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    train_ds, test_ds = datasets or task.datasets(cfg)
    classes = list(train_ds.classes)
    model = create_model(cfg.model, **task.model_kwargs(cfg, classes)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = pick_precision(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    optimizer = build_optimizer(model, cfg.optim)
    per_rank = len(train_ds) // world_size
    if per_rank == 0:
        raise PixelwiseError(f"data: {len(train_ds)} training items cannot be shared by {world_size} processes")
    steps_per_epoch = per_rank // cfg.batch_size if per_rank >= cfg.batch_size else 1
    ddp_model = model
    if world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:   # the weights stay model's: checkpoints, evaluation and export see no wrapper
        # fallback_random: dropout and other random ops draw from torch's generator as in eager mode,
        # so a compiled run makes the same draws as an eager one (inductor's own RNG would not)
        ddp_model = torch.compile(ddp_model, options={"fallback_random": True})
    return TrainState(cfg=cfg, task=task, device=device, precision=precision, model=model, ddp_model=ddp_model,
                      optimizer=optimizer, scaler=scaler, base_lrs=[g["lr"] for g in optimizer.param_groups],
                      train_ds=train_ds, test_ds=test_ds, classes=classes, steps_per_epoch=steps_per_epoch,
                      total=cfg.max_steps or cfg.epochs * steps_per_epoch, rank=rank, world_size=world_size)


def flat(d: dict, prefix: str = "") -> dict:
    """{'data': {'root': x}} -> {'data.root': x}."""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "model_kwargs" else {f"{prefix}{k}": v})
    return out


def config_changes(saved: dict, now: dict) -> list[str]:
    """'key: saved -> now' for every key that differs and would change what is trained."""
    a, b = flat(saved), flat(now)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in RESUMABLE_CHANGES]


def resume(state: TrainState) -> None:
    """Model, optimizer, step and history from run_dir/last.ckpt; the step log is cut back to that step.

    The checkpoint's config must equal this one but for RESUMABLE_CHANGES; the error names the keys."""
    path = state.checkpoint_path
    saved = load_resume_state(path)
    if "config" in saved:   # checkpoints written before configs were kept in them are not compared
        changed = config_changes(json.loads(saved["config"]), state.cfg.model_dump(mode="json"))
        if changed:
            raise PixelwiseError(f"{path}: this config differs from the one the run was trained with "
                                 f"({'; '.join(changed)}); resume with the same config, or train into a new "
                                 "out_dir")
    if saved["steps_per_epoch"] != state.steps_per_epoch or saved["total"] != state.total:
        raise PixelwiseError(
            f"{path}: was written with {saved['total']} steps of {saved['steps_per_epoch']} per "
            f"epoch, this config gives {state.total} of {state.steps_per_epoch}; resume with the same config")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.step = int(saved["step"])
    state.history = [dict(zip(saved["history_keys"], row.tolist())) for row in saved["history"]]
    if state.lead:   # steps after the checkpoint are trained again: their log lines go
        log = state.cfg.run_dir / LOG
        write_jsonl(log, [r for r in read_jsonl(log) if r.get("step", 0) <= state.step])


def save_checkpoint(state: TrainState) -> None:
    """last.ckpt (atomically) and the step log lines gathered since the last one."""
    if not state.lead:
        return
    keys = sorted({k for h in state.history for k in h})
    rows = torch.tensor([[float(h.get(k, float("nan"))) for k in keys] for h in state.history],
                        dtype=torch.float64)
    save_resume_state(state.checkpoint_path, {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(), "step": state.step,
        "steps_per_epoch": state.steps_per_epoch, "total": state.total,
        "history_keys": keys, "history": rows.reshape(len(state.history), len(keys)),
        "config": json.dumps(state.cfg.model_dump(mode="json"))})
    append_jsonl(state.cfg.run_dir / LOG, state.log)
    state.log.clear()


def epoch_loader(state: TrainState, epoch: int, first: int) -> DataLoader:
    """The batches of `epoch` from its `first` batch on, in the order fixed by (seed, epoch)."""
    cfg = state.cfg
    idx = epoch_indices(len(state.train_ds), cfg.seed, epoch, state.rank, state.world_size)
    if hasattr(state.train_ds, "set_epoch"):  # per-item augmentation draws become f(seed, epoch, index)
        state.train_ds.set_epoch(epoch, cfg.seed)
    batches = idx[first * cfg.batch_size:state.steps_per_epoch * cfg.batch_size].split(cfg.batch_size)
    return DataLoader(state.train_ds, batch_sampler=[b.tolist() for b in batches], num_workers=cfg.data.workers,
                      collate_fn=state.task.collate, generator=torch.Generator().manual_seed(cfg.seed + epoch))


def train_step(state: TrainState, batch, stop_requested: bool) -> tuple[torch.Tensor, bool]:
    """One optimizer step on a loader batch; returns (loss, whether any process asked to stop).

    Every random draw of a step (augmentation, dropout, attacks) is a function of (seed, step, rank).
    """
    cfg, task, step = state.cfg, state.task, state.step
    step_seed = cfg.seed * 1_000_003 + step * state.world_size + state.rank
    seed_device(step_seed, state.device)
    gen = torch.Generator().manual_seed(step_seed)
    x, y = task.prepare_batch(batch, cfg, state.device, gen)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if cfg.adversarial.method != "none":
        from pixelwise.attacks.training import adversarial_batch
        with state.autocast():  # the attack's passes run at the precision of the update's
            x = adversarial_batch(state.ddp_model, x, y, cfg.adversarial,
                                  lambda out, t: task.output_loss(out, t, cfg), gen)
    factor = lr_factor(step, state.total, cfg.schedule)
    frozen = step < cfg.optim.freeze_backbone_steps
    for g, base in zip(state.optimizer.param_groups, state.base_lrs):
        g["lr"] = 0.0 if frozen and g.get("backbone") else base * factor
    with state.autocast():
        loss = task.loss(state.ddp_model, x, y, cfg).float()
    flags = dist.all_reduce_sum(torch.tensor([float(not torch.isfinite(loss)), float(stop_requested)]))
    if flags[0] > 0:
        path = state.checkpoint_path
        raise PixelwiseError(
            f"step {step}: the loss is not finite ({loss.item()}); training stopped. "
            f"Lower optim.lr (now {cfg.optim.lr}) or check the data; the last good "
            f"checkpoint is {path if path.exists() else 'not written yet'}")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.step += 1
    return loss, bool(flags[1] > 0)


def evaluate(state: TrainState, dataset: Dataset, progress: bool = True):
    """The task's meter over `dataset` with the model as it is now."""
    return state.task.evaluate(state.model, dataset, state.cfg, len(state.classes), state.device, progress)


def refuse_to_overwrite(run_dir: Path) -> None:
    """A fresh run must not replace the weights or checkpoint of another one."""
    found = [name for name in (WEIGHTS, RESUME) if (run_dir / name).exists()]
    if found:
        raise PixelwiseError(f"{run_dir}: holds a run already ({', '.join(found)}); continue it with --resume, "
                             f"train into a new out_dir, or replace it with --overwrite")


def fit(cfg: TrainConfig, task: TaskLike, resume_run: bool = False, stop_after: int | None = None,
        progress: bool = True, datasets: tuple | None = None, overwrite: bool = False) -> dict:
    """Train `cfg.model` for `task`; write weights, the step log, metrics and figures to `cfg.run_dir`.

    resume_run: continue from run_dir/last.ckpt. stop_after: stop (as an interruption would, saving a
    checkpoint) after this many steps of this call. datasets: (train, test) datasets of your own, each
    with `.classes`, instead of those the task builds from `cfg.data`. overwrite: replace a run already
    in run_dir (otherwise refused). Returns the summary also written to summary.json.
    """
    if not resume_run and not overwrite:
        refuse_to_overwrite(cfg.run_dir)
    state = setup(cfg, task, datasets)
    if resume_run:
        resume(state)
    elif state.lead:
        (cfg.run_dir / LOG).unlink(missing_ok=True)   # a replaced run's step log goes with it
    status, started, ran, last_eval = "finished", time.perf_counter(), 0, {}
    cpu_started, eval_seconds, eval_cpu_seconds = time.process_time(), 0.0, 0.0
    bar = tqdm(total=state.total, initial=state.step, desc=cfg.name, disable=not (progress and state.lead) or None,
               dynamic_ncols=True)
    with stop_signals() as flag:
        while state.step < state.total:
            epoch, pos = divmod(state.step, state.steps_per_epoch)
            state.ddp_model.train()
            tick = time.perf_counter()
            for batch in epoch_loader(state, epoch, pos):
                loss, stop = train_step(state, batch, flag["stop"] is not None)
                ran += 1
                bar.update(1)
                lr = state.optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.3g}")
                now = time.perf_counter()
                state.log.append({"step": state.step, "epoch": epoch, "loss": loss.item(), "lr": lr,
                                  "images_per_second": cfg.batch_size * state.world_size / max(now - tick, 1e-9)})
                tick = now
                if stop or (stop_after is not None and ran >= stop_after):
                    status = f"interrupted ({flag['stop']})" if flag["stop"] else "stopped"
                    break
                if state.step % cfg.checkpoint_every == 0:
                    save_checkpoint(state)
                if state.step >= state.total:
                    break
            if status != "finished":
                break
            end_of_epoch = state.step % state.steps_per_epoch == 0 or state.step >= state.total
            if end_of_epoch and state.lead and (cfg.eval_every_epoch or state.step >= state.total):
                eval_started, eval_cpu_started = time.perf_counter(), time.process_time()
                meter = last_eval[state.step] = evaluate(state, state.test_ds, progress)
                row = {"epoch": math.ceil(state.step / state.steps_per_epoch), "step": state.step,
                       "train_loss": loss.item(), **{f"test_{k}": v for k, v in meter.summary().items()}}
                if cfg.eval_train:
                    on_train = evaluate(state, state.train_ds, progress).summary()
                    row.update({f"train_{k}": v for k, v in on_train.items() if k != "loss"})
                state.history.append(row)
                state.log.append({"eval": True, **row})
                eval_seconds += time.perf_counter() - eval_started
                eval_cpu_seconds += time.process_time() - eval_cpu_started
                tqdm.write(f"epoch {row['epoch']}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in row.items() if k.startswith("test_")))
            save_checkpoint(state)
    bar.close()
    save_checkpoint(state)
    run_dir = cfg.run_dir
    summary = {"status": status, "step": state.step, "total_steps": state.total, "run_dir": str(run_dir),
               "task": task.name, "precision": state.precision,
               "train_seconds": time.perf_counter() - started - eval_seconds,
               "eval_seconds": eval_seconds,
               # CPU time of all threads: on a busy machine, train_cpu_seconds / threads estimates idle wall time.
               "train_cpu_seconds": time.process_time() - cpu_started - eval_cpu_seconds,
               "history": state.history}
    if getattr(state.test_ds, "test_is_train", False):
        summary["test_is_train"] = True
        summary["note"] = ("the test scores are measured on the training images (data.val_fraction 0, no "
                           "data.val_root): they do not say how the model does on new images")
        tqdm.write(f"note: {summary['note']}")
    if state.lead:
        save_weights(state.model, run_dir, state.model_config())
        if status == "finished":
            meter = last_eval.get(state.step) or evaluate(state, state.test_ds, progress)
            summary["test"] = task.write_report(meter, state.classes, run_dir, title=run_dir.name)
        write_json(run_dir / "summary.json", summary)
        from pixelwise.viz.figures import plot_training_curves
        plot_training_curves(read_jsonl(run_dir / LOG), run_dir / "training_curves.png", title=cfg.name)
    dist.shutdown()
    return summary
