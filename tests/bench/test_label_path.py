"""Labels from stride-4 logits: `refine` equals full-resolution bilinear arg-max, the cheaper
approximations stay within stated bounds, and the module wraps a real segmenter."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelwise.bench.label_path import LABEL_METHODS, SegmentationLabels, labels_from_logits
from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from tests.bench.models import TinySegmenter


def _scene_logits(seed: int, classes: int = 6, h: int = 12, w: int = 20) -> torch.Tensor:
    """(2, K, h, w) logits of a scene-like layout: rectangles of one class on a background class, plus
    noise, as a trained segmenter's stride-4 output looks (confident inside, mixed at boundaries)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(2, h, w, dtype=torch.long)
    for b in range(2):
        for _ in range(4):
            y, x = torch.randint(0, h - 3, (2,), generator=g).tolist(), torch.randint(0, w - 3, (2,), generator=g).tolist()
            labels[b, y[0]:y[0] + 4, x[0]:x[0] + 5] = int(torch.randint(1, classes, (1,), generator=g))
    return 4 * F.one_hot(labels, classes).permute(0, 3, 1, 2).float() + torch.randn(2, classes, h, w, generator=g)


def _full(logits: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)


@pytest.mark.parametrize("size", [(48, 80), (50, 77), (12, 20)])  # stride 4, a non-integer ratio, none
def test_refine_equals_full_resolution_argmax(size):
    for seed in range(3):
        logits = _scene_logits(seed)
        assert torch.equal(labels_from_logits(logits, size, "refine"), _full(logits, size))
        assert torch.equal(labels_from_logits(logits, size, "full"), _full(logits, size))


def test_cheap_methods_agree_within_their_bounds():
    logits = _scene_logits(7)
    reference = _full(logits, (48, 80))
    # bf16 logits only flip near-ties: at most 1% of the pixels here
    assert (labels_from_logits(logits, (48, 80), "bf16_logits") == reference).float().mean() >= 0.99
    # stride-4 arg-max + nearest moves boundaries by up to 2 px: most pixels, not all, agree
    nearest = labels_from_logits(logits, (48, 80), "nearest")
    assert 0.85 <= (nearest == reference).float().mean() < 1.0
    # away from boundaries nearest is exact: the label of the source pixel under each output pixel
    assert torch.equal(nearest[:, 1::4, 1::4], logits.argmax(1))


def test_segmentation_labels_wrap_swiftnet_and_other_models():
    torch.manual_seed(0)
    model = create_model("swiftnet_rn18", num_classes=5).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(x).argmax(1)
        for method in ("full", "refine"):
            assert torch.equal(SegmentationLabels(model, method)(x), reference)
        tiny = TinySegmenter()  # no encode/head: its own full-resolution output is arg-maxed
        wrapped = SegmentationLabels(tiny, "nearest")
        assert torch.equal(wrapped(x), tiny(x).argmax(1)) and wrapped.method.startswith("full")
    with pytest.raises(PixelwiseError, match="bilinear2"):
        labels_from_logits(x, (8, 8), "bilinear2")
    assert set(LABEL_METHODS) == {"full", "bf16_logits", "nearest", "refine"}
