"""Fashion-MNIST / MNIST from the standard IDX files (gzipped or not)."""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.errors import PixelwiseError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# IDX type codes (third byte of the magic number) -> numpy dtype, big-endian.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally .gz) into an array of the shape its header gives."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:   # zlib.error: a corrupt deflate stream inside the .gz
        raise PixelwiseError(f"{path}: cannot read IDX file ({type(e).__name__}: {e}); re-download it") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise PixelwiseError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise PixelwiseError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize   # exact: np.prod wraps past 2**63
    if len(raw) != expected:
        raise PixelwiseError(
            f"{path}: truncated or corrupt IDX file: header says shape {shape} "
            f"({expected} bytes) but the file has {len(raw)} bytes; re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The first folder holding the IDX files: `data_dir`, $PIXELWISE_DATA, Debian's package."""
    candidates = [Path(p) for p in (data_dir, os.environ.get("PIXELWISE_DATA")) if p]
    candidates += [c / "fashion-mnist" for c in list(candidates)] + [DEBIAN_DIR]
    for c in candidates:
        if _locate(c, *_FILES["train"]) is not None:
            return c
    return None


def _locate(folder: Path, *stems: str) -> list[Path] | None:
    found = []
    for stem in stems:
        options = [folder / stem, folder / f"{stem}.gz"]
        hit = next((p for p in options if p.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def load_fashion_mnist(split: str = "train", data_dir: str | Path | None = None,
                       download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split ('train' or 'test').

    Looks in `data_dir`, $PIXELWISE_DATA and /usr/share/datasets/fashion-mnist; otherwise downloads
    through torchvision into `data_dir` (or ~/.cache/pixelwise) when `download` is true.
    """
    if split not in _FILES:
        raise PixelwiseError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_data_dir(data_dir)
    if folder is None:
        folder = _download(data_dir) if download else None
    if folder is None:
        raise PixelwiseError(
            "Fashion-MNIST not found: looked in --data-dir, $PIXELWISE_DATA and "
            f"{DEBIAN_DIR}; install Debian's 'dataset-fashion-mnist' or pass --data-dir")
    paths = _locate(folder, *_FILES[split])
    if paths is None:
        raise PixelwiseError(f"{folder}: has no {split} split ({', '.join(_FILES[split])})")
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise PixelwiseError(
            f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _download(data_dir: str | Path | None) -> Path | None:
    root = Path(data_dir) if data_dir else Path.home() / ".cache" / "pixelwise"
    try:
        from torchvision.datasets import FashionMNIST
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as e:  # no network, or a mirror is down: say so in one line
        raise PixelwiseError(
            f"Fashion-MNIST not found locally and the download failed ({type(e).__name__}: {e}); "
            "install Debian's 'dataset-fashion-mnist' or pass --data-dir") from e
    return root / "FashionMNIST" / "raw"


def randomize_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int = 0) -> torch.Tensor:
    """A copy of `labels` (N,) where a random `fraction` of them is replaced by uniform random classes.

    The Zhang et al. (2017) memorization test: fraction 1.0 removes every relation between image and label.
    The choice is a function of `seed` only, so every epoch and every resumed run sees the same labels.
    """
    g = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(labels), generator=g)[:round(fraction * len(labels))]
    out = labels.clone()
    out[chosen] = torch.randint(0, num_classes, (len(chosen),), generator=g)
    return out


class FashionMNIST(Dataset):
    """Fashion-MNIST as (image (1, 28, 28) float in [0, 1], label int) pairs.

    `limit` keeps the first `limit` items (for quick runs); `transform` acts on the image tensor.
    """

    classes = CLASSES

    def __init__(self, split: str = "train", data_dir: str | Path | None = None,
                 limit: int | None = None, transform=None):
        images, labels = load_fashion_mnist(split, data_dir)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        self.images = images.unsqueeze(1)  # uint8, converted per item: 4x less memory
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div_(255)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[i])
