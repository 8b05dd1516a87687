"""FS-Det: the FashionScenes scenes with one box per garment, in torchvision's detection format.

- Box: the tight box of the garment's visible pixels (what is left after later garments occlude it),
  xyxy float pixels in the pixel-edge convention: visible columns c0..c1 and rows r0..r1 give
  (c0, r0, c1 + 1, r1 + 1). Width is then the number of columns, a horizontal flip maps x to W - x
  exactly, and pycocotools' w = x2 - x1 needs no +1.
- Label: garment class + 1 (1-10); 0 is the background, as torchvision's detection models expect.
  `FSDet.classes[label - 1]` names a label.
- iscrowd: 1 for a garment with fewer than MIN_VISIBLE_PIXELS visible pixels, so that COCO
  evaluation counts it as neither a hit nor a miss. Garments with no visible pixel have no box.
- area: the number of visible pixels, as COCO's "area" is the object's segment area (it decides
  small / medium / large); the training transform replaces it by the transformed box's area.

Scene i of a split is the same scene FashionScenes gives for the same (split, seed, size): the boxes
come from `scene_instances`, the images from `generate_scenes` and its cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelwise.data.fashion_mnist import CLASSES as FMNIST_CLASSES
from pixelwise.data.fashion_mnist import load_fashion_mnist
from pixelwise.data.scenes import (_SOURCE_SPLIT, GENERATOR_VERSION, SPLITS, cache_dir, cached_arrays, generate_scenes,
                                   scene_instances)
from pixelwise.data.transforms import EpochSeededTransform, RandomScale
from pixelwise.errors import PixelwiseError

MIN_VISIBLE_PIXELS = 20
FS_DET_CLASSES = FMNIST_CLASSES    # label k (1-10) is FS_DET_CLASSES[k - 1]; 0 is the background
TARGET_KEYS = ("boxes", "labels", "iscrowd", "area")


def scene_boxes(instances: np.ndarray, garment_classes: Sequence[int]) -> dict[str, np.ndarray]:
    """The FS-Det targets of one scene, garments in pasting order (see the module for the conventions).

    instances: (H, W) int map, at each pixel 1 + the pasting order of the garment it shows, 0
    background (`scene_instances`); garment_classes: the Fashion-MNIST class (0-9) of each pasted
    garment. Returns "boxes" (K, 4) float32 xyxy pixels, "labels" (K,) int64 1-10, "iscrowd" (K,)
    int64, "area" (K,) float32 visible pixels and "instance" (K,) int64 instance ids, for the K
    garments with at least one visible pixel.
    """
    instances = np.asarray(instances)
    classes = np.asarray(garment_classes, np.int64).reshape(-1)
    if instances.ndim != 2:
        raise PixelwiseError(f"scene_boxes: instances must be one (H, W) map, got shape {instances.shape}")
    if instances.size and int(instances.max()) > len(classes):
        raise PixelwiseError(f"scene_boxes: the instance map holds id {int(instances.max())} but only "
                             f"{len(classes)} garment classes were given; give one class per pasted garment")
    if ((classes < 0) | (classes >= len(FS_DET_CLASSES))).any():
        raise PixelwiseError(f"scene_boxes: garment classes must be Fashion-MNIST classes 0-9, got {classes.tolist()}")
    h, w = instances.shape
    shown = instances[None] == np.arange(1, len(classes) + 1)[:, None, None]      # (n, H, W)
    pixels = shown.sum((1, 2))
    keep = np.nonzero(pixels)[0]
    cols, rows = shown[keep].any(1), shown[keep].any(2)                            # (K, W), (K, H)
    boxes = np.stack([cols.argmax(1), rows.argmax(1), w - cols[:, ::-1].argmax(1), h - rows[:, ::-1].argmax(1)], 1)
    return {"boxes": boxes.astype(np.float32).reshape(-1, 4), "labels": classes[keep] + 1,
            "iscrowd": (pixels[keep] < MIN_VISIBLE_PIXELS).astype(np.int64),
            "area": pixels[keep].astype(np.float32), "instance": keep.astype(np.int64) + 1}


def fs_det_targets(split: str, n: int, seed: int, size: int = 128,
                   root: str | Path | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The boxes of the first n scenes of (split, seed, size): per-box arrays of all scenes, concatenated
    (keys of `scene_boxes` but "instance"), and (n + 1,) offsets, scene i owning boxes[offsets[i]:offsets[i + 1]].

    Cached as .npz next to the scenes (`cache_dir(root)`), keyed by every parameter.
    """
    name = f"fs_det_{split}_n{n}_seed{seed}_size{size}_min{MIN_VISIBLE_PIXELS}_v{GENERATOR_VERSION}.npz"

    def render() -> dict[str, np.ndarray]:
        instances, picked = scene_instances(split, n, seed, size)
        item_classes = load_fashion_mnist(_SOURCE_SPLIT[split])[1].numpy()
        per_scene = [scene_boxes(inst, item_classes[garments]) for inst, garments in zip(instances, picked)]
        return {"offsets": np.cumsum([0] + [len(t["labels"]) for t in per_scene]),
                **{k: np.concatenate([t[k] for t in per_scene]) for k in TARGET_KEYS}}

    arrays = cached_arrays(cache_dir(root) / name, render, ("offsets", *TARGET_KEYS))
    return {k: arrays[k] for k in TARGET_KEYS}, arrays["offsets"]


