"""FS-Video: the tracking and forecasting sequences of DESIGN.md, generated from Fashion-MNIST.

A sequence is `frames` grayscale frames (30 x 128 x 128 by default) over one static smooth
background texture (as FashionScenes). 2 to 6 garments, scaled like FashionScenes' (1.0-2.0 at
128 px), move with a constant velocity (1-4 px/frame at 128 px) plus a Gaussian random walk
(0.3 px/frame), so that many enter or leave the canvas during the sequence. Garments are
composited far to near in a depth order that stays fixed; track ids 1..k follow that order
(1 = farthest). In a fraction CROSSING_FRACTION of the sequences the two first-drawn garments are
two copies of the same Fashion-MNIST item, at the same scale, whose paths cross near the middle of
the sequence: appearance alone cannot tell them apart, motion can.

Per frame the generator gives the image, the track-id map (0 = no garment) and, per track, the
tight box of its visible pixels (xyxy, x2 = last column + 1) and its visibility: visible pixels over
the pixels of the whole garment (truncation by the canvas border and occlusion both lower it).
A pixel shows a garment where the item's intensity exceeds 0.2 of its maximum, and the semantic
mask labels it class + 1 (0 background, 1-10 garments), exactly as FashionScenes.

Sequence i depends only on (split, seed, i, size, frames): the first n sequences of a larger set
are the same sequences. Train sequences use Fashion-MNIST's train split, test sequences its test split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pixelwise.data.fashion_mnist import load_fashion_mnist
from pixelwise.data.scenes import FASHION_SCENES_CLASSES, cache_dir, cached_arrays, smooth_texture
from pixelwise.errors import PixelwiseError

SPLITS = {"train": (600, 10), "test": (100, 12)}   # default (number of sequences, seed)
FRAMES = 30
MAX_GARMENTS = 6
CROSSING_FRACTION = 0.3
SPEED = (1.0, 4.0)      # px per frame at 128 px
JITTER = 0.3            # px per frame at 128 px, standard deviation of the random walk
SHOWN = 0.2             # a pixel shows a garment where its intensity exceeds this fraction of the peak
GENERATOR_VERSION = 1   # part of the cache key: bump when the generator's output changes
_ARRAYS = ("images", "track_ids", "boxes", "visibility", "labels")


def _trajectory(rng: np.random.Generator, frames: int, anchor: np.ndarray, t_anchor: float,
                velocity: np.ndarray, scale: float) -> np.ndarray:
    """(frames, 2) centres (x, y) in px: through `anchor` at `t_anchor` with `velocity`, plus a random walk."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    walk = np.cumsum(rng.normal(0, JITTER * scale, (frames, 2)), axis=0)
    walk -= walk[int(round(t_anchor))]   # the anchor stays exact, so the garment is on the canvas then
    return anchor + velocity * (t - t_anchor) + walk


