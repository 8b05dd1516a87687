"""Checkpoints written atomically and read without unpickling code; final weights as safetensors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from pixelwise.errors import PixelwiseError
from pixelwise.files import atomic_write, write_json
from pixelwise.models.outputs import unwrap

WEIGHTS, CONFIG, RESUME = "model.safetensors", "config.json", "last.ckpt"


def save_resume_state(path: str | Path, state: dict) -> None:
    """State of tensors, numbers and strings only, so that it loads with weights_only=True."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_resume_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's own message may advise weights_only=False, which would run code from the file: never say it.
        raise PixelwiseError(f"{path}: unreadable checkpoint ({type(e).__name__}): cut short by a crash or not a "
                             "pixelwise checkpoint; train without --resume into a new out_dir, or restore "
                             "the file") from e
    if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
        raise PixelwiseError(f"{path}: not a pixelwise checkpoint (no model, optimizer and step); train without "
                             "--resume into a new out_dir")
    return state


@torch.no_grad()
def flush_subnormals_(tensors: Iterable[torch.Tensor]) -> int:
    """Set subnormal floats (0 < |x| < finfo(dtype).tiny) to zero, in place; returns how many there were.

    Weights and batch-norm statistics of channels that stopped learning decay towards zero and end
    up subnormal, and CPUs compute with subnormal operands many times slower: one trained SwiftNet
    ran CPU inference 4-5x slower until its 1% subnormal weights were zeroed. Zeroing them changes
    no output by more than ~1e-38 per product.
    """
    count = 0
    for t in tensors:
        if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):   # no float8 kernels
            tiny = (t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)
            count += int(tiny.sum())
            t.masked_fill_(tiny, 0)
    return count


def save_weights(model: nn.Module, run_dir: str | Path, config: dict) -> None:
    """model.safetensors and config.json (model name and kwargs, class names) in `run_dir`.

    Subnormal values are zeroed first, in the model itself too (see flush_subnormals_).
    """
    run_dir, model = Path(run_dir), unwrap(model)
    flush_subnormals_(model.state_dict().values())
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(run_dir / WEIGHTS, lambda tmp: save_file(state, tmp))
    write_json(run_dir / CONFIG, config)


def read_run(run: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The config.json and weights of a run folder (or of a .safetensors file beside its config.json)."""
    run = Path(run)
    folder = run.parent if run.suffix == ".safetensors" else run
    weights = run if run.suffix == ".safetensors" else run / WEIGHTS
    if not (folder / CONFIG).is_file():
        raise PixelwiseError(f"{folder}: not a run folder (no {CONFIG}); pass the folder `pixelwise train` wrote")
    if not weights.is_file():
        raise PixelwiseError(f"{weights}: no weights; the run may not have finished (resume it with --resume)")
    try:
        config, state = json.loads((folder / CONFIG).read_text()), load_file(str(weights))
    except Exception as e:
        raise PixelwiseError(f"{folder}: unreadable run files ({type(e).__name__}: {e})") from e
    if not isinstance(config, dict) or "model" not in config:
        raise PixelwiseError(f"{folder / CONFIG}: not the config.json of a run (no model entry); pass the folder "
                             "`pixelwise train` wrote")
    flush_subnormals_(state.values())   # files written before save_weights flushed them
    return config, state
