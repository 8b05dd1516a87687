"""A folder per class of the user's own images."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from pixelwise.errors import PixelwiseError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_image(path: str | Path, mode: str = "RGB") -> torch.Tensor:
    """An image file as (C, H, W) float in [0, 1]; `mode` 'RGB' or 'L'."""
    path = Path(path)
    if path.is_dir():
        raise PixelwiseError(f"{path}: is a folder, not an image file; give the image files in it")
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise PixelwiseError(f"{path}: unreadable or corrupt image ({e})") from e
    return TF.to_dtype(TF.pil_to_tensor(im), torch.float32, scale=True)


class ImageFolder(Dataset):
    """root/CLASS_NAME/*.png: one sub-folder per class, classes sorted by name.

    Returns (image (C, size, size) float in [0, 1], class index). Images are resized to
    `size` x `size` so they batch; `channels` 1 reads grayscale, 3 RGB.
    """

    def __init__(self, root: str | Path, size: int = 224, channels: int = 3, transform=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise PixelwiseError(f"{self.root}: not a folder; expected one sub-folder per class")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if not self.classes:
            raise PixelwiseError(f"{self.root}: has no class sub-folders")
        self.samples = [(p, k) for k, c in enumerate(self.classes)
                        for p in sorted((self.root / c).iterdir())
                        if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self.samples:
            raise PixelwiseError(f"{self.root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.size, self.mode, self.transform = size, "L" if channels == 1 else "RGB", transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        x = TF.resize(read_image(path, self.mode), [self.size, self.size], antialias=True)
        if self.transform is not None:
            x = self.transform(x)
        return x, label
