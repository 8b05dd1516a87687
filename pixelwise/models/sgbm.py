"""OpenCV's semi-global block matching (Hirschmueller 2008) as a stereo model: the FS-Stereo baseline.

`StereoSGBM()(left, right)` takes (N, C, H, W) float in [0, 1] (C = 1 or 3) and returns disparity
(N, 1, H, W) float32 px of the left view, dense: pixels SGBM leaves unmatched are filled by the
KITTI devkit's background interpolation (each gap in a row takes the smaller, i.e. farther, of
the disparities at its two ends; gaps at a row's end take their one neighbour; rows without any
match are then filled the same way along columns; an image without any match is 0).
`predict_with_validity` also returns which pixels SGBM matched itself and their share ('density').

OpenCV cannot match the leftmost min_disparity + num_disparities columns (it marks them invalid),
so both views are first padded on the left by that many replicated columns and the padding is cut
off afterwards: every left pixel whose match lies inside the right view can then be found.
Needs opencv-python-headless (import cv2); it has no trainable parameters and runs on the CPU.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from pixelwise.errors import PixelwiseError

MODES = ("sgbm", "hh", "sgbm_3way", "hh4")   # OpenCV: 5 directions, 8 (full DP), 5 (faster), 4 directions


class SGBMResult(NamedTuple):
    """disparity (N, 1, H, W) float32 px, holes filled; valid (N, 1, H, W) bool, the pixels SGBM matched;
    density: the fraction of pixels SGBM matched."""

    disparity: torch.Tensor
    valid: torch.Tensor
    density: float


def _fill_rows(values: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill each row's unknown pixels with the smaller of the nearest known values on either side
    (the one there is at a row's ends); returns the values and the mask of pixels now known."""
    width = values.shape[1]
    cols = np.arange(width)
    prev = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(known, cols, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(values.shape[0])[:, None]
    before = np.where(prev >= 0, values[rows, prev.clip(0)], np.inf)
    after = np.where(nxt < width, values[rows, nxt.clip(max=width - 1)], np.inf)
    filled = np.where(known, values, np.minimum(before, after))
    return filled, np.isfinite(filled)


def fill_background(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """KITTI's background interpolation of the invalid pixels of one (H, W) disparity map (float32)."""
    out, known = _fill_rows(disparity.astype(np.float32), valid)
    if known.any() and not known.all():   # rows without any match: fill them along the columns
        out, known = (a.T for a in _fill_rows(out.T, known.T))
    return np.where(known, out, 0).astype(np.float32)


class StereoSGBM(nn.Module):
    """cv2.StereoSGBM with documented defaults, as a model: forward(left, right) -> disparity (N, 1, H, W) px.

    num_disparities: search range in px, a multiple of 16 (OpenCV's rule); FS-Stereo's 0-32 px at
    128 px fit in 48. block_size: odd matching window side, px. min_disparity: smallest disparity
    searched. P1, P2: smoothness penalties for disparity changes of 1 px and of more; default
    8 * C * block_size^2 and 32 * C * block_size^2 for C image channels (OpenCV's recommendation).
    uniqueness_ratio: percent by which the best cost must beat the second best. speckle_window_size,
    speckle_range: connected regions smaller than this many pixels whose disparity varies by more
    than speckle_range px are removed (0 disables). disp12_max_diff: left-right consistency limit in
    px (-1 disables). pre_filter_cap: clip of the x-derivative prefilter. mode: one of MODES.
    """

    def __init__(self, num_disparities: int = 48, block_size: int = 5, min_disparity: int = 0,
                 p1: int | None = None, p2: int | None = None, uniqueness_ratio: int = 10,
                 speckle_window_size: int = 100, speckle_range: int = 2, disp12_max_diff: int = 1,
                 pre_filter_cap: int = 63, mode: str = "sgbm"):
        super().__init__()
        if num_disparities <= 0 or num_disparities % 16:
            raise PixelwiseError(f"StereoSGBM: num_disparities must be a positive multiple of 16, got "
                                 f"{num_disparities}; use {max(16, -(-num_disparities // 16) * 16)}")
        if block_size < 1 or block_size % 2 == 0:
            raise PixelwiseError(f"StereoSGBM: block_size must be odd and >= 1, got {block_size}; "
                                 "use an odd size such as 5")
        if mode not in MODES:
            raise PixelwiseError(f"StereoSGBM: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.num_disparities, self.block_size, self.min_disparity = num_disparities, block_size, min_disparity
        self.p1, self.p2, self.mode = p1, p2, mode
        self.uniqueness_ratio, self.disp12_max_diff = uniqueness_ratio, disp12_max_diff
        self.pre_filter_cap = pre_filter_cap
        self.speckle_window_size, self.speckle_range = speckle_window_size, speckle_range

    def matcher(self, channels: int):
        """The cv2.StereoSGBM object for images of `channels` channels."""
        import cv2
        area = channels * self.block_size ** 2
        modes = {"sgbm": cv2.STEREO_SGBM_MODE_SGBM, "hh": cv2.STEREO_SGBM_MODE_HH,
                 "sgbm_3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY, "hh4": cv2.STEREO_SGBM_MODE_HH4}
        return cv2.StereoSGBM_create(
            minDisparity=self.min_disparity, numDisparities=self.num_disparities, blockSize=self.block_size,
            P1=8 * area if self.p1 is None else self.p1, P2=32 * area if self.p2 is None else self.p2,
            disp12MaxDiff=self.disp12_max_diff, preFilterCap=self.pre_filter_cap,
            uniquenessRatio=self.uniqueness_ratio, speckleWindowSize=self.speckle_window_size,
            speckleRange=self.speckle_range, mode=modes[self.mode])

    def predict_with_validity(self, left: torch.Tensor, right: torch.Tensor) -> SGBMResult:
        """Disparity with holes filled, SGBM's own validity mask and its density; see SGBMResult."""
        import cv2
        if left.shape != right.shape or left.ndim != 4 or left.shape[1] not in (1, 3):
            raise PixelwiseError(f"StereoSGBM: left {tuple(left.shape)} and right {tuple(right.shape)} must be "
                                 "equal (N, C, H, W) with C = 1 or 3; pass one rectified pair per item")
        pad = self.min_disparity + self.num_disparities
        channels = left.shape[1]
        matcher = self.matcher(channels)

        def to_cv(t: torch.Tensor) -> np.ndarray:
            image = (t.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            return cv2.copyMakeBorder(np.ascontiguousarray(image), 0, 0, pad, 0, cv2.BORDER_REPLICATE)

        disparities, valids = [], []
        for l_img, r_img in zip(left, right):
            raw = matcher.compute(to_cv(l_img), to_cv(r_img))[:, pad:]
            valid = raw > 16 * (self.min_disparity - 1)   # OpenCV writes (min_disparity - 1) * 16 where unmatched
            disparities.append(fill_background(raw.astype(np.float32) / 16, valid))
            valids.append(valid)
        disparity = torch.from_numpy(np.stack(disparities))[:, None].to(left.device)
        valid = torch.from_numpy(np.stack(valids))[:, None].to(left.device)
        return SGBMResult(disparity, valid, float(valid.float().mean()) if valid.numel() else float("nan"))

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """left, right: (N, C, H, W) float in [0, 1] -> disparity (N, 1, H, W) float32 px, dense."""
        return self.predict_with_validity(left, right).disparity
