"""Models, found through one registry: `create_model(name, **kwargs)`."""
from pixelwise.models.registry import create_model, list_models, model_task, register_model

# Importing a family's module registers its models.
from pixelwise.models import classifiers, ladder, pretrained, swiftnet, transfer  # noqa: F401,E402

__all__ = ["create_model", "list_models", "model_task", "register_model"]
