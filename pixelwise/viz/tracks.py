"""Pictures of tracks: boxes coloured and labelled by track id, as frames, GIF or MP4 files and strips."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes

from pixelwise.errors import PixelwiseError
from pixelwise.viz.overlays import saturated_palette

_PALETTE = saturated_palette(24)[1:]   # distinct colours, cycled over ids


def id_colour(track_id: int) -> tuple[int, int, int]:
    """The RGB colour of a track id (the same id, the same colour, in every frame)."""
    return tuple(int(c) for c in _PALETTE[(int(track_id) * 7) % len(_PALETTE)])


def draw_tracks(image: torch.Tensor, boxes, ids, scale: int = 1) -> np.ndarray:
    """(H * scale, W * scale, 3) uint8: image (C, H, W) float in [0, 1] enlarged `scale` times (nearest)
    with boxes (K, 4) xyxy px drawn in the colour of their ids (K,) and labelled with them."""
    rgb = (image.detach().float().cpu().clamp(0, 1).expand(3, -1, -1) * 255).round().to(torch.uint8)
    if scale > 1:
        rgb = rgb.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    boxes = torch.as_tensor(np.asarray(boxes, np.float32)).reshape(-1, 4) * scale
    ids = [int(i) for i in np.asarray(ids).reshape(-1)]
    if not ids:
        return rgb.permute(1, 2, 0).numpy()
    drawn = draw_bounding_boxes(rgb, boxes, labels=[str(i) for i in ids], colors=[id_colour(i) for i in ids],
                                width=max(1, scale))
    return drawn.permute(1, 2, 0).numpy()


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Frames (H, W, 3) uint8 as an animated GIF (PIL, loops) or an MP4 (OpenCV's mp4v), by the suffix."""
    path = Path(path)
    if not frames:
        raise PixelwiseError(f"{path}: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    elif suffix == ".mp4":
        import cv2
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
        if not writer.isOpened():
            raise PixelwiseError(f"{path}: OpenCV cannot write MP4 here; write a .gif instead")
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
    else:
        raise PixelwiseError(f"{path}: give a .gif or .mp4 file name, not {suffix or 'no suffix'!r}")
    return path


def strip(frames: Sequence[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Frames (H, W, 3) uint8 of one size side by side (`columns` a row, default all), white gaps."""
    if not frames:
        raise PixelwiseError("strip: no frames")
    h, w, _ = frames[0].shape
    columns = columns or len(frames)
    rows = -(-len(frames) // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, f in enumerate(frames):
        r, c = divmod(k, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = f
    return out
