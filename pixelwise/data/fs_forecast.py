"""FS-Forecast: clips of FS-Video for forecasting the segmentation of future frames (DESIGN.md).

A clip is anchored at frame t of a sequence: the observed frames t-9, t-6, t-3, t and the target
frames t+3 (short term) and t+9 (mid term). The test protocol anchors every test sequence at t = 20;
training anchors each sequence at a t drawn from every position where the clip fits (9..20 in 30
frames), a function of (seed, epoch, index) so that resumed runs draw the same clips, and (with
`mirror`) mirrors the whole clip left-right with probability 1/2 (same key).

`FSForecastFrames` is the single-frame view of the same sequences, for training the single-frame
segmenter (the oracle and the feature extractor): every frame of the training sequences, and the
target frames t+3 and t+9 of the test clips, i.e. exactly the frames the oracle is measured on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from pixelwise.data.fs_video import FRAMES, FSVideo
from pixelwise.data.scenes import FASHION_SCENES_CLASSES
from pixelwise.data.transforms import EpochSeededTransform, key_seed
from pixelwise.errors import PixelwiseError

OBSERVED = (-9, -6, -3, 0)   # frame offsets from t of the observed frames, oldest first
HORIZONS = (3, 9)            # frame offsets of the forecast targets: short term, mid term
OFFSETS = OBSERVED + HORIZONS
TEST_T = 20                  # the test protocol's anchor frame
MOVING_CLASSES = tuple(range(1, len(FASHION_SCENES_CLASSES)))   # the garments move; the background does not


def clip_frames(t: int) -> list[int]:
    """Frame indices of the clip anchored at t: [t-9, t-6, t-3, t, t+3, t+9]."""
    return [t + o for o in OFFSETS]


def valid_anchors(frames: int = FRAMES) -> range:
    """Every t whose clip lies inside a sequence of `frames` frames (9..frames-10)."""
    first, last = -min(OFFSETS), frames - 1 - max(OFFSETS)
    if last < first:
        raise PixelwiseError(f"FS-Forecast clips span {max(OFFSETS) - min(OFFSETS) + 1} frames; sequences of "
                             f"{frames} frames are too short")
    return range(first, last + 1)


def draw_anchor(draw_seed: int, index: int, frames: int = FRAMES) -> tuple[int, bool]:
    """(t, mirrored) of training clip `index` for the draw seed of an epoch (see EpochSeededTransform)."""
    anchors = valid_anchors(frames)
    key = key_seed((draw_seed, index))
    return anchors[key % len(anchors)], bool((key // len(anchors)) % 2)


def _labels(video: FSVideo, s: int, frames: list[int]) -> np.ndarray:
    """(len(frames), H, W) int64 class + 1 labels (0 background) of sequence s, as FSVideo's masks."""
    lut = np.concatenate([[0], video.arrays["labels"][s].astype(np.int64)])
    return lut[np.asarray(video.arrays["track_ids"][s, frames], np.int64)]


def _images(video: FSVideo, s: int, frames: list[int]) -> torch.Tensor:
    """(len(frames), 3, H, W) float in [0, 1]: the grayscale frames replicated to 3 channels."""
    gray = torch.from_numpy(np.asarray(video.arrays["images"][s, frames])).float().div(255)
    return gray[:, None].expand(-1, 3, -1, -1).contiguous()


class FSForecast(Dataset):
    """Clips of FS-Video; an item is a dict:

    frames (6, 3, H, W) float in [0, 1]: the frames t-9, t-6, t-3, t, t+3, t+9 (OFFSETS);
    masks (6, H, W) int64: their labels, 0 background, class + 1 for garments (FashionScenes' classes);
    t: the anchor frame (int64); sequence: the sequence index (int64).
    split 'test' anchors every sequence at TEST_T; 'train' draws t per (seed, epoch, index) after
    `set_epoch` and, with `mirror`, mirrors the clip with probability 1/2. n: the first n sequences
    (default: all); test_t: the test anchor.
    """

    classes = FASHION_SCENES_CLASSES

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, test_t: int = TEST_T, mirror: bool = False):
        self.split, self.mirror, self.video = split, mirror, FSVideo(split, root=root, size=size, n=n)
        self.num_frames = self.video.arrays["images"].shape[1]
        anchors = valid_anchors(self.num_frames)
        if test_t not in anchors:
            raise PixelwiseError(f"data.test_t={test_t}: the clip must fit the {self.num_frames} frames; "
                                 f"give one of {anchors.start}..{anchors.stop - 1}")
        self.test_t, self.draw_seed = test_t, 0

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        """Make the anchor and mirroring of clip i a function of (seed, epoch, i)."""
        self.draw_seed = seed * 1_000_003 + epoch + 1

    def anchor(self, i: int) -> tuple[int, bool]:
        """(t, mirrored) of item i."""
        if self.split != "train":
            return self.test_t, False
        t, mirrored = draw_anchor(self.draw_seed, i, self.num_frames)
        return t, mirrored and self.mirror

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        t, mirrored = self.anchor(i)
        frames = clip_frames(t)
        images, masks = _images(self.video, i, frames), torch.from_numpy(_labels(self.video, i, frames))
        if mirrored:
            images, masks = images.flip(-1), masks.flip(-1)
        return {"frames": images, "masks": masks, "t": torch.tensor(t), "sequence": torch.tensor(i)}


class FSForecastFrames(EpochSeededTransform, Dataset):
    """Single frames of FS-Forecast for a segmenter: (tv_tensors.Image (3, H, W) in [0, 1], Mask (H, W)).

    train: every frame of the training sequences (sequence-major); test: the frames t+3 and t+9 of
    each test clip. transform(image, mask): a joint augmentation, seeded per (seed, epoch, index).
    """

    classes = FASHION_SCENES_CLASSES

    def __init__(self, split: str = "train", root: str | Path | None = None, size: int = 128,
                 n: int | None = None, transform=None, test_t: int = TEST_T):
        self.video, self.transform = FSVideo(split, root=root, size=size, n=n), transform
        num_frames = self.video.arrays["images"].shape[1]
        if split == "train":
            self.index = [(s, f) for s in range(len(self.video)) for f in range(num_frames)]
        else:
            targets = clip_frames(test_t)[len(OBSERVED):]
            self.index = [(s, f) for s in range(len(self.video)) for f in targets]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        s, f = self.index[i]
        image = tv_tensors.Image(_images(self.video, s, [f])[0])
        mask = tv_tensors.Mask(torch.from_numpy(_labels(self.video, s, [f])[0]))
        return self.apply_transform(image, mask, i)


def build_fs_forecast_frames(cfg, split: str, limit: int | None = None) -> FSForecastFrames:
    """The single-frame view a segmentation run on `data.name: fs_forecast` trains and tests on;
    `limit` keeps the first sequences (data.train_limit / data.test_limit count sequences)."""
    from pixelwise.data.transforms import train_transform
    transform = None
    if split == "train" and cfg.augment != "none":
        transform = train_transform(cfg.crop_size or cfg.canvas_size,
                                    cfg.scale_range if cfg.augment == "scale_crop_flip" else (1.0, 1.0),
                                    photometric=cfg.photometric)
    return FSForecastFrames(split, root=cfg.root, size=cfg.canvas_size, n=limit, transform=transform,
                            test_t=cfg.test_t)
