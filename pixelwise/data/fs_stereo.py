"""FS-Stereo: rectified stereo pairs rendered from FashionScenes scenes (DESIGN.md, protocol FS-Stereo).

Scene i of (split, seed, size) holds the garments of FashionScenes scene i (same items, scales,
places and pasting order: the generator repeats FashionScenes' random draws), each an opaque layer
where the item exceeds 0.2 of its maximum (FashionScenes' garment mask, so the left view's labels
equal FashionScenes' masks). Garment j gets a depth Z drawn uniformly from GARMENT_DEPTH m, sorted
so that later garments are nearer; the background is a far slanted plane whose disparity is affine
in (x, y), 3-5 px at the centre (at 128 px) with slopes of up to 2.5 px across the canvas per axis,
so it stays within 0.3-8 px, below every garment's. The camera has focal length f = size px and
baseline B = BASELINE m, so d = f * B / Z spans 0.3-32 px at 128 x 128 and scales with the size.

Rendering and ground truth: pixelwise.data.stereo_render (right view: x_right = x_left - d, by linear
interpolation of each layer, composited far to near). The background texture is rendered wider than
the canvas, so the right view shows background wherever it looks past the left view's frame.

Variants, joined with '+' (e.g. 'textured+noise'): 'textured' gives garments and background
photo textures (crops of scikit-image sample photos; garments keep their shading); the FS-Shift
looks of pixelwise.data.scenes: 'texture' (photo background), 'contrast', 'noise', 'blur'. A
shift acts identically on both views (same contrast change, same blur), except that 'noise'
draws independent noise per view, as two sensors do: identical noise would be a pattern at
disparity 0 for a matcher to lock onto.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from tqdm.auto import tqdm

from pixelwise.data.fashion_mnist import load_fashion_mnist
from pixelwise.data.scenes import (_SOURCE_SPLIT, SHIFTS, SPLITS, _photo_crop, _shift_image, cached_arrays,
                                   _texture_photos, cache_dir, smooth_texture)
from pixelwise.data.stereo_render import Layer, layer_disparity, render_stereo_pair
from pixelwise.data.transforms import EpochSeededTransform, key_seed
from pixelwise.errors import PixelwiseError

VARIANTS = ("textured",) + SHIFTS
BASELINE = 0.25               # m; with f = size px, f * B = 32 px m at 128 px
GARMENT_DEPTH = (1.0, 3.5)    # m: disparities 9.1-32 px at 128 px
MAX_LAYERS = 7                # background + at most 6 garments
GENERATOR_VERSION = 1         # part of the cache key: bump when the generator's output changes
_FLAGS = ("valid", "occluded", "valid_right", "occluded_right")   # bit i of the stored flags


def camera(size: int = 128) -> tuple[float, float]:
    """(focal length f in px, baseline B in m) of FS-Stereo at `size` px: depth Z = f * B / d m."""
    return float(size), BASELINE


def parse_variant(variant: str | None) -> tuple[str, ...]:
    """The parts of a variant such as 'textured+noise', checked; () for the plain scenes."""
    if variant is None or variant in ("", "clean"):
        return ()
    parts = tuple(variant.split("+"))
    bad = [p for p in parts if p not in VARIANTS]
    if bad or len(set(parts)) != len(parts):
        raise PixelwiseError(f"FS-Stereo variant must be one or more of {', '.join(VARIANTS)} joined by "
                             f"'+' (each once), or none; got {variant!r}")
    return parts


def _scene_layers(rng: np.random.Generator, depth_rng: np.random.Generator, tex_rng: np.random.Generator,
                  items: np.ndarray, photos: list[np.ndarray], size: int, parts: tuple[str, ...],
                  ) -> tuple[list[Layer], list[int]]:
    """The layers (background first) of one scene and the `items` indices of its garments."""
    scale = size / 128
    wide = size + math.ceil(8 * scale) + 2      # the right view looks up to 8 px past the left frame
    background = smooth_texture(rng, wide)[:size] * rng.uniform(0.1, 0.6)
    if "textured" in parts or "texture" in parts:
        background = _photo_crop(tex_rng, photos, wide)[:size]
    garments, picked = [], []
    for _ in range(int(rng.integers(2, 7))):   # the draws of scenes._paste_garments, in its order
        k = int(rng.integers(len(items)))
        side = min(size, max(2, round(28 * rng.uniform(1.0, 2.0) * size / 128)))
        item = np.asarray(Image.fromarray(items[k].astype(np.float32), mode="F").resize(
            (side, side), Image.BILINEAR)).clip(0, 255)
        y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
        colour = item / 255
        if "textured" in parts:
            colour = colour * (0.4 + 0.6 * _photo_crop(tex_rng, photos, side))
        image, alpha = np.zeros((size, wide)), np.zeros((size, wide))
        image[y:y + side, x:x + side] = colour
        alpha[y:y + side, x:x + side] = item / max(float(item.max()), 1e-6) > 0.2
        garments.append((image, alpha))
        picked.append(k)
    focal, baseline = camera(size)
    depths = np.sort(depth_rng.uniform(*GARMENT_DEPTH, len(garments)))[::-1]    # far to near
    centre = depth_rng.uniform(3.0, 5.0) * scale
    bx, by = (depth_rng.uniform(-2.5, 2.5) * scale / size for _ in range(2))
    c = (size - 1) / 2
    layers = [Layer(background, np.ones_like(background), (centre - bx * c - by * c, bx, by))]
    layers += [Layer(im, al, (focal * baseline / z, 0.0, 0.0)) for (im, al), z in zip(garments, depths)]
    return layers, picked


def render_fs_stereo(split: str, n: int, seed: int, size: int = 128, variant: str | None = None,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """FS-Stereo scenes in stored form, without the cache (see `generate_fs_stereo` for the maps).

    left, right, masks (FashionScenes labels of the left view), front, front_right (index of the
    layer each pixel shows, 0 background), flags (bit i: _FLAGS[i]): (N, H, W) uint8; planes
    (N, MAX_LAYERS, 3) float64 disparity planes (a, b, c) per layer, NaN rows for absent garments.
    """
    if split not in SPLITS:
        raise PixelwiseError(f"FS-Stereo split must be one of {', '.join(SPLITS)}, got {split!r}")
    if size < 16:
        raise PixelwiseError(f"FS-Stereo canvas size must be at least 16 px, got {size}")
    parts = parse_variant(variant)
    items, labels = (t.numpy() for t in load_fashion_mnist(_SOURCE_SPLIT[split]))
    photos = _texture_photos() if {"textured", "texture"} & set(parts) else []
    out = {k: np.zeros((n, size, size), np.uint8) for k in ("left", "right", "masks", "front", "front_right", "flags")}
    out["planes"] = np.full((n, MAX_LAYERS, 3), np.nan)
    for i in tqdm(range(n), desc=f"FS-Stereo {split}", disable=not progress or None, leave=False):
        layers, picked = _scene_layers(np.random.default_rng([seed, i]), np.random.default_rng([seed, i, 100]),
                                       np.random.default_rng([seed, i, 101]), items, photos, size, parts)
        r = render_stereo_pair(layers, size)
        left, right = r.left, r.right
        for part in parts:
            if part in ("contrast", "noise", "blur"):
                shift_rng = np.random.default_rng([seed, i, 200 + VARIANTS.index(part)])
                left, right = _shift_image(shift_rng, left, part), _shift_image(shift_rng, right, part)
        out["left"][i], out["right"][i] = (np.round(v.clip(0, 1) * 255) for v in (left, right))
        out["masks"][i] = np.concatenate([[0], labels[picked] + 1])[np.clip(r.front, 0, None)]
        out["front"][i], out["front_right"][i] = np.clip(r.front, 0, None), np.clip(r.front_right, 0, None)
        out["flags"][i] = sum(getattr(r, name).astype(np.uint8) << bit for bit, name in enumerate(_FLAGS))
        out["planes"][i, :len(layers)] = [layer.disparity for layer in layers]
    return out


def load_fs_stereo(split: str, n: int, seed: int, size: int = 128, variant: str | None = None,
                   root: str | Path | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """`render_fs_stereo`, cached as .npz in `scenes.cache_dir(root)` keyed by every parameter."""
    name = f"stereo_{split}_n{n}_seed{seed}_size{size}_{variant or 'clean'}_v{GENERATOR_VERSION}.npz"
    return cached_arrays(cache_dir(root) / name, lambda: render_fs_stereo(split, n, seed, size, variant, progress))


def scene_maps(arrays: dict[str, np.ndarray], i: int, view: str = "left") -> dict[str, np.ndarray]:
    """Ground truth of scene i seen from 'left' or 'right': disparity float32 px, valid, occluded bool (H, W)."""
    right = view == "right"
    front = arrays["front_right" if right else "front"][i].astype(np.int64)
    flags = arrays["flags"][i]
    bit = 2 if right else 0
    return {"disparity": layer_disparity(arrays["planes"][i], front, right).astype(np.float32),
            "valid": (flags >> bit & 1).astype(bool), "occluded": (flags >> (bit + 1) & 1).astype(bool)}


def generate_fs_stereo(split: str, n: int, seed: int, size: int = 128, variant: str | None = None,
                       root: str | Path | None = None, progress: bool = True) -> dict:
    """FS-Stereo as arrays: left, right (N, H, W) uint8; disparity (N, 1, H, W) float32 px of the left
    view; valid, occluded (N, 1, H, W) bool; masks (N, H, W) uint8; focal (px) and baseline (m)."""
    arrays = load_fs_stereo(split, n, seed, size, variant, root, progress)
    maps = [scene_maps(arrays, i) for i in range(n)]
    focal, baseline = camera(size)
    return {"left": arrays["left"], "right": arrays["right"], "masks": arrays["masks"],
            **{k: np.stack([m[k] for m in maps])[:, None] for k in ("disparity", "valid", "occluded")},
            "focal": focal, "baseline": baseline}


class FSStereo(EpochSeededTransform, Dataset):
    """FS-Stereo (or a variant) as (left, right, target) triples.

    left, right: tv_tensors.Image (3, H, W) float in [0, 1] (grayscale replicated to 3 channels);
    target: {"disparity": (1, H, W) float32 px of the left view, "valid": (1, H, W) bool,
    "occluded": (1, H, W) bool}. `.focal` (px) and `.baseline` (m) give depth Z = focal * baseline / d.
    `n` defaults to the split's size (train 4000 seed 0, val 500 seed 1, test 1000 seed 2).
    `transform(left, right, target)` is a joint transform from pixelwise.data.stereo_transforms; it
    also sees the right view's ground truth (keys ending in '_right', removed afterwards), which
    makes flip-and-swap exact. With `set_epoch` its draws are a function of (seed, epoch, index).
    """

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, variant: str | None = None, transform=None, seed: int | None = None):
        if split not in SPLITS:
            raise PixelwiseError(f"FS-Stereo split must be one of {', '.join(SPLITS)}, got {split!r}")
        default_n, default_seed = SPLITS[split]
        self.split, self.variant, self.transform = split, variant, transform
        self.arrays = load_fs_stereo(split, n or default_n, default_seed if seed is None else seed,
                                     size, variant, root)
        self.focal, self.baseline = camera(size)

    def __len__(self) -> int:
        return len(self.arrays["left"])

    def __getitem__(self, i: int):
        left, right = (tv_tensors.Image(torch.from_numpy(self.arrays[v][i]).float().div(255).expand(3, -1, -1).clone())
                       for v in ("left", "right"))
        target = {k: torch.from_numpy(v)[None] for k, v in scene_maps(self.arrays, i).items()}
        if self.transform is None:
            return left, right, target
        target |= {f"{k}_right": torch.from_numpy(v)[None] for k, v in scene_maps(self.arrays, i, "right").items()}
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(key_seed((self.draw_seed, i)))
            left, right, target = self.transform(left, right, target)
        return left, right, {k: v for k, v in target.items() if not k.endswith("_right")}
