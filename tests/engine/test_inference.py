"""Test-time augmentation of segment_logits: image scales and the left-right flip."""
import pytest
import torch
import torch.nn as nn

from pixelwise.engine.inference import segment_logits
from pixelwise.errors import PixelwiseError


class Ramp(nn.Module):
    """Two-class logits that depend only on the column: class 1 gets a * x (x = 0 .. W-1), class 0 gets 0."""

    def __init__(self, a: float = 0.7):
        super().__init__()
        self.a = a

    def forward(self, images):
        n, _, h, w = images.shape
        ramp = self.a * torch.arange(w, dtype=torch.float32).expand(n, 1, h, w)
        return torch.cat([torch.zeros_like(ramp), ramp], 1)


def test_defaults_return_the_raw_logits():
    torch.manual_seed(0)
    model, images = nn.Conv2d(3, 4, 3, padding=1).eval(), torch.rand(2, 3, 9, 12)
    torch.testing.assert_close(segment_logits(model, images, scales=[1], flip=False), model(images),
                               rtol=0, atol=0)


def test_flip_averages_the_probabilities_of_the_mirrored_pass():
    images, a = torch.rand(1, 3, 4, 6), 0.7
    out = segment_logits(Ramp(a), images, flip=True)
    x = torch.arange(6, dtype=torch.float32)
    # Hand-computed: P(class 1) at column x is the mean of sigmoid(a x) and sigmoid(a (W-1-x)).
    p1 = (torch.sigmoid(a * x) + torch.sigmoid(a * (5 - x))) / 2
    torch.testing.assert_close(out.exp()[0, 1], p1.expand(4, 6))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(1, 4, 6))
    torch.testing.assert_close(out, out.flip(-1))   # the averaged prediction is mirror-symmetric


def test_scales_see_resized_images_and_map_back_to_input_size():
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 5, 1).eval()
    # On a constant image every scale and the flip give the same probabilities as one plain pass.
    flat = torch.full((2, 3, 10, 14), 0.3)
    expected = pointwise(flat).log_softmax(1)
    for window in (None, 6):
        out = segment_logits(pointwise, flat, window, scales=(0.5, 1.0, 1.5), flip=True)
        assert out.shape == (2, 5, 10, 14)
        torch.testing.assert_close(out, expected)
    # A model that sees columns: at scale 2 the ramp is twice as steep, resized back to 6 columns.
    images = torch.rand(1, 3, 4, 6)
    two = segment_logits(Ramp(1.0), images, scales=[2.0]).exp()[0, 1, 0]
    one = segment_logits(Ramp(1.0), images, scales=[1.0, 1.0]).exp()[0, 1, 0]
    torch.testing.assert_close(one, torch.sigmoid(torch.arange(6.0)))
    assert (two[1:] > one[1:]).all() and two[0] > 0.5


@pytest.mark.parametrize("scales", [(), (1.0, 0.0), (-0.5,)])
def test_bad_scales_name_the_values(scales):
    with pytest.raises(PixelwiseError, match="scales must be positive"):
        segment_logits(Ramp(), torch.rand(1, 3, 4, 4), scales=scales)
