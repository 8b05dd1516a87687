"""Pictures of disparity maps: a colour map, and the strip of a stereo evaluation (left view, truth,
predictions, errors)."""
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


def _array(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_disparity_strip(rows: Sequence[dict], path: str | Path, title: str = "",
                         max_error: float = 3.0) -> Path:
    """One row per example: left view, true disparity, each prediction (one colour scale) and each
    |error| (0 to `max_error` px, blank where there is no ground truth).

    rows: dicts with 'left' ((H, W) or (C, H, W) in [0, 1]), 'disparity' and 'valid' (H, W), and
    either 'pred' (H, W) or 'preds' {name: (H, W)} (e.g. the learned model and SGBM)."""
    names = list(rows[0].get("preds", {"predicted": None}))
    fig, axes = plt.subplots(len(rows), 2 + 2 * len(names), figsize=(2.5 * (2 + 2 * len(names)), 2.5 * len(rows)),
                             squeeze=False)
    for ax_row, row in zip(axes, rows):
        left, true, valid = (_array(row[k]) for k in ("left", "disparity", "valid"))
        valid = valid.astype(bool)
        preds = {k: _array(v) for k, v in row["preds"].items()} if "preds" in row else {"predicted": _array(row["pred"])}
        left = left.transpose(1, 2, 0) if left.ndim == 3 else left
        top = float(true[valid].max()) if valid.any() else max(float(p.max()) for p in preds.values())
        panels = [(left.clip(0, 1), dict(cmap="gray", vmin=0, vmax=1), "left view"),
                  (np.where(valid, true, np.nan), dict(cmap=CMAP, vmin=0, vmax=top), "true disparity")]
        panels += [(p, dict(cmap=CMAP, vmin=0, vmax=top), name) for name, p in preds.items()]
        panels += [(np.where(valid, np.abs(p - true), np.nan), dict(cmap="magma", vmin=0, vmax=max_error),
                    f"{name} |error|, 0-{max_error:g} px") for name, p in preds.items()]
        for ax, (image, style, name) in zip(ax_row, panels):
            ax.imshow(image, **style)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