def target_tensors(inputs: Any) -> tuple[torch.Tensor, ...]:
    """The per-box tensors of an (image, target) sample that SanitizeBoundingBoxes drops with their boxes."""
    target = inputs[1]
    return tuple(target[k] for k in ("labels", "iscrowd", "area") if k in target)


class BoxArea(torch.nn.Module):
    """Sets target["area"] to each box's area (w * h, pixels^2): visible-pixel counts are not
    tracked through resampling and cropping, so after them the box area is the honest figure."""

    def forward(self, image: Any, target: dict, *rest: Any) -> tuple:
        boxes = target["boxes"].as_subclass(torch.Tensor)
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).float()
        return (image, {**target, "area": area}, *rest)


def detection_train_transform(size: int | Sequence[int] = 128, scale_range: Sequence[float] = (0.5, 2.0),
                              flip: bool = True) -> v2.Compose:
    """Joint augmentation of (image, target): random scale, random crop padded to `size`, h-flip.

    Boxes move with the image (torchvision v2) and are clamped to the canvas;
    SanitizeBoundingBoxes then drops boxes narrower or lower than 1 px (those that left the image)
    together with their labels, iscrowd, area and any per-box masks (K, H, W). Padding is 0 for the
    image and masks. "area" of the surviving boxes becomes their box area (`BoxArea`).
    size: output side (or (H, W)) in pixels; scale_range: the uniform range of the scale factor.
    """
    out = [size, size] if isinstance(size, int) else list(size)
    steps = [RandomScale(scale_range),
             v2.RandomCrop(out, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: 0})]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    # Resizing can leave a box that touches the far edge a float32 ulp past it (23 * 29 / 23 >
    # 29), which SanitizeBoundingBoxes would drop as outside the image: clamp first.
    steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(labels_getter=target_tensors), BoxArea()]
    return v2.Compose(steps)


def detection_collate(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor | list, list[dict]]:
    """(images (N, 3, H, W) when all have one size, else a list of (3, H_i, W_i), list of N target dicts)."""
    images, targets = [b[0] for b in batch], [b[1] for b in batch]
    if len({tuple(im.shape) for im in images}) == 1:
        return torch.stack([im.as_subclass(torch.Tensor) for im in images]), targets
    return images, targets


class FSDet(EpochSeededTransform, Dataset):
    """FS-Det as (image, target) pairs in torchvision's detection format.

    image: tv_tensors.Image (3, H, W) float in [0, 1], the FashionScenes image of the same
    (split, seed, size). target: "boxes" tv_tensors.BoundingBoxes (K, 4) XYXY pixels with
    canvas_size (H, W), "labels" (K,) int64 1-10 (name: classes[label - 1]), "iscrowd" (K,) int64,
    "area" (K,) float32 visible pixels. `n` defaults to the split's size (train 4000 seed 0, val 500
    seed 1, test 1000 seed 2); smaller n gives the first n scenes. `transforms(image, target)` is
    a joint transform such as `detection_train_transform`; with `set_epoch` its random draws are a
    function of (seed, epoch, index), so runs resume exactly.
    """

    classes = FS_DET_CLASSES

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, transforms=None, seed: int | None = None):
        if split not in SPLITS:
            raise PixelwiseError(f"FS-Det split must be one of {', '.join(SPLITS)}, got {split!r}")
        default_n, default_seed = SPLITS[split]
        n, seed = n or default_n, default_seed if seed is None else seed
        self.split, self.transform = split, transforms
        images, _ = generate_scenes(split, n, seed, size, None, root)
        self.images = torch.from_numpy(images)
        targets, self.offsets = fs_det_targets(split, n, seed, size, root)
        self.targets = {k: torch.from_numpy(v) for k, v in targets.items()}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[tv_tensors.Image, dict]:
        # The scene is grayscale: transform its one channel (a third of the resampling work, the
        # largest cost of a training step's data), then repeat it on three.
        gray = tv_tensors.Image(self.images[i].float().div(255)[None])
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        target = {k: v[lo:hi].clone() for k, v in self.targets.items()}
        target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"], format=tv_tensors.BoundingBoxFormat.XYXY,
                                                   canvas_size=tuple(gray.shape[-2:]))
        gray, target = self.apply_transform(gray, target, i)
        return tv_tensors.Image(gray.expand(3, -1, -1).clone()), target
