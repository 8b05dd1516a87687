"""The one model registry: named factories with keyword arguments."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from pixelwise.errors import PixelwiseError

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_TASKS: dict[str, str] = {}

TASKS = ("classification", "segmentation")


def register_model(name: str, task: str = "classification"):
    """Decorator registering `factory(**kwargs) -> nn.Module` under `name`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES:
            raise ValueError(f"model {name!r} is registered twice")
        _FACTORIES[name] = factory
        _TASKS[name] = task
        return factory

    return wrap


def unregister_model(name: str) -> None:
    """Remove a registered model (for plugins and tests that register stand-ins for a while)."""
    _check(name)
    del _FACTORIES[name], _TASKS[name]


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one task."""
    return sorted(n for n in _FACTORIES if task is None or _TASKS[n] == task)


def model_task(name: str) -> str:
    _check(name)
    return _TASKS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. Every model takes images (N, C, H, W) float in [0, 1]."""
    _check(name)
    try:
        return _FACTORIES[name](**kwargs)
    except TypeError as e:
        raise PixelwiseError(f"model {name!r}: {e}") from e


def _check(name: str) -> None:
    if name not in _FACTORIES:
        raise PixelwiseError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        )
