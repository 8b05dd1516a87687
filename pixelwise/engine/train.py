"""The training engine shared by every task: one loop, readable top to bottom.

Resumable at any step: the data order, augmentation and dropout are functions of (seed, step), and
the checkpoint holds model, optimizer and step, so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import math
import signal
import time
import warnings
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from pixelwise.config import TrainConfig
from pixelwise.data import build_dataset
from pixelwise.engine import distributed as dist
from pixelwise.engine.checkpoint import (RESUME, load_resume_state, save_resume_state, save_weights,
                                         unwrap, write_json)
from pixelwise.engine.tasks import compute_loss, evaluate, prepare_batch, write_report
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, model_task
from pixelwise.outliers.training import outlier_model_kwargs


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise PixelwiseError("device: 'cuda' asked for but no CUDA GPU is available; use device=cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.world()[1] > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware: a CUDA GPU that supports bf16, or a CPU
    with AMX tiles or AVX512-BF16. Elsewhere bf16 autocast is emulated and runs slower than fp32 (3.3x for
    a SwiftNet-RN18 training step on an AVX-512 CPU without them; see the README's notes)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe() for probe in probes if probe is not None)


def pick_precision(name: str, device: torch.device) -> str:
    """The autocast precision of a run: `name` ('fp32', 'bf16', 'fp16'), or for 'auto' bf16 where the
    device computes it natively (native_bf16) and fp32 elsewhere. Warns when bf16 is asked for on a CPU
    that would emulate it."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type == "cpu" and not native_bf16(device):
        warnings.warn("precision: bf16 on a CPU without AMX or AVX512-BF16 is emulated and slower than fp32; "
                      "use precision: auto (bf16 only where the hardware has it) or fp32", stacklevel=2)
    return name


def lr_factor(step: int, total: int, cfg) -> float:
    """Multiplier of the base learning rate at `step` of `total` (cfg: ScheduleConfig)."""
    warm = cfg.warmup_steps if cfg.name != "onecycle" else (cfg.warmup_steps or int(0.3 * total))
    if step < warm:
        start = 1 / 25 if cfg.name == "onecycle" else 0.0
        return start + (1 - start) * (step + 1) / warm
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        return cfg.gamma ** ((step - warm) // cfg.step_size)
    t = (step - warm) / max(1, total - warm)
    return cfg.final_lr_frac + (1 - cfg.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def param_groups(model: nn.Module, cfg) -> list[dict]:
    """No weight decay on biases and norm scales; `model.backbone` (if any) at lr * backbone_lr_mult."""
    backbone = getattr(model, "backbone", None)
    in_backbone = {id(p) for p in backbone.parameters()} if isinstance(backbone, nn.Module) else set()
    groups: dict[tuple, list] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        key = (id(p) in in_backbone, p.ndim <= 1)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": cfg.lr * (cfg.backbone_lr_mult if bb else 1.0),
             "weight_decay": 0.0 if no_decay else cfg.weight_decay, "backbone": bb}
            for (bb, no_decay), ps in sorted(groups.items())]


def build_optimizer(model: nn.Module, cfg) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    # The fused kernels update all parameters in one pass: on CPU, Adam's step on ResNet-18 takes
    # 8 ms instead of 29 ms of per-tensor loops.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, fused=fused)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, fused=fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)


