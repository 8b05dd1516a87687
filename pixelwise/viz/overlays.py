"""Colour palettes for label maps and colour overlays of predictions on images, saved as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from pixelwise.labels import IGNORE_INDEX

IGNORE_COLOUR = (0, 0, 0)
# Cityscapes' official colours of the 19 trainIds (cityscapesscripts.helpers.labels).
CITYSCAPES_PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                      (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                      (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                      (0, 80, 100), (0, 0, 230), (119, 11, 32))


def bit_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 distinct colours by Pascal VOC's bit-interleaving rule (class 0 is black)."""
    out = np.zeros((num_classes, 3), np.uint8)
    for k in range(num_classes):
        c, r, g, b = k, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        out[k] = (r, g, b)
    return out


def saturated_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8: black for class 0 (background), then matplotlib's tab20 colours without its greys,
    which vanish on grayscale images (Pascal VOC's bit palette gives class 7 a mid grey)."""
    import matplotlib
    colours = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i not in (14, 15)]
    out = bit_palette(num_classes)
    for k in range(1, min(num_classes, len(colours) + 1)):
        out[k] = np.round(np.asarray(colours[k - 1]) * 255)
    return out


def palette_for(classes: Sequence[str]) -> np.ndarray:
    """The palette of a class list: Cityscapes' colours for its 19 classes, Pascal VOC's bit palette for
    VOC, else black background and saturated colours (FashionScenes is grayscale)."""
    from pixelwise.data.segmentation import CITYSCAPES_CLASSES, VOC_CLASSES
    if tuple(classes) == CITYSCAPES_CLASSES:
        return np.asarray(CITYSCAPES_PALETTE, np.uint8)
    if tuple(classes) == tuple(VOC_CLASSES):
        return bit_palette(len(classes))
    return saturated_palette(len(classes))


def colorize(mask: torch.Tensor | np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map (H, W) int -> (H, W, 3) uint8 colours; 255 (ignore) is black."""
    mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    table = np.zeros((256, 3), np.uint8)
    table[:len(palette)] = palette
    table[IGNORE_INDEX] = IGNORE_COLOUR
    return table[np.clip(mask, 0, 255)]


def overlay(image: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray, palette: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: the image blended with the colours of `mask` (weight `alpha` on colours).

    image: (C, H, W) float in [0, 1] with C 1 or 3; mask: (H, W) labels at the image's resolution.
    """
    image = torch.as_tensor(image).detach().float().cpu()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    rgb = image.permute(1, 2, 0).clamp(0, 1).numpy() * 255
    return np.round((1 - alpha) * rgb + alpha * colorize(mask, palette)).astype(np.uint8)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path
