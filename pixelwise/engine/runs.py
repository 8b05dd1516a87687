"""Run folders read back: the model rebuilt from config.json and its own weights, nothing else."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from pixelwise.engine.checkpoint import read_run
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, model_info


def standalone_kwargs(model: str, kwargs: dict) -> dict:
    """The factory kwargs of a run with its starting weights switched off (pretrained=False).

    A run folder must not depend on the weight file it started from: model.safetensors holds every
    weight, so rebuilding with `pretrained` pointing at a file that has since moved would fail for
    nothing, and loading the shipped ImageNet weights first would be wasted work.
    """
    return {**kwargs, "pretrained": False} if model_info(model).pretrained else dict(kwargs)


def load_run(run: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a run folder in eval mode on `device`, and its config.json."""
    config, weights = read_run(run)
    model = create_model(config["model"], **standalone_kwargs(config["model"], config.get("model_kwargs", {})))
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:   # shapes that differ: name the first such weight
        lines = [line.strip() for line in str(e).splitlines() if "size mismatch" in line]
        raise PixelwiseError(f"{run}: weights do not fit model {config['model']!r} as config.json builds it: "
                             f"{lines[0] if lines else str(e).splitlines()[0]}") from None
    if missing or unexpected:
        raise PixelwiseError(f"{run}: weights do not fit model {config['model']!r}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval(), config
