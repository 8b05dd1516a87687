"""Datasets by name, as the `data` section of a run config names them."""
from __future__ import annotations

from torch.utils.data import Dataset

from pixelwise.errors import PixelwiseError


def build_dataset(cfg, split: str) -> Dataset:
    """The dataset of `cfg.data` (a DataConfig) for split 'train' or 'test'.

    Every dataset has `.classes`, the class names in label order.
    """
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if cfg.name == "fashion_mnist":
        from pixelwise.data.fashion_mnist import FashionMNIST
        return FashionMNIST(split, cfg.root, limit=limit)
    if cfg.name == "folder":
        from torch.utils.data import Subset

        from pixelwise.data.folders import ImageFolder
        root = cfg.root if split == "train" else (cfg.val_root or cfg.root)
        if root is None:
            raise PixelwiseError("data.root: a folder dataset needs data.root (one sub-folder per class)")
        ds = ImageFolder(root, size=cfg.image_size or 224, channels=cfg.channels)
        if limit is not None and limit < len(ds):
            classes, ds = ds.classes, Subset(ds, range(limit))
            ds.classes = classes
        return ds
    raise PixelwiseError(f"data.name: unknown dataset {cfg.name!r}; known: fashion_mnist, folder")
