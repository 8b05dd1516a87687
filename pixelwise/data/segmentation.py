"""Segmentation datasets in their real folder layouts: Cityscapes, CamVid, Pascal VOC, ADE20K, and
a generic images/ + masks/ folder pair.

Every dataset returns (tv_tensors.Image (3, H, W) float in [0, 1], tv_tensors.Mask (H, W) int64)
with labels 0..K-1 and 255 = ignore, and has `.classes`. Raw mask values are mapped to these labels
by a lookup table per layout; a mask whose size differs from its image, or with a value that is
neither a class nor ignored, is an error naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision import tv_tensors

from pixelwise.data.folders import IMAGE_SUFFIXES, image_size, read_image
from pixelwise.data.transforms import EpochSeededTransform
from pixelwise.errors import PixelwiseError
from pixelwise.labels import IGNORE_INDEX

INVALID = -1   # lookup-table entry of a raw value that no class or ignore label explains
_INDEX_MODES = {"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"}   # one integer per pixel

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                      "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                      "bus", "train", "motorcycle", "bicycle")
# Cityscapes labelId -> trainId for labelIds 0..33 (the official table of cityscapesscripts.helpers.labels).
CITYSCAPES_TRAIN_IDS = (255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5,
                        255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18)
CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
                  "pedestrian", "bicyclist")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair",
    "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box",
    "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow",
    "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet",
    "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower",
    "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle",
    "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle",
    "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower",
    "radiator", "glass", "clock", "flag")


def label_table(mapping: dict[int, int] | Sequence[int], identity_classes: int = 0) -> np.ndarray:
    """(256,) int16 lookup: raw mask value -> label (0..K-1, 255 ignore, -1 invalid).

    mapping: {raw: label} or a sequence whose i-th entry is the label of raw value i;
    identity_classes: raw values 0..identity_classes-1 map to themselves. 255 always means ignore.
    """
    lut = np.full(256, INVALID, np.int16)
    lut[:identity_classes] = np.arange(identity_classes)
    items = mapping.items() if isinstance(mapping, dict) else enumerate(mapping)
    for raw, label in items:
        lut[raw] = label
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


def read_mask(path: str | Path) -> np.ndarray:
    """A label PNG (palette or grayscale, 8 or 16 bit) as (H, W) int64 raw values, palette indices kept.

    Turned by its EXIF orientation, if it has one, as read_image turns images."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: no such mask file")
    try:
        with Image.open(path) as im:
            if im.mode not in _INDEX_MODES:
                what = "colour-coded" if im.mode in ("RGB", "RGBA") else "multi-channel or float"
                raise PixelwiseError(f"{path}: {what} {im.mode} mask; expected one label index per pixel "
                                     "(a palette or grayscale PNG, 8 or 16 bit)")
            raw = np.asarray(ImageOps.exif_transpose(im)).astype(np.int64)
    except PixelwiseError:
        raise
    except Image.DecompressionBombError as e:
        raise PixelwiseError(f"{path}: mask too large to read safely ({e})") from e
    except Exception as e:   # a decoder fails on corrupt bytes in many ways (OSError, ValueError, struct.error...)
        raise PixelwiseError(f"{path}: unreadable or corrupt mask ({type(e).__name__}: {e}); "
                             "re-export or remove the file") from e
    if raw.ndim != 2:
        raise PixelwiseError(f"{path}: mask of shape {raw.shape}; expected one label index per pixel (H, W)")
    return raw


def map_labels(raw: np.ndarray, lut: np.ndarray, path: str | Path, num_classes: int) -> np.ndarray:
    """Raw mask values -> labels through `lut`; values outside it are an error naming `path`."""
    outside = (raw < 0) | (raw >= len(lut))
    labels = lut[np.clip(raw, 0, len(lut) - 1)]
    bad = outside | (labels == INVALID)
    if bad.any():
        values = sorted({int(v) for v in np.unique(raw[bad])[:5]})
        raise PixelwiseError(f"{path}: mask values {values} are neither classes 0..{num_classes - 1} (after "
                             f"this layout's mapping) nor the ignore label 255; check the dataset layout")
    return labels.astype(np.int64)


