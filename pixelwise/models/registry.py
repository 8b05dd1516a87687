"""The one model registry: named factories with keyword arguments, and what each model expects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from pixelwise.errors import PixelwiseError

KINDS = ("classification", "segmentation", "detection", "stereo", "embedding", "forecasting")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is and expects, so that no caller has to guess.

    kind: what it computes (a classifier's logits, a segmenter's logit maps, ...); the tasks of that
    kind can train it. input_size: (C, H, W) of a typical input (bench, export, prediction defaults).
    pretrained: whether the factory takes `pretrained=` (run folders rebuild with False and load their
    own weights). mean, std: the normalization the model applies inside, on [0, 1] images (None: none).
    """
    kind: str = "classification"
    input_size: tuple[int, int, int] = (3, 224, 224)
    pretrained: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
_INFO: dict[str, ModelInfo] = {}


def register_model(name: str, task: str = "classification", input_size: tuple[int, int, int] | None = None,
                   pretrained: bool = False, mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None):
    """Decorator registering `factory(**kwargs) -> nn.Module` under `name` with its ModelInfo.

    task: the kind of model (one of KINDS); input_size defaults to (3, 224, 224) for classifiers and
    (3, 1024, 2048), the efficiency protocol's, for dense models.
    """
    if task not in KINDS:
        raise ValueError(f"task must be one of {KINDS}, got {task!r}")
    size = input_size or ((3, 224, 224) if task == "classification" else (3, 1024, 2048))

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES:
            raise ValueError(f"model {name!r} is registered twice")
        _FACTORIES[name] = factory
        _INFO[name] = ModelInfo(task, tuple(size), pretrained, mean, std)
        return factory

    return wrap


def unregister_model(name: str) -> None:
    """Remove a registered model (for plugins and tests that register stand-ins for a while)."""
    _check(name)
    del _FACTORIES[name], _INFO[name]


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one kind."""
    return sorted(n for n in _FACTORIES if task is None or _INFO[n].kind == task)


def model_info(name: str) -> ModelInfo:
    _check(name)
    return _INFO[name]


def model_task(name: str) -> str:
    """The kind of model `name` is (classification, segmentation, ...)."""
    return model_info(name).kind


def model_factory(name: str) -> Callable[..., nn.Module]:
    _check(name)
    return _FACTORIES[name]


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
