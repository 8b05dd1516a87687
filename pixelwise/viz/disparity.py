"""Pictures of disparity maps: a colour map, and the strip of a stereo evaluation (left view, truth,
prediction, error)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps

from pixelwise.viz.figures import plt, save_figure

CMAP = "turbo"   # near = red, far = blue; perceptually ordered enough for disparity


def colorize_disparity(disparity: torch.Tensor | np.ndarray, vmax: float | None = None,
                       cmap: str = CMAP) -> np.ndarray:
    """(H, W) disparity px -> (H, W, 3) uint8 colours, 0 px to `vmax` (default the map's maximum)."""
    d = disparity.detach().float().cpu().numpy() if isinstance(disparity, torch.Tensor) else np.asarray(disparity)
    top = float(np.nanmax(d)) if vmax is None and d.size else (vmax or 1.0)
    scaled = np.nan_to_num(d / max(top, 1e-6), nan=0.0).clip(0, 1)
    return np.round(colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)


def plot_disparity_strip(rows: Sequence[dict], path: str | Path, title: str = "",
                         max_error: float = 3.0) -> Path:
    """One row per example: left view, true disparity, predicted disparity (same colour scale) and
    |error| (0 to `max_error` px, blank where there is no ground truth). rows: dicts of (H, W) tensors
    or arrays 'left' (gray or (3, H, W) in [0, 1]), 'disparity', 'pred', 'valid'."""
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.5 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        left, true, pred, valid = (np.asarray(row[k].detach().cpu() if isinstance(row[k], torch.Tensor) else row[k])
                                   for k in ("left", "disparity", "pred", "valid"))
        left = left.transpose(1, 2, 0) if left.ndim == 3 else left
        top = float(true[valid].max()) if valid.any() else float(pred.max())
        error = np.where(valid, np.abs(pred - true), np.nan)
        panels = [(left.clip(0, 1), dict(cmap="gray", vmin=0, vmax=1), "left view"),
                  (np.where(valid, true, np.nan), dict(cmap=CMAP, vmin=0, vmax=top), "true disparity"),
                  (pred, dict(cmap=CMAP, vmin=0, vmax=top), "predicted"),
                  (error, dict(cmap="magma", vmin=0, vmax=max_error), f"|error| (0-{max_error:g} px)")]
        for ax, (image, style, name) in zip(ax_row, panels):
            ax.imshow(image, **style)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