def seed_device(seed: int, device: torch.device) -> None:
    """Seed the CPU generator (and the CUDA one when training there). Unlike torch.manual_seed this
    queues no lazy seeding for every other accelerator backend, which costs ~1 ms per call."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


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


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None,
          progress: bool = True, datasets: tuple | None = None) -> dict:
    """Train `cfg.model` on `cfg.data`; write weights, metrics and figures to `cfg.run_dir`.

    resume: continue from run_dir/last.ckpt. stop_after: stop (as an interruption would, saving a
    checkpoint) after this many steps of this call. datasets: (train, test) datasets of your own, each
    with `.classes`, instead of those `cfg.data` names. Returns the summary also written to summary.json.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    dist.init_from_env(device)
    device = pick_device(cfg.device)
    rank, world_size = dist.world()
    lead = rank == 0
    run_dir = cfg.run_dir
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank

    train_ds, test_ds = datasets or (build_dataset(cfg.data, "train"), build_dataset(cfg.data, "test"))
    classes = list(train_ds.classes)
    task = model_task(cfg.model)
    model_kwargs = {"num_classes": len(classes), **outlier_model_kwargs(cfg.outliers, len(classes)),
                    **cfg.model_kwargs}
    model = create_model(cfg.model, **model_kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    precision = pick_precision(cfg.precision, device)
    autocast = torch.autocast(device.type, dtype=getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}.get(
        precision, "float32")), enabled=precision != "fp32")
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    optimizer = build_optimizer(model, cfg.optim)
    base_lrs = [g["lr"] for g in optimizer.param_groups]

    per_rank = len(train_ds) // world_size
    steps_per_epoch = per_rank // cfg.batch_size if per_rank >= cfg.batch_size else 1
    if per_rank == 0:
        raise PixelwiseError(f"data: {len(train_ds)} training items cannot be shared by {world_size} processes")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    step, history = 0, []
    ckpt_path = run_dir / RESUME
    if resume:
        state = load_resume_state(ckpt_path)
        if state["steps_per_epoch"] != steps_per_epoch or state["total"] != total:
            raise PixelwiseError(
                f"{ckpt_path}: was written with {state['total']} steps of {state['steps_per_epoch']} per "
                f"epoch, this config gives {total} of {steps_per_epoch}; resume with the same config")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        history = [dict(zip(state["history_keys"], row.tolist())) for row in state["history"]]

    ddp_model = model
    if world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model_config = {"model": cfg.model, "model_kwargs": model_kwargs, "classes": classes,
                    "task": task, "train_config": cfg.model_dump()}

    def checkpoint() -> None:
        if lead:
            keys = sorted({k for h in history for k in h})
            rows = torch.tensor([[float(h.get(k, float("nan"))) for k in keys] for h in history], dtype=torch.float64)
            save_resume_state(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "steps_per_epoch": steps_per_epoch, "total": total,
                "history_keys": keys, "history": rows.reshape(len(history), len(keys))})

    status, started, ran, last_eval = "finished", time.perf_counter(), 0, {}
    cpu_started, eval_seconds, eval_cpu_seconds = time.process_time(), 0.0, 0.0
    bar = tqdm(total=total, initial=step, desc=cfg.name, disable=not (progress and lead) or None, dynamic_ncols=True)
    with stop_signals() as flag:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            idx = epoch_indices(len(train_ds), cfg.seed, epoch, rank, world_size)
            if hasattr(train_ds, "set_epoch"):  # per-item augmentation draws become f(seed, epoch, index)
                train_ds.set_epoch(epoch, cfg.seed)
            batches = idx[pos * cfg.batch_size:steps_per_epoch * cfg.batch_size].split(cfg.batch_size)
            loader = DataLoader(train_ds, batch_sampler=[b.tolist() for b in batches],
                                num_workers=cfg.data.workers,
                                generator=torch.Generator().manual_seed(cfg.seed + epoch))
            ddp_model.train()
            for batch in loader:
                # Every random draw of a step (augmentation, dropout) is a function of (seed, step, rank).
                step_seed = cfg.seed * 1_000_003 + step * world_size + rank
                seed_device(step_seed, device)
                gen = torch.Generator().manual_seed(step_seed)
                x, y = prepare_batch(batch, cfg, task, device, gen)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if cfg.adversarial.method != "none":
                    from pixelwise.attacks.training import adversarial_batch
                    with autocast:  # the attack's passes run at the precision of the update's
                        x = adversarial_batch(ddp_model, x, y, cfg.adversarial,
                                              lambda out, t: compute_loss(out, t, cfg, task), gen)
                factor = lr_factor(step, total, cfg.schedule)
                frozen = step < cfg.optim.freeze_backbone_steps
                for g, base in zip(optimizer.param_groups, base_lrs):
                    g["lr"] = 0.0 if frozen and g.get("backbone") else base * factor
                with autocast:
                    loss = compute_loss(ddp_model(x), y, cfg, task).float()
                flags = dist.all_reduce_sum(torch.tensor(
                    [float(not torch.isfinite(loss)), float(flag["stop"] is not None)]))
                if flags[0] > 0:
                    raise PixelwiseError(
                        f"step {step}: the loss is not finite ({loss.item()}); training stopped. "
                        f"Lower optim.lr (now {cfg.optim.lr}) or check the data; the last good "
                        f"checkpoint is {ckpt_path if ckpt_path.exists() else 'not written yet'}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1
                ran += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
                if flags[1] > 0 or (stop_after is not None and ran >= stop_after):
                    status = f"interrupted ({flag['stop']})" if flag["stop"] else "stopped"
                    break
                if step % cfg.checkpoint_every == 0:
                    checkpoint()
                if step >= total:
                    break
            if status != "finished":
                break
            end_of_epoch = step % steps_per_epoch == 0 or step >= total
            if end_of_epoch and lead and (cfg.eval_every_epoch or step >= total):
                eval_started, eval_cpu_started = time.perf_counter(), time.process_time()
                meter = last_eval[step] = evaluate(model, test_ds, cfg, task, len(classes), device, progress)
                history.append({"epoch": math.ceil(step / steps_per_epoch), "step": step,
                                "train_loss": loss.item(), **{f"test_{k}": v for k, v in meter.summary().items()}})
                if cfg.eval_train:
                    on_train = evaluate(model, train_ds, cfg, task, len(classes), device, progress).summary()
                    history[-1].update({f"train_{k}": v for k, v in on_train.items() if k != "loss"})
                eval_seconds += time.perf_counter() - eval_started
                eval_cpu_seconds += time.process_time() - eval_cpu_started
                tqdm.write(f"epoch {history[-1]['epoch']}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in history[-1].items() if k.startswith("test_")))
            checkpoint()
    bar.close()
    checkpoint()
    summary = {"status": status, "step": step, "total_steps": total, "run_dir": str(run_dir), "precision": precision,
               "train_seconds": time.perf_counter() - started - eval_seconds,
               "eval_seconds": eval_seconds,
               # CPU time of all threads: on a busy machine, train_cpu_seconds / threads estimates idle wall time.
               "train_cpu_seconds": time.process_time() - cpu_started - eval_cpu_seconds,
               "history": history}
    if lead:
        save_weights(model, run_dir, model_config)
        if status == "finished":
            meter = last_eval.get(step) or evaluate(model, test_ds, cfg, task, len(classes), device, progress)
            summary["test"] = write_report(meter, classes, run_dir, task)
        write_json(run_dir / "summary.json", summary)
    dist.shutdown()
    return summary
