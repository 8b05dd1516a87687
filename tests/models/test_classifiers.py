import pytest
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model, list_models
from pixelwise.models.registry import register_model

SMALL = ["linear", "cnn", "resnet_small"]


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_backward_shapes(name, in_chans):
    model = create_model(name, num_classes=7, in_chans=in_chans, **({"mean": (0.5,) * in_chans, "std": (0.5,) * in_chans}))
    x = torch.rand(4, in_chans, 28, 28, requires_grad=True)
    out = model(x)
    assert out.shape == (4, 7)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_normalization_is_inside_the_model():
    model = create_model("linear", num_classes=2)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[0, 0] = 1.0
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 0, 0] = 0.2860 + 0.3530  # one std above the Fashion-MNIST mean
    assert model(x)[0, 0].item() == pytest.approx(1.0, abs=1e-5)


def test_registry_errors():
    assert set(SMALL) <= set(list_models("classification"))
    with pytest.raises(PixelwiseError, match="unknown model 'nope'; registered models: .*cnn"):
        create_model("nope")
    with pytest.raises(PixelwiseError, match="model 'cnn'.*unexpected keyword"):
        create_model("cnn", bogus=1)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("cnn")(lambda: None)
