"""Datasets by name, as the `data` section of a run config names them."""
from __future__ import annotations

from torch.utils.data import Dataset

from pixelwise.errors import PixelwiseError


def build_dataset(cfg, split: str) -> Dataset:
    """The dataset of `cfg.data` (a DataConfig) for split 'train' or 'test'.

    Every dataset has `.classes`, the class names in label order (equal in every split).
    """
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if cfg.name == "fashion_mnist":
        from pixelwise.data.fashion_mnist import FashionMNIST, randomize_labels
        ds = FashionMNIST(split, cfg.root, limit=limit)
        if split == "train" and cfg.label_noise > 0:
            ds.labels = randomize_labels(ds.labels, cfg.label_noise, len(ds.classes))
        return ds
    if cfg.name == "folder":
        from pixelwise.data.folders import build_image_folder
        return build_image_folder(cfg, split, limit)
    if cfg.name == "fs_ood":   # trains on FashionScenes, tests on its scenes with real-photo outliers
        from pixelwise.data.fs_ood import build_fs_ood
        return build_fs_ood(cfg, split, limit)
    if cfg.name == "fs_forecast":   # single frames for the segmenter; forecasting runs read clips (tasks)
        from pixelwise.data.fs_forecast import build_fs_forecast_frames
        return build_fs_forecast_frames(cfg, split, limit)
    from pixelwise.data.segmentation import SEGMENTATION_DATASETS, build_segmentation_dataset
    if cfg.name in SEGMENTATION_DATASETS:
        return build_segmentation_dataset(cfg, split, limit)
    raise PixelwiseError(f"data.name: unknown dataset {cfg.name!r}; known: fashion_mnist, folder, "
                         f"{', '.join(SEGMENTATION_DATASETS)}, fs_ood")
