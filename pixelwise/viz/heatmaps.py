"""Heat maps of per-pixel scores (e.g. outlier probability) over the image, saved as PNG."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps


def heatmap(image: torch.Tensor, score: torch.Tensor, alpha: float = 0.6, cmap: str = "inferno",
            vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H, W, 3) uint8: the grayscale image blended with a colour map of `score`.

    image: (C, H, W) float in [0, 1]; score: (H, W) float, mapped linearly from [vmin, vmax] to the
    colour map (values outside are clipped); alpha: weight of the colours.
    """
    gray = image.detach().float().cpu().mean(0).clamp(0, 1).numpy()[..., None] * 255
    s = ((score.detach().float().cpu().numpy() - vmin) / max(vmax - vmin, 1e-12)).clip(0, 1)
    colours = colormaps[cmap](s)[..., :3] * 255
    return np.round((1 - alpha) * gray + alpha * colours).astype(np.uint8)

