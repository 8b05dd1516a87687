"""FashionScenes and FS-Shift: the dense benchmark of DESIGN.md, generated from Fashion-MNIST.

A scene is a grayscale canvas (128 x 128 by default) with a smooth random background texture of
random brightness (label 0) and 2 to 6 Fashion-MNIST garments pasted fully inside it, later ones
occluding earlier ones. A garment pixel is labelled class + 1 where the item's intensity exceeds
0.2 of its maximum. Train scenes use Fashion-MNIST's train split only, val and test scenes its
test split only. Scene i depends only on (split, seed, i, size), so the first n scenes of a larger
set are the same scenes, and generation is deterministic across machines.

Garments are scaled by a factor in [1.0, 2.0] at the default 128 canvas; other canvas sizes scale
the factor by size / 128, so that a 32 x 32 scene is the 128 x 128 scene at a quarter of the
resolution (and garments fit on small canvases).

FS-Shift keeps the garments of every scene and changes its look: 'texture' replaces the background
with crops of real photos (scikit-image's sample data), 'contrast' halves the contrast, 'noise'
adds Gaussian noise (sigma 0.1), 'blur' applies a Gaussian blur (sigma 1.5 px at 128 px).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from tqdm.auto import tqdm

from pixelwise.data.fashion_mnist import CLASSES as FMNIST_CLASSES
from pixelwise.data.fashion_mnist import load_fashion_mnist
from pixelwise.data.transforms import EpochSeededTransform
from pixelwise.errors import PixelwiseError

FASHION_SCENES_CLASSES = ("background",) + FMNIST_CLASSES
SPLITS = {"train": (4000, 0), "val": (500, 1), "test": (1000, 2)}   # default (size, seed)
SHIFTS = ("texture", "contrast", "noise", "blur")
# Photos whose crops make the FS-Shift 'texture' backgrounds (all ship inside scikit-image).
TEXTURE_PHOTOS = ("brick", "grass", "gravel", "moon", "camera", "coins", "clock")
GENERATOR_VERSION = 1   # part of the cache key: bump when the generator's output changes
_SOURCE_SPLIT = {"train": "train", "val": "test", "test": "test"}


def cache_dir(root: str | Path | None = None) -> Path:
    """Where generated scenes are cached: `root`, $PIXELWISE_DATA/fashion_scenes or ~/.cache/pixelwise."""
    if root is not None:
        return Path(root)
    env = os.environ.get("PIXELWISE_DATA")
    return Path(env) / "fashion_scenes" if env else Path.home() / ".cache" / "pixelwise" / "fashion_scenes"


def smooth_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 in [0, 1]: coarse uniform noise (4-16 cells a side) upsampled bicubically."""
    cells = int(rng.integers(4, 17))
    coarse = rng.random((cells, cells), dtype=np.float32)
    fine = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.BICUBIC))
    lo, hi = fine.min(), fine.max()
    return (fine - lo) / max(hi - lo, 1e-6)


