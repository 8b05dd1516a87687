"""pixelwise: image understanding with convolutional models."""
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["PixelwiseError", "create_model", "list_models", "__version__"]
