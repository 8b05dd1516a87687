"""How many training steps fit a time budget on this machine: the one probe every training benchmark uses.

A probe run of the recipe logs each step's wall time (its batch's loading included); the median of those
steps, after the first few that warm up, is the step's time. On a shared machine a median over one run
moves far less with other processes' load than the difference of two runs' times, which a single
slow stretch in either run throws off by tens of percent.
"""
from __future__ import annotations

import resource
import statistics
from pathlib import Path

from pixelwise.config import load_config
from pixelwise.files import read_jsonl
from pixelwise.tasks import train

PROBE_STEPS, PROBE_SKIP = 60, 5   # probe run length; its first PROBE_SKIP steps (warm-up) are not timed


def cpu_seconds() -> float:
    """CPU seconds this process has used (user + system), to report what a run costs the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def steps_within(config: Path, overrides: list[str], budget: float, probe_steps: int = PROBE_STEPS,
                 skip: int = PROBE_SKIP) -> tuple[int, float]:
    """Training steps of the recipe (config + overrides, whose out_dir the probe run writes) that fit
    `budget` seconds here, and the median seconds per step of a probe run of `probe_steps` steps."""
    if probe_steps <= skip:
        raise ValueError(f"probe_steps={probe_steps} leaves no step to time after the {skip} warm-up steps")
    cfg = load_config(config, [*overrides, f"max_steps={probe_steps}"])
    train(cfg, progress=False, overwrite=True)
    steps = [r for r in read_jsonl(cfg.run_dir / "train_log.jsonl")
             if "images_per_second" in r and r["step"] > skip]
    per_step = statistics.median(cfg.batch_size / r["images_per_second"] for r in steps)
    return max(1, int(budget / per_step)), per_step
