"""FS-OOD (DESIGN.md): FashionScenes test scenes with 1-2 real-photo outliers pasted into each.

Test outliers are elliptical crops of scikit-image's real photos (objects never seen in training),
scaled to 24-56 px at the 128 px canvas. Training negatives, for methods that use them, come from a
different source: scikit-learn's handwritten digits. Both ship inside the installed packages, so
nothing is downloaded. Scene i depends only on (seed, i, size), like FashionScenes.
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
from pixelwise.outliers.paste import paste_negatives

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
    from skimage.color import rgb2gray
    from skimage.transform import resize
    photos = []
    for name in OUTLIER_PHOTOS:
        im = getattr(skimage.data, name)()
        photos.append(rgb2gray(im) if im.ndim == 3 else im.astype(np.float64) / 255)
    rng = np.random.default_rng([seed, 7])
    crops, shapes = np.zeros((n, 1, side, side), np.float32), np.zeros((n, side, side), bool)
    yy, xx = np.mgrid[:side, :side] / (side - 1) * 2 - 1
    for j in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape
        c = int(min(h, w) * rng.uniform(0.15, 0.5))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        crops[j, 0] = resize(photo[y:y + c, x:x + c], (side, side), anti_aliasing=True)
        ay, ax = rng.uniform(0.6, 1.0, size=2)
        shapes[j] = (yy / ay) ** 2 + (xx / ax) ** 2 <= 1
    return torch.from_numpy(crops).clamp(0, 1), torch.from_numpy(shapes)


def digit_negatives(side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Training negatives: scikit-learn's 1797 handwritten digits upsampled from 8 x 8, twice:
    (2 x 1797, 1, side, side) float in [0, 1] with shapes (2 x 1797, side, side) bool that are first
    the strokes, then the whole square (digit and its dark ground, as whole negative images are
    pasted in Bevandic et al.), so that the outlier head does not learn one outline only."""
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from pixelwise.outliers.paste import object_shapes
    digits = torch.from_numpy(load_digits().images.astype(np.float32) / 16)[:, None]
    digits = F.interpolate(digits, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    squares = torch.ones(len(digits), side, side, dtype=torch.bool)
    return torch.cat([digits, digits]), torch.cat([object_shapes(digits), squares])


def load_negatives(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Training negatives by name (config key outliers.negatives)."""
    if source == "digits":
        return digit_negatives()
    raise PixelwiseError(f"outliers.negatives: unknown source {source!r}; known: digits "
                         "(test outliers are real photos, so training negatives must not be)")


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