class SegmentationPairs(EpochSeededTransform, Dataset):
    """(image file, mask file) pairs with a label lookup table: the base of every layout below.

    pairs: list of (image path, mask path); classes: names of labels 0..K-1; lut: label_table(...);
    transform(image, mask): a joint transform (pixelwise.data.transforms), seeded per (seed, epoch,
    index) after `set_epoch`.
    """

    def __init__(self, pairs: list[tuple[Path, Path]], classes: Sequence[str], lut: np.ndarray,
                 transform=None, source: str | Path = "dataset"):
        if not pairs:
            raise PixelwiseError(f"{source}: no image/mask pairs found; check the folder layout")
        self.pairs, self.classes, self.lut, self.transform = list(pairs), list(classes), lut, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        image_path, mask_path = self.pairs[i]
        image = read_image(image_path, "RGB")
        raw = read_mask(mask_path)
        if raw.shape != tuple(image.shape[1:]):
            raise PixelwiseError(f"{mask_path}: mask is {raw.shape[1]}x{raw.shape[0]} px but its image "
                                 f"{image_path} is {image.shape[2]}x{image.shape[1]} px; they must match")
        mask = torch.from_numpy(map_labels(raw, self.lut, mask_path, len(self.classes)))
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        return self.apply_transform(image, mask, i)


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise PixelwiseError(f"{path}: not found; expected {what}")
    return path


def cityscapes(root: str | Path, split: str = "train", transform=None) -> SegmentationPairs:
    """Cityscapes fine annotations: root/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png with
    root/gtFine/SPLIT/CITY/*_gtFine_labelIds.png; labelIds mapped to the 19 trainIds, others 255."""
    root = Path(root)
    images = _need_dir(root / "leftImg8bit" / split, "Cityscapes' leftImg8bit/SPLIT/CITY folders")
    pairs = []
    for im in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = im.name[:-len("_leftImg8bit.png")]
        pairs.append((im, root / "gtFine" / split / im.parent.name / f"{stem}_gtFine_labelIds.png"))
    return SegmentationPairs(pairs, CITYSCAPES_CLASSES, label_table(CITYSCAPES_TRAIN_IDS), transform, images)


def camvid(root: str | Path, split: str = "train", transform=None) -> SegmentationPairs:
    """CamVid in the SegNet layout: root/SPLIT/*.png with root/SPLITannot/*.png, 11 classes, 11 = void."""
    root = Path(root)
    images = _need_dir(root / split, "CamVid's SPLIT and SPLITannot folders (SegNet layout)")
    pairs = [(p, root / f"{split}annot" / p.name) for p in sorted(images.glob("*.png"))]
    return SegmentationPairs(pairs, CAMVID_CLASSES, label_table({11: IGNORE_INDEX}, 11), transform, images)


