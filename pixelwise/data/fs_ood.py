"""FS-OOD (DESIGN.md): FashionScenes test scenes with 1-2 real-photo outliers pasted into each.

Test outliers are elliptical crops of scikit-image's real photos (objects never seen in training),
scaled to 24-56 px at the 128 px canvas. Training negatives, for methods that use them, come from a
different source: scikit-learn's handwritten digits or its two sample photos. All ship inside the
installed packages, so nothing is downloaded. Scene i depends only on (seed, i, size), like FashionScenes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from tqdm.auto import tqdm

from pixelwise.data.scenes import FASHION_SCENES_CLASSES, SPLITS, TEXTURE_PHOTOS, generate_scenes
from pixelwise.errors import PixelwiseError
from pixelwise.data.paste import paste_negatives

# Real photos for test outliers; none of them is an FS-Shift background texture.
OUTLIER_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "cell")
assert not set(OUTLIER_PHOTOS) & set(TEXTURE_PHOTOS)
BANK_SIZE, BANK_SIDE = 256, 64


def outlier_size(size: int) -> tuple[int, int]:
    """Side range of pasted objects on a `size` canvas: 24-56 px at 128, scaled with the canvas."""
    return max(2, round(24 * size / 128)), max(3, round(56 * size / 128))


def photo_bank(seed: int = 0, n: int = BANK_SIZE, side: int = BANK_SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """Test outliers: (n, 1, side, side) float in [0, 1] grayscale photo crops and (n, side, side) bool ellipses.

    Grayscale, as the scenes are, so that colour alone does not give an outlier away.
    """
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in OUTLIER_PHOTOS]
    crops, shapes = _photo_crops(photos, np.random.default_rng([seed, 7]), n, side)
    return crops, torch.from_numpy(shapes)


def _photo_crops(photos: list[np.ndarray], rng: np.random.Generator, n: int, side: int,
                 squares: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """n random square crops (15-50% of a photo's shorter side) of random `photos` (RGB or gray arrays),
    grayscale and resized to `side`: (n, 1, side, side) float in [0, 1], and (n, side, side) bool
    random ellipses (axes 60-100% of the side); with `squares`, every second shape is the whole crop."""
    from skimage.color import rgb2gray
    from skimage.transform import resize

    gray = [rgb2gray(im) if im.ndim == 3 else im.astype(np.float64) / 255 for im in photos]
    crops, shapes = np.zeros((n, 1, side, side), np.float32), np.zeros((n, side, side), bool)
    yy, xx = np.mgrid[:side, :side] / (side - 1) * 2 - 1
    for j in range(n):
        photo = gray[int(rng.integers(len(gray)))]
        h, w = photo.shape
        c = int(min(h, w) * rng.uniform(0.15, 0.5))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        crops[j, 0] = resize(photo[y:y + c, x:x + c], (side, side), anti_aliasing=True)
        ay, ax = rng.uniform(0.6, 1.0, size=2)
        shapes[j] = (yy / ay) ** 2 + (xx / ax) ** 2 <= 1
        if squares and j % 2:
            shapes[j] = True
    return torch.from_numpy(crops).clamp(0, 1), shapes


def sample_photo_negatives(n: int = BANK_SIZE, side: int = BANK_SIDE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Training negatives from real photos that are not the test outliers' photos: crops of
    scikit-learn's two sample images (china.jpg, flower.jpg), as (n, 1, side, side) float in [0, 1] and
    (n, side, side) bool shapes, half ellipses and half whole squares. In Bevandic et al. the negatives
    are real photos too (ImageNet), from a different source than the test outliers."""
    from sklearn.datasets import load_sample_images

    crops, shapes = _photo_crops(load_sample_images().images, np.random.default_rng([seed, 11]), n, side,
                                 squares=True)
    return crops, torch.from_numpy(shapes)


def digit_negatives(side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Training negatives: scikit-learn's 1797 handwritten digits upsampled from 8 x 8, twice:
    (2 x 1797, 1, side, side) float in [0, 1] with shapes (2 x 1797, side, side) bool that are first
    the strokes, then the whole square (digit and its dark ground, as whole negative images are
    pasted in Bevandic et al.), so that the outlier head does not learn one outline only."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from pixelwise.data.paste import object_shapes
    digits = torch.from_numpy(load_digits().images.astype(np.float32) / 16)[:, None]
    digits = F.interpolate(digits, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    squares = torch.ones(len(digits), side, side, dtype=torch.bool)
    return torch.cat([digits, digits]), torch.cat([object_shapes(digits), squares])


def load_negatives(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Training negatives by name (config key outliers.negatives)."""
    if source == "digits":
        return digit_negatives()
    if source == "photos":
        return sample_photo_negatives()
    if source == "digits+photos":
        photos, photo_shapes = sample_photo_negatives()
        digits, digit_shapes = digit_negatives(side=photos.shape[-1])
        reps = -(-len(digits) // len(photos))  # as many photo crops as digits: both drawn alike
        photos, photo_shapes = photos.repeat(reps, 1, 1, 1)[:len(digits)], photo_shapes.repeat(reps, 1, 1)[:len(digits)]
        return torch.cat([digits, photos]), torch.cat([digit_shapes, photo_shapes])
    raise PixelwiseError(f"outliers.negatives: unknown source {source!r}; known: digits, photos, digits+photos "
                         "(never scikit-image's photos: those are the test outliers)")


def generate_fs_ood(n: int = 1000, seed: int = 2, size: int = 128, root: str | Path | None = None,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8, semantic masks (N, H, W) uint8 (outlier pixels 255) and outlier masks
    (N, H, W) uint8 (1 outlier, 0 inlier) of FS-OOD, built on the FashionScenes test scenes."""
    images, masks = generate_scenes("test", n, seed, size, root=root, progress=progress)
    bank, shapes = photo_bank()
    out_images, out_masks = np.empty_like(images), np.empty_like(masks)
    outliers = np.empty_like(masks)
    lo, hi = outlier_size(size)
    for i in tqdm(range(n), desc="FS-OOD", disable=not progress or None, leave=False):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
        image = torch.from_numpy(images[i]).float().div(255)[None, None]
        im, m, t = paste_negatives(image, torch.from_numpy(masks[i]).long()[None], bank, gen, prob=1.0,
                                   count=(1, 2), size=(lo, hi), shapes=shapes)
        out_images[i] = (im[0, 0] * 255).round().byte().numpy()
        out_masks[i], outliers[i] = m[0].byte().numpy(), t[0].byte().numpy()
    return out_images, out_masks, outliers


class FSOOD(Dataset):
    """FS-OOD test scenes as (image, semantic mask, outlier mask).

    Returns tv_tensors.Image (3, H, W) float in [0, 1], tv_tensors.Mask (H, W) int64 with labels 0-10
    and 255 on outliers, and tv_tensors.Mask (H, W) int64 with 0 inlier / 1 outlier.
    """

    classes = FASHION_SCENES_CLASSES

    def __init__(self, root: str | Path | None = None, size: int = 128, n: int | None = None,
                 seed: int | None = None, progress: bool = True):
        default_n, default_seed = SPLITS["test"]
        images, masks, outliers = generate_fs_ood(n or default_n, default_seed if seed is None else seed,
                                                  size, root, progress)
        self.images, self.masks = torch.from_numpy(images), torch.from_numpy(masks)
        self.outliers = torch.from_numpy(outliers)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = tv_tensors.Image(self.images[i].float().div(255).expand(3, -1, -1).clone())
        return image, tv_tensors.Mask(self.masks[i].long()), tv_tensors.Mask(self.outliers[i].long())


def build_fs_ood(cfg, split: str, limit: int | None = None) -> Dataset:
    """data.name 'fs_ood' (cfg: DataConfig): FashionScenes for training, FS-OOD for 'val' / 'test'.

    Training scenes hold no outliers; a run that learns from negatives pastes them per batch
    (config section `outliers`). `limit` keeps the first scenes.
    """
    if split == "train":
        from pixelwise.data.segmentation import build_segmentation_dataset
        return build_segmentation_dataset(cfg.model_copy(update={"name": "fashion_scenes"}), split, limit)
    return FSOOD(cfg.root, size=cfg.canvas_size, n=limit)
