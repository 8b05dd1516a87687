"""Disparity and depth maps as files: KITTI's 16-bit PNG convention, and the channels of a pair's images.

KITTI stores a disparity map as a 16-bit grayscale PNG of round(d * 256), d in px, with 0 meaning
"no disparity": read back, d = value / 256 where value > 0. It holds 0-255.996 px in steps of 1/256.
Depth maps are written the same way in millimetres (0 = none), so 0-65.535 m.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelwise.errors import PixelwiseError

DISPARITY_SCALE = 256.0   # KITTI: stored value = disparity px * 256
MAX_UINT16 = 65535


def _save_uint16(values: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # PIL writes uint16 arrays as 16-bit grayscale PNG ("I;16"), the format KITTI's devkit reads.
    Image.fromarray(np.ascontiguousarray(values.astype(np.uint16))).save(path)
    return path


def write_disparity_png(disparity: np.ndarray, path: str | Path, valid: np.ndarray | None = None) -> Path:
    """disparity (H, W) float px -> 16-bit PNG of round(d * 256), KITTI's convention.

    Pixels outside `valid` (default: all) and non-finite ones are written as 0 ("none"); valid
    pixels are written as at least 1 (d = 1/256 px), so a valid 0 px is not read as missing, and at
    most 65535 (255.996 px)."""
    disparity = np.asarray(disparity, dtype=np.float64)
    if disparity.ndim != 2:
        raise PixelwiseError(f"{path}: a disparity map must be (H, W), got shape {disparity.shape}")
    keep = np.isfinite(disparity) & (np.ones(disparity.shape, bool) if valid is None else np.asarray(valid, bool))
    stored = np.clip(np.round(np.where(keep, disparity, 0) * DISPARITY_SCALE), 1, MAX_UINT16)
    return _save_uint16(np.where(keep, stored, 0), Path(path))


def read_disparity_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A KITTI 16-bit disparity PNG -> (disparity (H, W) float32 px, valid (H, W) bool: value > 0)."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such disparity file")
    try:
        with Image.open(path) as im:
            values = np.asarray(im).astype(np.int64)
    except Exception as e:
        raise PixelwiseError(f"{path}: unreadable disparity PNG ({type(e).__name__}: {e})") from e
    if values.ndim != 2:
        raise PixelwiseError(f"{path}: a KITTI disparity PNG is one 16-bit channel, got shape {values.shape}")
    return (values / DISPARITY_SCALE).astype(np.float32), values > 0


def depth_from_disparity(disparity: np.ndarray, focal: float, baseline: float) -> np.ndarray:
    """Z = focal * baseline / d (float32, the baseline's unit); +inf where d <= 0 (no parallax)."""
    if focal <= 0 or baseline <= 0:
        raise PixelwiseError(f"focal length ({focal} px) and baseline ({baseline}) must both be > 0")
    d = np.asarray(disparity, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(d > 0, focal * baseline / np.where(d > 0, d, 1), np.inf).astype(np.float32)


def write_depth_png(depth_m: np.ndarray, path: str | Path) -> Path:
    """depth (H, W) in metres -> 16-bit PNG in millimetres; 0 where unknown, infinite or beyond 65.535 m."""
    mm = np.round(np.asarray(depth_m, dtype=np.float64) * 1000)
    ok = np.isfinite(mm) & (mm >= 1) & (mm <= MAX_UINT16)
    return _save_uint16(np.where(ok, mm, 0), Path(path))


def image_channels(path: str | Path) -> int:
    """1 for a grayscale image file, 3 for a colour one (palette images count as colour; alpha is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            bands = [b for b in im.getbands() if b != "A"]
            return 3 if im.mode == "P" or len(bands) > 1 else 1
    except Exception as e:
        raise PixelwiseError(f"{path}: unreadable or corrupt image ({type(e).__name__}: {e})") from e
