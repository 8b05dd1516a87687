"""CenterNet's training targets and losses (Zhou, Wang, Kraehenbuehl: "Objects as Points", 2019).

Each box becomes a peak of a per-class Gaussian on the stride-`stride` grid (its radius such that a
box whose corners move within it still overlaps the true box by `min_overlap` IoU), and, at the peak's
integer cell, a size (w, h) and a sub-cell offset to regress. The heatmap is trained with CenterNet's
penalty-reduced focal loss, size and offset with L1 at the peaks only.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F


class CenterTargets(NamedTuple):
    """heatmap (N, K, h, w) float in [0, 1], exactly 1 at each object's centre cell; for the B objects
    of the batch: image (B,) int64, cell (B,) int64 flat index y * w + x, size (B, 2) (w, h) in grid cells,
    offset (B, 2) in [0, 1): the centre's position inside its cell."""
    heatmap: torch.Tensor
    image: torch.Tensor
    cell: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's radius (in the units of height/width) within which corner shifts keep IoU >= min_overlap.

    The smallest of the three roots of CornerNet's cases (both corners inside, both outside, one of
    each), computed as CenterNet's reference code does (each root divided by 2, not by 2a: the
    radii every CenterNet recipe was tuned with).
    """
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def encode_targets(targets: Sequence[dict], num_classes: int, grid: tuple[int, int], stride: int = 4,
                   min_overlap: float = 0.7) -> CenterTargets:
    """CenterNet targets of a batch of torchvision-style target dicts.

    targets: per image "boxes" (M, 4) xyxy pixels, "labels" (M,) 1..num_classes, optional "iscrowd"
    (M,): crowd boxes (tiny remnants, ignored by COCO evaluation) get no peak. grid: (h, w) of the
    output maps. Each Gaussian has sigma = (2r + 1) / 6 and is cut to the square of radius r
    around its integer centre, r = max(0, floor(gaussian_radius)); overlapping Gaussians of one class
    take their maximum.
    """
    h, w = grid
    device = targets[0]["boxes"].device if len(targets) else torch.device("cpu")
    boxes, labels, images = [], [], []
    for i, t in enumerate(targets):
        keep = t["labels"] >= 1
        if "iscrowd" in t:
            keep &= t["iscrowd"] == 0
        boxes.append(t["boxes"].as_subclass(torch.Tensor)[keep].float().reshape(-1, 4))
        labels.append(t["labels"][keep].long())
        images.append(torch.full((int(keep.sum()),), i, dtype=torch.long, device=device))
    boxes, labels, image = torch.cat(boxes), torch.cat(labels), torch.cat(images)
    boxes = boxes / stride
    size = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    cell_xy = centre.floor().long()
    cell_xy[:, 0].clamp_(0, w - 1)
    cell_xy[:, 1].clamp_(0, h - 1)
    offset = centre - cell_xy.float()
    radius = gaussian_radius(size[:, 1].ceil(), size[:, 0].ceil(), min_overlap).floor().clamp(min=0)
    sigma = (2 * radius + 1) / 6
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    dy = ys[None, :] - cell_xy[:, 1, None].float()                     # (B, h)
    dx = xs[None, :] - cell_xy[:, 0, None].float()                     # (B, w)
    gy = torch.exp(-dy ** 2 / (2 * sigma[:, None] ** 2)) * (dy.abs() <= radius[:, None])
    gx = torch.exp(-dx ** 2 / (2 * sigma[:, None] ** 2)) * (dx.abs() <= radius[:, None])
    gaussians = (gy[:, :, None] * gx[:, None, :]).reshape(len(boxes), h * w)   # 1 at the centre exactly
    heatmap = torch.zeros(len(targets) * num_classes, h * w, device=device)
    rows = (image * num_classes + labels - 1)[:, None].expand(-1, h * w)
    heatmap.scatter_reduce_(0, rows, gaussians, "amax")
    return CenterTargets(heatmap.reshape(len(targets), num_classes, h, w), image,
                         cell_xy[:, 1] * w + cell_xy[:, 0], size, offset)


def focal_loss(logits: torch.Tensor, heatmap: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, summed and divided by the number of peaks.

    logits: (N, K, h, w) heatmap logits; heatmap: targets in [0, 1] with 1 at the peaks. Negatives near
    a peak are down-weighted by (1 - target)^beta.
    """
    logits = logits.float()
    p = torch.sigmoid(logits)
    pos = heatmap == 1
    pos_loss = F.logsigmoid(logits) * (1 - p) ** alpha
    neg_loss = F.logsigmoid(-logits) * p ** alpha * (1 - heatmap) ** beta
    return -(torch.where(pos, pos_loss, neg_loss)).sum() / pos.sum().clamp(min=1)


def at_cells(maps: torch.Tensor, image: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps read at the objects' cells -> (B, C)."""
    n, c = maps.shape[:2]
    return maps.reshape(n, c, -1)[image, :, cell]


def centernet_losses(maps, targets: CenterTargets, size_weight: float = 0.1,
                     offset_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """{"heatmap", "size", "offset"} losses of dense maps (heatmap logits, size, offset) against targets.

    Size and offset: L1 at the object cells, summed over both coordinates and divided by the number of
    objects; size in grid cells (CenterNet's weight 0.1 keeps its larger range from dominating).
    """
    n_obj = max(len(targets.cell), 1)
    size = at_cells(maps.size.float(), targets.image, targets.cell)
    offset = at_cells(maps.offset.float(), targets.image, targets.cell)
    return {"heatmap": focal_loss(maps.heatmap, targets.heatmap),
            "size": size_weight * F.l1_loss(size, targets.size, reduction="sum") / n_obj,
            "offset": offset_weight * F.l1_loss(offset, targets.offset, reduction="sum") / n_obj}