def voc(root: str | Path, split: str = "train", transform=None) -> SegmentationPairs:
    """Pascal VOC 2012: root (VOC2012 or a VOCdevkit holding it) with ImageSets/Segmentation/SPLIT.txt,
    JPEGImages/ID.jpg and SegmentationClass/ID.png (palette indices 0-20, 255 = boundary)."""
    root = Path(root)
    if (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise PixelwiseError(f"{listing}: not found; expected Pascal VOC's VOC2012 folder")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    pairs = [(root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids]
    return SegmentationPairs(pairs, VOC_CLASSES, label_table({}, 21), transform, listing)


def ade20k(root: str | Path, split: str = "train", transform=None) -> SegmentationPairs:
    """ADE20K SceneParsing (ADEChallengeData2016): root/images/{training,validation}/*.jpg with
    root/annotations/.../*.png; value 0 ('other') is ignored, 1..150 become classes 0..149."""
    root = Path(root)
    part = "training" if split == "train" else "validation"
    images = _need_dir(root / "images" / part, "ADEChallengeData2016's images/ and annotations/ folders")
    pairs = [(p, root / "annotations" / part / f"{p.stem}.png") for p in sorted(images.glob("*.jpg"))]
    lut = label_table({0: IGNORE_INDEX, **{v: v - 1 for v in range(1, 151)}})
    return SegmentationPairs(pairs, ADE20K_CLASSES, lut, transform, images)


def mask_folder(root: str | Path, transform=None, classes: Sequence[str] | None = None) -> SegmentationPairs:
    """A generic pair of folders: root/images/NAME.* with root/masks/NAME.png (label indices, 255 ignore).

    Class names come from `classes` or root/classes.txt (one name per line, in label order).
    """
    root = Path(root)
    images, masks = _need_dir(root / "images", "images/ and masks/ sub-folders"), root / "masks"
    if classes is None:
        names = root / "classes.txt"
        if not names.is_file():
            raise PixelwiseError(f"{names}: not found; list the class names, one a line, in label order")
        classes = [c.strip() for c in names.read_text().splitlines() if c.strip()]
    by_stem = {p.stem: p for p in masks.glob("*.png")} if masks.is_dir() else {}
    pairs = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem not in by_stem:
                raise PixelwiseError(f"{p}: has no mask {masks / (p.stem + '.png')}")
            pairs.append((p, by_stem[p.stem]))
    return SegmentationPairs(pairs, classes, label_table({}, len(classes)), transform, images)


LAYOUTS = {"cityscapes": cityscapes, "camvid": camvid, "voc": voc, "ade20k": ade20k}
SEGMENTATION_DATASETS = ("fashion_scenes", "masks", *LAYOUTS)
# Layouts whose test labels are not public: their 'test' split reads the validation set.
_VAL_AS_TEST = {"cityscapes", "voc", "ade20k"}


def build_segmentation_dataset(cfg, split: str, limit: int | None = None) -> Dataset:
    """The segmentation dataset a DataConfig names, for split 'train', 'val' or 'test'.

    Training splits get the joint augmentation of `cfg.augment` ('scale_crop_flip': random scale in
    cfg.scale_range, crop of cfg.crop_size padded with 255, h-flip; 'crop_flip': the same without
    scaling); other splits return whole images. `limit` keeps the first items.
    """
    from pixelwise.data.transforms import train_transform
    transform = None
    if split == "train" and cfg.augment != "none":
        crop = cfg.crop_size or getattr(cfg, "canvas_size", 512)
        transform = train_transform(crop, cfg.scale_range if cfg.augment == "scale_crop_flip" else (1.0, 1.0),
                                    photometric=cfg.photometric)
    if cfg.name == "fashion_scenes":
        from pixelwise.data.scenes import FashionScenes
        return FashionScenes(split, root=cfg.root, size=cfg.canvas_size, n=limit,
                             shift=getattr(cfg, "variant", None) if split != "train" else None, transform=transform)
    root = cfg.root if split == "train" else (cfg.val_root or cfg.root)
    if root is None:
        raise PixelwiseError(f"data.root: dataset {cfg.name!r} needs data.root (or --data-dir), the folder "
                             "holding its files")
    if cfg.name == "masks":
        ds = mask_folder(root, transform)
    else:
        ds = LAYOUTS[cfg.name](root, "val" if split == "test" and cfg.name in _VAL_AS_TEST else split, transform)
    if limit is not None:
        ds.pairs = ds.pairs[:limit]
    if split == "train" and transform is None:
        check_same_size([image for image, _ in ds.pairs])
    return ds


def check_same_size(images: Sequence[Path]) -> None:
    """Refuse training images of different sizes, which the default collate cannot batch; reads headers only."""
    first = None
    for path in images:
        size = image_size(path)
        if first is None:
            first = (path, size)
        elif size != first[1]:
            (w0, h0), (w, h) = first[1], size
            raise PixelwiseError(
                f"{first[0]} is {w0}x{h0} px but {path} is {w}x{h} px: training images of different sizes do "
                "not batch under data.augment: none; set data.augment: scale_crop_flip (or crop_flip) with "
                "data.crop_size, which crops every image to one size")