def _paste_garments(rng: np.random.Generator, canvas: np.ndarray, items: np.ndarray, labels: np.ndarray,
                    instances: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
    """Alpha-composite 2-6 random garments onto `canvas` (float in [0, 1], changed in place).

    Returns the mask and the indices into `items` of the garments in pasting order; `instances`, when
    given, receives at every pixel 1 + the pasting order of the garment that it shows (0 background)."""
    size = canvas.shape[0]
    mask = np.zeros((size, size), np.uint8)
    picked = []
    for j in range(int(rng.integers(2, 7))):
        k = int(rng.integers(len(items)))
        side = min(size, max(2, round(28 * rng.uniform(1.0, 2.0) * size / 128)))
        item = np.asarray(Image.fromarray(items[k].astype(np.float32), mode="F").resize(
            (side, side), Image.BILINEAR)).clip(0, 255)
        y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
        peak = max(float(item.max()), 1e-6)
        alpha = item / peak                # the item's own intensity, relative to its maximum
        region = canvas[y:y + side, x:x + side]
        region[:] = alpha * (item / 255) + (1 - alpha) * region
        shown = alpha > 0.2
        mask[y:y + side, x:x + side][shown] = labels[k] + 1
        if instances is not None:
            instances[y:y + side, x:x + side][shown] = j + 1
        picked.append(k)
    return mask, picked


def _texture_photos() -> list[np.ndarray]:
    import skimage.data
    from skimage.color import rgb2gray
    photos = []
    for name in TEXTURE_PHOTOS:
        im = getattr(skimage.data, name)()
        im = rgb2gray(im) if im.ndim == 3 else im.astype(np.float32) / 255
        photos.append(np.asarray(im, np.float32))
    return photos


def _photo_crop(rng: np.random.Generator, photos: list[np.ndarray], size: int) -> np.ndarray:
    """A random (size, size) crop of a random photo, after a random rescale of its shorter side to 1-2x size."""
    photo = photos[int(rng.integers(len(photos)))]
    short = int(size * rng.uniform(1.0, 2.0))
    h, w = photo.shape
    nh, nw = max(size, round(h * short / min(h, w))), max(size, round(w * short / min(h, w)))
    photo = np.asarray(Image.fromarray(photo, mode="F").resize((nw, nh), Image.BILINEAR))
    y, x = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
    return photo[y:y + size, x:x + size].clip(0, 1)


def _shift_image(rng: np.random.Generator, image: np.ndarray, shift: str) -> np.ndarray:
    """The look-changing FS-Shift variants on a finished scene (float in [0, 1])."""
    if shift == "contrast":
        return 0.5 + 0.5 * (image - 0.5)
    if shift == "noise":
        return (image + rng.normal(0, 0.1, image.shape)).clip(0, 1)
    if shift == "blur":
        from skimage.filters import gaussian
        return gaussian(image, sigma=1.5 * image.shape[0] / 128, preserve_range=True)
    return image


def render_scenes(split: str, n: int, seed: int, size: int = 128, shift: str | None = None,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Generate scenes without the cache; see `generate_scenes`."""
    images, masks, _, _ = _render(split, n, seed, size, shift, progress)
    return images, masks


def scene_instances(split: str, n: int, seed: int, size: int = 128) -> tuple[np.ndarray, list[list[int]]]:
    """The garment instances of the scenes `generate_scenes(split, n, seed, size)` returns.

    Instance maps (N, H, W) uint8: at each pixel 1 + the pasting order of the garment it is labelled
    with (0 background), and per scene the Fashion-MNIST indices (in the split the scenes draw from:
    train for 'train', test for 'val' and 'test') of its garments in pasting order. Not cached.
    """
    _, _, instances, picked = _render(split, n, seed, size, None, False, with_instances=True)
    return instances, picked


def _render(split: str, n: int, seed: int, size: int, shift: str | None, progress: bool,
            with_instances: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[list[int]]]:
    if split not in SPLITS:
        raise PixelwiseError(f"FashionScenes split must be one of {', '.join(SPLITS)}, got {split!r}")
    if shift is not None and shift not in SHIFTS:
        raise PixelwiseError(f"FS-Shift variant must be one of {', '.join(SHIFTS)} (or none), got {shift!r}")
    if size < 16:
        raise PixelwiseError(f"FashionScenes canvas size must be at least 16 px, got {size}")
    items, labels = (t.numpy() for t in load_fashion_mnist(_SOURCE_SPLIT[split]))
    photos = _texture_photos() if shift == "texture" else []
    images, masks = np.zeros((n, size, size), np.uint8), np.zeros((n, size, size), np.uint8)
    instances = np.zeros((n, size, size), np.uint8) if with_instances else None
    picked = []
    for i in tqdm(range(n), desc=f"FashionScenes {split}", disable=not progress or None, leave=False):
        # One generator per scene for garments, a separate one for the shift, so that shifted
        # scenes hold exactly the garments of the clean ones.
        rng = np.random.default_rng([seed, i])
        canvas = smooth_texture(rng, size) * rng.uniform(0.1, 0.6)
        shift_rng = np.random.default_rng([seed, i, 1 + (SHIFTS.index(shift) if shift else 0)])
        if shift == "texture":
            canvas = _photo_crop(shift_rng, photos, size)
        masks[i], garments = _paste_garments(rng, canvas, items, labels,
                                             None if instances is None else instances[i])
        picked.append(garments)
        if shift is not None:
            canvas = _shift_image(shift_rng, canvas, shift)
        images[i] = np.round(canvas.clip(0, 1) * 255).astype(np.uint8)
    return images, masks, instances, picked


def cached_arrays(path: Path, render: Callable[[], dict[str, np.ndarray]],
                  keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the .npz cache file `path` (those named in `keys`, default all), else `render()`'s,
    written there atomically: parallel runs never read half a file. A damaged cache file is rendered
    again; a cache folder that cannot be written only costs rendering again next time."""
    if path.is_file():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in (keys or f.files)}
        except (OSError, ValueError, KeyError):
            pass
    arrays = render()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays


def generate_scenes(split: str, n: int, seed: int, size: int = 128, shift: str | None = None,
                    root: str | Path | None = None, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and masks (N, H, W) uint8 (0 background, 1-10 garments) of FashionScenes.

    split: 'train' (garments from Fashion-MNIST train) or 'val'/'test' (from its test split);
    n scenes from `seed` on a `size` x `size` canvas; `shift` one of SHIFTS for FS-Shift. Cached as
    .npz in `cache_dir(root)`, keyed by every generation parameter.
    """
    name = f"{split}_n{n}_seed{seed}_size{size}_{shift or 'clean'}_v{GENERATOR_VERSION}.npz"
    arrays = cached_arrays(cache_dir(root) / name, lambda: dict(zip(
        ("images", "masks"), render_scenes(split, n, seed, size, shift, progress))), ("images", "masks"))
    return arrays["images"], arrays["masks"]


class FashionScenes(EpochSeededTransform, Dataset):
    """FashionScenes (or an FS-Shift variant) as (image, mask) pairs.

    Returns tv_tensors.Image (3, H, W) float in [0, 1] (the grayscale scene replicated to 3
    channels, as ImageNet backbones expect) and tv_tensors.Mask (H, W) int64 with labels 0-10.
    `n` defaults to the split's size (train 4000, val 500, test 1000); smaller n gives the first n
    scenes. `transform(image, mask)` is a joint transform (pixelwise.data.transforms); with
    `set_epoch` its random draws are a function of (seed, epoch, index), so runs resume exactly.
    """

    classes = FASHION_SCENES_CLASSES

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, shift: str | None = None, transform=None, seed: int | None = None):
        if split not in SPLITS:
            raise PixelwiseError(f"FashionScenes split must be one of {', '.join(SPLITS)}, got {split!r}")
        default_n, default_seed = SPLITS[split]
        self.split, self.shift, self.transform = split, shift, transform
        images, masks = generate_scenes(split, n or default_n, default_seed if seed is None else seed,
                                        size, shift, root)
        self.images, self.masks = torch.from_numpy(images), torch.from_numpy(masks)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = tv_tensors.Image(self.images[i].float().div(255).expand(3, -1, -1).clone())
        mask = tv_tensors.Mask(self.masks[i].long())
        return self.apply_transform(image, mask, i)
