"""Garment identities of FS-Video as crops: the training and retrieval data of appearance embeddings.

An identity is one track of one sequence, (sequence, track id). Its crops are the frame regions
inside its visible boxes (pixelwise.data.fs_video), each resized to `size` x `size` by
`crop_boxes` (the same function crops a tracker's detections), in frames where at least
`min_visibility` of the garment shows, so heavily occluded or cut views are left out.

The crossing twins of a sequence (two copies of one item, pixelwise.data.fs_video) look the same:
as two classes they would ask the embedding for the impossible. They are found as the tracks of a
sequence that share class and full box size (the largest box of a track is its whole garment
whenever it is once fully visible), and the later twin is left out.

Retrieval (test split): each identity with crops in at least two frames gives one query, its crop
in the first of them, and the gallery holds the crops of every identity from the later half of
its frames; a query asks which gallery crops show its identity.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import roi_align

from pixelwise.data.fs_video import generate_videos
from pixelwise.errors import PixelwiseError

GALLERY, QUERY, UNUSED = 0, 1, 2   # roles of test crops in retrieval


def crop_boxes(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops (M, C, size, size) of `image` (C, H, W) float inside `boxes` (M, 4) xyxy px, bilinearly
    resampled (torchvision's roi_align, pixel-edge box convention); parts outside the image are 0."""
    boxes = torch.as_tensor(boxes, dtype=image.dtype).reshape(-1, 4)
    if not len(boxes):
        return image.new_zeros((0, image.shape[0], size, size))
    return roi_align(image[None], [boxes], output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def twin_tracks(labels: np.ndarray, boxes: np.ndarray, visibility: np.ndarray) -> set[int]:
    """Slots (0-based) of one sequence that repeat an earlier slot's look: same class and the same
    largest visible box size. labels (K,), boxes (T, K, 4), visibility (T, K)."""
    sizes = np.where(visibility[..., None] > 0, boxes[..., 2:] - boxes[..., :2], 0).max(0)   # (K, 2)
    twins = set()
    for j in range(len(labels)):
        for i in range(j):
            if labels[j] and labels[i] == labels[j] and (sizes[i] == sizes[j]).all() and i not in twins:
                twins.add(j)
    return twins


def identity_crops(arrays: dict[str, np.ndarray], size: int = 32, min_visibility: float = 0.5) -> dict[str, np.ndarray]:
    """Crops of every identity of FS-Video `arrays` (generate_videos' dict).

    Returns crops (M, size, size) uint8, identity (M,) int64 dense 0..n-1 in (sequence, track)
    order, sequence (M,), track (M,) (1-based ids) and frame (M,) (0-based) int64, and names (n,)
    'SEQUENCE-TRACK' of the identities.
    """
    images, boxes, visibility, labels = (arrays[k] for k in ("images", "boxes", "visibility", "labels"))
    out = {k: [] for k in ("crops", "sequence", "track", "frame")}
    for s in range(len(images)):
        skip = twin_tracks(labels[s], boxes[s], visibility[s])
        t, k = np.nonzero(visibility[s] >= max(min_visibility, 1e-9))
        keep = np.array([j not in skip for j in k], bool)
        t, k = t[keep], k[keep]
        if not len(t):
            continue
        frames = torch.from_numpy(images[s]).float().div(255)[:, None]        # (T, 1, H, W)
        rois = torch.from_numpy(np.column_stack([t, boxes[s][t, k]]).astype(np.float32))   # (M, 5) frame, xyxy
        crops = roi_align(frames, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        out["crops"].append(np.round(crops[:, 0].clamp(0, 1).numpy() * 255).astype(np.uint8))
        out["sequence"].append(np.full(len(t), s))
        out["track"].append(k + 1)
        out["frame"].append(t)
    if not out["crops"]:
        raise PixelwiseError(f"FS-Video: no garment is visible in at least {min_visibility:.0%} in any frame; "
                             "lower data.min_visibility")
    a = {k: np.concatenate(v) for k, v in out.items()}
    a["crops"] = a["crops"].astype(np.uint8)
    a = {k: v if k == "crops" else v.astype(np.int64) for k, v in a.items()}
    order = np.lexsort((a["frame"], a["track"], a["sequence"]))
    a = {k: v[order] for k, v in a.items()}
    keys, a["identity"] = np.unique(a["sequence"] * 1000 + a["track"], return_inverse=True)
    a["names"] = np.array([f"{key // 1000}-{key % 1000}" for key in keys])
    return a


def retrieval_roles(identity: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(M,) GALLERY, QUERY or UNUSED for crops sorted by (identity, frame): see the module docstring."""
    roles = np.full(len(identity), UNUSED)
    for i in np.unique(identity):
        idx = np.nonzero(identity == i)[0]
        if len(idx) < 2:
            continue
        roles[idx[0]] = QUERY
        roles[idx[(len(idx) + 1) // 2:]] = GALLERY
    return roles


class FSIdentities(Dataset):
    """Identity crops of FS-Video sequences (see the module docstring).

    Items: train (crop (3, S, S) float in [0, 1], identity) ; test (crop, identity, role) with role
    GALLERY, QUERY or UNUSED. `classes` names the identities ('SEQUENCE-TRACK'); `n` sequences (default
    the split's 600 or 100) of `canvas` px.
    """

    def __init__(self, split: str = "train", root: str | Path | None = None, canvas: int = 128,
                 n: int | None = None, size: int = 32, min_visibility: float = 0.5):
        from pixelwise.data.fs_video import SPLITS
        if split not in SPLITS:
            raise PixelwiseError(f"FS-Video split must be one of {', '.join(SPLITS)}, got {split!r}")
        default_n, seed = SPLITS[split]
        self.split = split
        a = identity_crops(generate_videos(split, n or default_n, seed, canvas, root=root), size, min_visibility)
        self.crops = torch.from_numpy(a["crops"])
        self.identity = torch.from_numpy(a["identity"])
        self.sequence, self.frame = a["sequence"], a["frame"]
        self.roles = torch.from_numpy(retrieval_roles(a["identity"], a["frame"]))
        self.classes = [str(n) for n in a["names"]]

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        crop = self.crops[i].float().div(255)[None].expand(3, -1, -1).clone()
        if self.split == "train":
            return crop, int(self.identity[i])
        return crop, int(self.identity[i]), int(self.roles[i])
