"""A folder per class of the user's own images, and the image reader every dataset uses."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from pixelwise.errors import PixelwiseError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
_ORIENTATION = 0x0112              # EXIF tag; values 5-8 turn the image by 90 or 270 degrees
_WIDE_GRAY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}   # 16-bit grayscale (Pillow opens some as 32-bit 'I')


def read_image(path: str | Path, mode: str = "RGB") -> torch.Tensor:
    """An image file as (C, H, W) float in [0, 1]; `mode` 'RGB' (C 3) or 'L' (C 1).

    The image is turned as its EXIF orientation says (as viewers show it); 16-bit grayscale is
    divided by 65535, 8-bit images by 255.
    """
    path = Path(path)
    if path.is_dir():
        raise PixelwiseError(f"{path}: is a folder, not an image file; give the image files in it")
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in _WIDE_GRAY:
                wide = torch.from_numpy(np.asarray(im).astype(np.float32) / 65535).clamp_(0, 1)[None]
                return wide.expand(3, -1, -1).contiguous() if mode == "RGB" else wide
            im = im.convert(mode)
            im.load()
    except Image.DecompressionBombError as e:
        raise PixelwiseError(f"{path}: image too large to read safely ({e})") from e
    except Exception as e:   # a decoder fails on corrupt bytes in many ways (OSError, ValueError, struct.error...)
        raise PixelwiseError(f"{path}: unreadable or corrupt image ({type(e).__name__}: {e}); "
                             "re-export or remove the file") from e
    return TF.to_dtype(TF.pil_to_tensor(im), torch.float32, scale=True)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as read_image returns it, from its header: no pixels decoded."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            w, h = im.size
            exif = im.info.get("exif")   # JPEG's APP1 or a PNG eXIf chunk before the pixel data
            turned = False
            if exif:
                tags = Image.Exif()
                tags.load(exif)
                turned = tags.get(_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception as e:
        raise PixelwiseError(f"{path}: unreadable or corrupt image ({type(e).__name__}: {e}); "
                             "re-export or remove the file") from e
    return (h, w) if turned else (w, h)


def class_folders(root: Path) -> list[str]:
    """Names of the sub-folders of `root`, sorted; hidden ones (.ipynb_checkpoints, ...) left out."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


class ImageFolder(Dataset):
    """root/CLASS_NAME/*.png: one sub-folder per class.

    Returns (image (C, size, size) float in [0, 1], class index). Images are resized to
    `size` x `size` so they batch; `channels` 1 reads grayscale, 3 RGB. `classes` (the training
    classes, in label order) maps sub-folders onto labels by name, for a test folder: it may lack
    classes, but a sub-folder that is no training class is an error. Without it the classes are the
    sub-folders sorted by name. `test_is_train` is set where a test split is the training images.
    """

    def __init__(self, root: str | Path, size: int = 224, channels: int = 3, transform=None,
                 classes: Sequence[str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise PixelwiseError(f"{self.root}: not a folder; expected one sub-folder per class")
        found = class_folders(self.root)
        if not found:
            raise PixelwiseError(f"{self.root}: has no class sub-folders")
        self.classes = list(found if classes is None else classes)
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise PixelwiseError(f"{self.root}: sub-folders {unknown} are not training classes {self.classes}; "
                                 "rename them to a training class, remove them, or add them to the training folder")
        self.samples = [(p, k) for k, c in enumerate(self.classes) if c in found
                        for p in sorted((self.root / c).iterdir())
                        if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self.samples:
            raise PixelwiseError(f"{self.root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.size, self.mode, self.transform = size, "L" if channels == 1 else "RGB", transform
        self.test_is_train = False

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        x = TF.resize(read_image(path, self.mode), [self.size, self.size], antialias=True)
        if self.transform is not None:
            x = self.transform(x)
        return x, label


def held_out(labels: Sequence[int], fraction: float, seed: int = 0) -> list[bool]:
    """Which of the items (of these labels) a test split holds out: round(fraction * n) of each class
    of n >= 2 items, at least 1 and at most n - 1; classes of one item stay in training.

    A function of the labels, `fraction` and `seed` only (not of the global RNG), so every run of one
    folder splits it alike.
    """
    labels = np.asarray(labels)
    out = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        n = len(members)
        count = min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
        chosen = np.random.default_rng([seed, int(k)]).permutation(n)[:count]
        out[members[chosen]] = True
    return out.tolist()


def build_image_folder(cfg, split: str, limit: int | None = None) -> ImageFolder:
    """The `folder` dataset of a FolderData section for split 'train' or another (a test split).

    With `cfg.val_root` the test split reads that folder, labelled by the training classes' names.
    Without it the test split holds out `cfg.val_fraction` of each class of `cfg.root` (see held_out)
    and training reads the rest; `val_fraction` 0 tests on the training images (`test_is_train`).
    `limit` keeps the first items.
    """
    if cfg.root is None:
        raise PixelwiseError("data.root: a folder dataset needs data.root (one sub-folder per class)")
    size = cfg.image_size or 224
    ds = ImageFolder(cfg.root, size=size, channels=cfg.channels)
    if split != "train" and cfg.val_root:
        ds = ImageFolder(cfg.val_root, size=size, channels=cfg.channels, classes=ds.classes)
    elif cfg.val_fraction == 0:
        ds.test_is_train = True
    else:
        test = held_out([k for _, k in ds.samples], cfg.val_fraction)
        keep = split != "train"
        ds.samples = [s for s, t in zip(ds.samples, test) if t == keep]
        if not ds.samples:
            raise PixelwiseError(f"{cfg.root}: data.val_fraction {cfg.val_fraction} holds out no image (every "
                                 "class has one); add images, give data.val_root, or set data.val_fraction: 0")
    if limit is not None:
        ds.samples = ds.samples[:limit]
    return ds
