"""Models, found through one registry: `create_model(name, **kwargs)`."""
from pixelwise.models.registry import (ModelInfo, create_model, list_models, model_factory, model_info,
                                       model_task, register_model)

# Importing a family's module registers its models.
from pixelwise.models import classifiers, ladder, pretrained, swiftnet, transfer  # noqa: F401,E402
from pixelwise.models import centernet, embedding, fcos, forecast, stereo  # noqa: F401,E402

__all__ = ["ModelInfo", "create_model", "list_models", "model_factory", "model_info", "model_task",
           "register_model"]
