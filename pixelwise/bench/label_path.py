"""Label maps from a segmenter's stride-4 logits, cheaper than upsampling every logit to full resolution.

A segmenter's last step upsamples (N, K, h, w) logits bilinearly to the input's (N, K, H, W) and a user
then takes the arg-max: at 1024x2048 with 19 classes that is 40 M interpolated values to write and read
for 2 M labels. The methods (`LABEL_METHODS`):
- full: the reference, bilinear upsampling in fp32 (align_corners=False) then arg-max;
- bf16_logits: the same with the logits in bf16 (half the memory traffic; near-ties may flip);
- nearest: arg-max at stride 4, labels upsampled by nearest neighbour (cheapest; boundaries move by
  up to 2 px, so it is not the same function: measure its mIoU);
- refine: arg-max at stride 4, then the full bilinear arg-max only where it can differ. A bilinear
  value is a convex combination of its 4 source pixels, so where those 4 have the same arg-max k, class k
  dominates every other class in each of them and hence in the combination: the label is k. Only
  pixels whose 4 sources disagree (near class boundaries) are interpolated. Equal to `full` up to
  floating-point rounding of exact ties.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.models.outputs import logits_of

LABEL_METHODS = ("full", "bf16_logits", "nearest", "refine")


def labels_from_logits(logits: torch.Tensor, size: tuple[int, int], method: str = "refine") -> torch.Tensor:
    """Class labels (N, H, W) int64 at `size` (H, W) from logits (N, K, h, w) by `method` (see module)."""
    if method not in LABEL_METHODS:
        raise PixelwiseError(f"label method {method!r}: choose one of {', '.join(LABEL_METHODS)}")
    size = tuple(size)
    if method == "full":
        return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False).argmax(1)
    if method == "bf16_logits":
        return F.interpolate(logits.to(torch.bfloat16), size=size, mode="bilinear", align_corners=False).argmax(1)
    low = logits.argmax(1)
    if method == "nearest":
        # nearest-exact: the source pixel whose centre is closest (plain nearest shifts by half a pixel)
        return F.interpolate(low[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()
    return _refine(logits, low, size)


def _source_index(out: int, inp: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each output coordinate of a bilinear resize inp -> out (align_corners=False, as PyTorch
    computes it): the lower and upper source index and the weight of the upper one."""
    scale = inp / out
    src = ((torch.arange(out, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=inp - 1)
    hi = (lo + 1).clamp(max=inp - 1)
    return lo, hi, src - lo


def _refine(logits: torch.Tensor, low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, k, h, w = logits.shape
    y0, y1, wy = _source_index(size[0], h, logits.device)
    x0, x1, wx = _source_index(size[1], w, logits.device)
    # cells whose 4 corners (i, j), (i+1, j), (i, j+1), (i+1, j+1) (clamped at the border) disagree
    down = torch.cat([low[:, 1:], low[:, -1:]], 1)
    right = torch.cat([low[:, :, 1:], low[:, :, -1:]], 2)
    diagonal = torch.cat([right[:, 1:], right[:, -1:]], 1)
    mixed = (low != down) | (low != right) | (low != diagonal)
    rows, cols = y0[:, None], x0[None, :]  # one 2-D gather: faster than two index_selects
    labels = low[:, rows, cols]
    where = mixed[:, rows, cols].nonzero(as_tuple=True)
    if where[0].numel():
        b, yy, xx = where
        flat = logits.float().permute(0, 2, 3, 1)  # (N, h, w, K): one row of K logits per source pixel
        ty, tx = wy[yy, None], wx[xx, None]
        top = flat[b, y0[yy], x0[xx]] * (1 - tx) + flat[b, y0[yy], x1[xx]] * tx
        bottom = flat[b, y1[yy], x0[xx]] * (1 - tx) + flat[b, y1[yy], x1[xx]] * tx
        labels[b, yy, xx] = (top * (1 - ty) + bottom * ty).argmax(1)
    return labels


class SegmentationLabels(nn.Module):
    """A segmenter that returns labels (N, H, W) int64 for images (N, C, H, W) instead of logits.

    For a model with `encode` and `head` (pixelwise's EncoderDecoder segmenters: SwiftNet and its
    variants) the stride-4 logits of its head go to `labels_from_logits(method)`; any other model's
    full-resolution output is arg-maxed as it is (method is then ignored: noted in `.method`).
    """

    def __init__(self, model: nn.Module, method: str = "refine"):
        super().__init__()
        if method not in LABEL_METHODS:
            raise PixelwiseError(f"label method {method!r}: choose one of {', '.join(LABEL_METHODS)}")
        self.model = model
        self.low_resolution = hasattr(model, "encode") and hasattr(model, "head")
        self.method = method if self.low_resolution else "full (the model's own output)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.low_resolution:
            return logits_of(self.model(x)).argmax(1)
        logits = logits_of(self.model.head(self.model.encode(x)))
        return labels_from_logits(logits, x.shape[-2:], self.method)
