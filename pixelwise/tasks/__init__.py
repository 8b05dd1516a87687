"""Tasks as objects: one module per task, one registry (`get_task`, `list_tasks`) that knows them all,
and the runs seen through their task (train, evaluate, predict, attack)."""
from pixelwise.tasks.registry import get_task, list_tasks, register_task, resolve_task

# Importing a task's module registers it.
from pixelwise.tasks import classification, outlier_segmentation, segmentation  # noqa: F401,E402
from pixelwise.tasks import detection  # noqa: F401,E402
from pixelwise.tasks import embedding  # noqa: F401,E402
from pixelwise.tasks import forecasting  # noqa: F401,E402
from pixelwise.tasks import stereo  # noqa: F401,E402
from pixelwise.tasks.base import Task  # noqa: E402
from pixelwise.tasks.runs import (attack_run, evaluate_run, load_task_config, predict_images,  # noqa: E402
                                  run_config, task_of_run, train, with_task)
from pixelwise.engine.runs import load_run  # noqa: E402

__all__ = ["Task", "attack_run", "evaluate_run", "get_task", "list_tasks", "load_run", "load_task_config",
           "predict_images", "register_task", "resolve_task", "run_config", "task_of_run", "train", "with_task"]
