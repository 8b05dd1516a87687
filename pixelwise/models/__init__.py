"""Models, found through one registry: `create_model(name, **kwargs)`."""
from pixelwise.models.registry import create_model, list_models, model_task, register_model
from pixelwise.models import classifiers  # noqa: F401  (registers its models)

__all__ = ["create_model", "list_models", "model_task", "register_model"]
