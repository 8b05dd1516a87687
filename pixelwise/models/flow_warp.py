"""The motion-extrapolation baseline of segmentation forecasting: dense optical flow (OpenCV's Farneback)
between two observed frames, extrapolated linearly to the future and used to warp the last segmentation."""
from __future__ import annotations

import cv2
import numpy as np
import torch

# Farneback parameters: a 3-level pyramid (halving) reaches the 3-12 px of a 3-frame step at 128 px.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def to_gray_u8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) float in [0, 1] -> (H, W) uint8 (the mean over channels)."""
    a = torch.as_tensor(image).detach().float().cpu()
    a = a.mean(0) if a.ndim == 3 else a
    return np.round(a.clamp(0, 1).numpy() * 255).astype(np.uint8)


def farneback_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense flow (H, W, 2) float32 (dx, dy) px from `prev` to `nxt`, (H, W) uint8 each:
    the content at (x, y) of prev is at (x + dx, y + dy) in nxt."""
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, **FARNEBACK)


def warp_labels(labels: np.ndarray | torch.Tensor, displacement: np.ndarray) -> np.ndarray:
    """Move a label map (H, W) by a displacement field (H, W, 2) (dx, dy) px: backward warping,
    out(p) = labels(p - displacement(p)), nearest label, edges replicated. (H, W) int64."""
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs - displacement[..., 0].astype(np.float32)
    map_y = ys - displacement[..., 1].astype(np.float32)
    # float32 labels: remap keeps them exact under nearest interpolation, whatever their range
    out = cv2.remap(labels.astype(np.float32), map_x, map_y, interpolation=cv2.INTER_NEAREST,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.int64)


def flow_warp_forecast(before: torch.Tensor, last: torch.Tensor, labels: torch.Tensor, step: int,
                       horizons: tuple[int, ...]) -> list[torch.Tensor]:
    """Segmentations of future frames by motion extrapolation, one (N, H, W) int64 per horizon.

    before, last: frames (N, C, H, W) in [0, 1], `step` frames apart (t-3 and t); labels (N, H, W): the
    segmentation of `last`. The flow from `before` to `last`, scaled by horizon / step (constant
    velocity), warps the labels forward (backward warping with the negated flow, nearest labels).
    """
    out: list[list[torch.Tensor]] = [[] for _ in horizons]
    for b, l, lab in zip(before, last, labels):
        flow = farneback_flow(to_gray_u8(b), to_gray_u8(l))
        for k, h in enumerate(horizons):
            out[k].append(torch.from_numpy(warp_labels(lab, flow * (h / step))))
    return [torch.stack(o).to(labels.device) for o in out]