def _direction(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _plan_garments(rng: np.random.Generator, n_items: int, size: int, frames: int) -> list[dict]:
    """Item index, side and centre track of each garment, far to near."""
    scale = size / 128
    count = int(rng.integers(2, MAX_GARMENTS + 1))
    crossing = bool(rng.random() < CROSSING_FRACTION)
    plans = []
    for j in range(count):
        speed = rng.uniform(*SPEED) * scale
        if crossing and j == 1:   # the twin of garment 0: same item and side, a path across its path
            first = plans[0]
            angle = first["angle"] + rng.uniform(np.pi / 2, np.pi) * rng.choice([-1, 1])
            plans.append(dict(item=first["item"], side=first["side"], angle=angle,
                              centres=_trajectory(rng, frames, first["anchor"], first["t_anchor"],
                                                  speed * _direction(angle), scale)))
            continue
        item = int(rng.integers(n_items))
        side = min(size, max(2, round(28 * rng.uniform(1.0, 2.0) * scale)))
        angle = rng.uniform(0, 2 * np.pi)
        if crossing and j == 0:
            anchor, t_anchor = rng.uniform(0.3, 0.7, 2) * size, float(rng.integers(frames // 3, 2 * frames // 3 + 1))
        else:
            anchor, t_anchor = rng.uniform(0, 1, 2) * size, float(rng.integers(frames))
        plans.append(dict(item=item, side=side, angle=angle, anchor=anchor, t_anchor=t_anchor,
                          centres=_trajectory(rng, frames, anchor, t_anchor, speed * _direction(angle), scale)))
    if crossing:   # the twins take random places in the depth order
        order = rng.permutation(count)
        plans = [plans[k] for k in order]
    return plans


def _render_sequence(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray, size: int,
                     frames: int) -> dict[str, np.ndarray]:
    canvas0 = smooth_texture(rng, size) * rng.uniform(0.1, 0.6)
    plans = _plan_garments(rng, len(items), size, frames)
    out = {"images": np.zeros((frames, size, size), np.uint8),
           "track_ids": np.zeros((frames, size, size), np.uint8),
           "boxes": np.zeros((frames, MAX_GARMENTS, 4), np.int16),
           "visibility": np.zeros((frames, MAX_GARMENTS), np.float32),
           "labels": np.zeros(MAX_GARMENTS, np.uint8)}
    sprites = []
    for j, plan in enumerate(plans):
        side = plan["side"]
        item = np.asarray(Image.fromarray(items[plan["item"]].astype(np.float32), mode="F").resize(
            (side, side), Image.BILINEAR)).clip(0, 255)
        alpha = item / max(float(item.max()), 1e-6)
        sprites.append((item / 255, alpha, alpha > SHOWN))
        out["labels"][j] = labels[plan["item"]] + 1
    for t in range(frames):
        canvas, ids = canvas0.copy(), out["track_ids"][t]
        for j, (plan, (value, alpha, shown)) in enumerate(zip(plans, sprites)):
            side = plan["side"]
            x0, y0 = (int(round(c - side / 2)) for c in plan["centres"][t])
            # The part of the sprite that falls on the canvas: canvas [cy0:cy1, cx0:cx1] <- sprite [sy0:, sx0:].
            cy0, cy1, cx0, cx1 = max(y0, 0), min(y0 + side, size), max(x0, 0), min(x0 + side, size)
            if cy0 >= cy1 or cx0 >= cx1:
                continue
            sy, sx = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)
            region = canvas[cy0:cy1, cx0:cx1]
            region[:] = alpha[sy, sx] * value[sy, sx] + (1 - alpha[sy, sx]) * region
            ids[cy0:cy1, cx0:cx1][shown[sy, sx]] = j + 1
        out["images"][t] = np.round(canvas.clip(0, 1) * 255).astype(np.uint8)
        for j, (_, _, shown) in enumerate(sprites):
            rows, cols = np.nonzero(ids == j + 1)
            if len(rows):
                out["boxes"][t, j] = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
                out["visibility"][t, j] = len(rows) / max(int(shown.sum()), 1)
    return out


def render_videos(split: str, n: int, seed: int, size: int = 128, frames: int = FRAMES,
                  progress: bool = False) -> dict[str, np.ndarray]:
    """Generate sequences without the cache; see `generate_videos`."""
    if split not in SPLITS:
        raise PixelwiseError(f"FS-Video split must be one of {', '.join(SPLITS)}, got {split!r}")
    if size < 16:
        raise PixelwiseError(f"FS-Video canvas size must be at least 16 px, got {size}")
    if frames < 2:
        raise PixelwiseError(f"FS-Video sequences need at least 2 frames, got frames={frames}")
    if n < 1:
        raise PixelwiseError(f"FS-Video needs at least one sequence, got n={n}")
    items, labels = (t.numpy() for t in load_fashion_mnist(split))
    sequences = [_render_sequence(np.random.default_rng([seed, i]), items, labels, size, frames)
                 for i in tqdm(range(n), desc=f"FS-Video {split}", disable=not progress or None, leave=False)]
    return {k: np.stack([s[k] for s in sequences]) for k in _ARRAYS}


def generate_videos(split: str, n: int, seed: int, size: int = 128, frames: int = FRAMES,
                    root: str | Path | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """FS-Video sequences as arrays, cached as .npz in `cache_dir(root)` keyed by every parameter.

    images (N, T, H, W) uint8; track_ids (N, T, H, W) uint8 (0 none, 1..k in depth order, far
    first); boxes (N, T, 6, 4) int16 xyxy px of each track's visible pixels (zero where it is not
    visible); visibility (N, T, 6) float32 in [0, 1]; labels (N, 6) uint8, class + 1 of each track
    (0 for the unused slots of sequences with fewer than 6 garments). Track id j is slot j - 1.
    """
    name = f"fs_video_{split}_n{n}_seed{seed}_size{size}_t{frames}_v{GENERATOR_VERSION}.npz"
    return cached_arrays(cache_dir(root) / name, lambda: render_videos(split, n, seed, size, frames, progress),
                         _ARRAYS)


def frame_targets(sequence: dict[str, torch.Tensor], t: int) -> dict[str, torch.Tensor]:
    """The tracks visible in frame `t` of an FSVideo item, torchvision-style.

    boxes (M, 4) float32 xyxy px, labels (M,) int64 1-10, ids (M,) int64, visibility (M,) float32.
    """
    frames = sequence["images"].shape[0]
    if not 0 <= t < frames:
        raise PixelwiseError(f"frame index must be in 0..{frames - 1}, got t={t}")
    keep = sequence["visibility"][t] > 0
    return {"boxes": sequence["boxes"][t][keep], "labels": sequence["labels"][keep],
            "ids": sequence["ids"][keep], "visibility": sequence["visibility"][t][keep]}


class FSVideo(Dataset):
    """FS-Video sequences; an item is one sequence as a dict of tensors (T frames, K = 6 track slots).

    images (T, 3, H, W) float in [0, 1] (grayscale replicated to 3 channels); masks (T, H, W) int64,
    0 background, class + 1 for garments (FashionScenes' labels); track_ids (T, H, W) int64, 0 none,
    ids 1..; boxes (T, K, 4) float32 xyxy px of each track's visible pixels, x2 = last column + 1
    (zero where not visible); visibility (T, K) float32 visible / full garment pixels; labels (K,)
    int64 class + 1 (0 for unused slots); ids (K,) int64 = 1..K. `frame_targets` gives one frame's
    visible tracks. `n` defaults to the split's size (train 600, test 100); smaller n gives the
    first n sequences.
    """

    classes = FASHION_SCENES_CLASSES

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, frames: int = FRAMES, seed: int | None = None):
        if split not in SPLITS:
            raise PixelwiseError(f"FS-Video split must be one of {', '.join(SPLITS)}, got {split!r}")
        default_n, default_seed = SPLITS[split]
        self.split = split
        self.arrays = generate_videos(split, n or default_n, default_seed if seed is None else seed,
                                      size, frames, root)

    def __len__(self) -> int:
        return len(self.arrays["images"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a = {k: torch.from_numpy(np.asarray(v[i])) for k, v in self.arrays.items()}
        labels = a["labels"].long()
        track_ids = a["track_ids"].long()
        lut = torch.cat([torch.zeros(1, dtype=torch.long), labels])   # track id -> class + 1
        return {"images": a["images"].float().div(255).unsqueeze(1).expand(-1, 3, -1, -1).clone(),
                "masks": lut[track_ids], "track_ids": track_ids, "boxes": a["boxes"].float(),
                "visibility": a["visibility"].float(), "labels": labels,
                "ids": torch.arange(1, MAX_GARMENTS + 1)}
