"""The task registry: the one place that knows every task, and which task a config means."""
from __future__ import annotations

from pixelwise.errors import PixelwiseError
from pixelwise.models import model_task

_TASKS: dict = {}


def register_task(task):
    """Register a Task instance under `task.name` (a module's last line: `register_task(MyTask())`)."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str):
    """The registered Task called `name`; the error lists the known ones."""
    if name not in _TASKS:
        raise PixelwiseError(f"unknown task {name!r}; registered tasks: {', '.join(list_tasks())}")
    return _TASKS[name]


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def resolve_task(cfg):
    """The task a TrainConfig means: `cfg.task` when set (checked against the model's kind), else the
    task of the model's kind that claims the config (`Task.accepts`; the most specific first)."""
    kind = model_task(cfg.model)
    if cfg.task is not None:
        task = get_task(cfg.task)
        if task.model_kind != kind:
            raise PixelwiseError(f"task {cfg.task!r} trains {task.model_kind} models, but model {cfg.model!r} "
                                 f"is a {kind} model; pick a model of that kind or leave `task` unset")
        return task
    candidates = sorted((t for t in _TASKS.values() if t.model_kind == kind),
                        key=lambda t: -t.priority)
    for task in candidates:
        if task.accepts(cfg):
            return task
    raise PixelwiseError(f"model {cfg.model!r} is a {kind} model, and no registered task trains those "
                         f"(tasks: {', '.join(list_tasks())})")
