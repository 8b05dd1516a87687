"""Multi-object tracking by detection (FS-Track): a detector run finds the objects of each frame, an
embedding run describes their crops, and pixelwise.tracking.Tracker links them into tracks.

`track_sequence` tracks frames in memory (or given detections, e.g. ground-truth boxes);
`track_files` is `pixelwise track`: a folder of frames or a video file in, MOTChallenge text and a
GIF or MP4 with the tracks drawn out. Output rows carry the matched detection's box, score and class
(the Kalman filter associates; it does not move the reported box).
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torchvision.ops import nms

from pixelwise.data.folders import IMAGE_SUFFIXES, read_image
from pixelwise.data.fs_identities import crop_boxes
from pixelwise.data.mot import boxes_to_mot, mot_frame_boxes, write_mot
from pixelwise.engine.device import pick_device
from pixelwise.engine.runs import load_run
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.tracking.tracker import Tracker, TrackerConfig

NMS_IOU = 0.8   # class-agnostic suppression of a detector's duplicate boxes (crossing objects overlap less)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def read_frames(source: str | Path) -> tuple[torch.Tensor, float | None]:
    """Frames (T, 3, H, W) float in [0, 1] of a folder of image files (sorted by name) or a video file
    (OpenCV), and the video's frame rate (None for a folder). Errors name the file and the fix."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PixelwiseError(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        frames = [read_image(p, "RGB") for p in files]
        for p, f in zip(files, frames):
            if f.shape != frames[0].shape:
                raise PixelwiseError(f"{p}: frame of {f.shape[2]}x{f.shape[1]} px, but {files[0].name} has "
                                     f"{frames[0].shape[2]}x{frames[0].shape[1]}; all frames need one size")
        return torch.stack(frames), None
    if not source.is_file():
        raise PixelwiseError(f"{source}: no such folder of frames or video file")
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise PixelwiseError(f"{source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}); give a video "
                             "or a folder of frames")
    import cv2
    capture = cv2.VideoCapture(str(source))
    frames = []
    try:
        if not capture.isOpened():
            raise PixelwiseError(f"{source}: OpenCV cannot open this video; convert it or give a folder of frames")
        fps = capture.get(cv2.CAP_PROP_FPS) or None
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1).float().div(255))
    finally:
        capture.release()
    if not frames:
        raise PixelwiseError(f"{source}: no frame could be decoded; the video is empty or corrupt")
    return torch.stack(frames), fps


def load_task_run(run: str | Path, task: str, option: str, device: torch.device) -> tuple[nn.Module, dict]:
    """A run folder's model, refusing runs of another task (a detector given as --embedding, ...)."""
    model, config = load_run(run, device)
    found = config.get("task") or config.get("train_config", {}).get("task")
    if found != task:
        raise PixelwiseError(f"{option} {run}: is a {found or 'unknown'} run; give a run trained by the "
                             f"{task} task")
    return model, config


@torch.inference_mode()
def detect(detector: nn.Module, frames: torch.Tensor, batch_size: int = 8) -> list[dict[str, np.ndarray]]:
    """Per frame {'boxes' (K, 4) xyxy px, 'scores' (K,), 'labels' (K,)} as numpy, from a detector that
    takes images (N, 3, H, W) float in [0, 1] and gives torchvision-style dicts."""
    device = next(detector.parameters()).device
    out = []
    for i in range(0, len(frames), batch_size):
        for d in detector(frames[i:i + batch_size].to(device)):
            out.append({k: d[k].detach().float().cpu().numpy() if k != "labels" else d[k].cpu().numpy()
                        for k in ("boxes", "scores", "labels")})
    return out


@torch.inference_mode()
def embed_detections(embedder: nn.Module, frames: torch.Tensor, detections: list[dict], crop_size: int,
                     batch_size: int = 512) -> list[np.ndarray]:
    """Unit appearance features (K, D) of each frame's detection boxes: crops (pixelwise.data.fs_identities.
    crop_boxes) of `crop_size` px through the embedding model, all frames in large batches."""
    device = next(embedder.parameters()).device
    crops = [crop_boxes(f, torch.as_tensor(d["boxes"], dtype=torch.float32), crop_size)
             for f, d in zip(frames, detections)]
    counts = [len(c) for c in crops]
    every = torch.cat(crops) if crops else torch.zeros(0, 3, crop_size, crop_size)
    features = [embedder(every[i:i + batch_size].to(device)).float().cpu()
                for i in range(0, len(every), batch_size)]
    flat = torch.cat(features).numpy() if features else np.zeros((0, 1), np.float32)
    return list(np.split(flat, np.cumsum(counts)[:-1])) if counts else []


def usable(detections: list[dict], min_score: float, nms_iou: float | None = NMS_IOU) -> list[dict]:
    """Per frame, the detections scoring at least `min_score` whose boxes are not empty (zero width or
    height: no motion state), after class-agnostic non-maximum suppression at `nms_iou` (None: none).

    A detector that scores each class apart (CenterNet's per-class peaks) gives one object several
    boxes, one per likely class; a tracker would start a track for each. Only what the tracker can
    see is kept, so the embedding describes no more crops than needed."""
    out = []
    for d in detections:
        size = d["boxes"][:, 2:] - d["boxes"][:, :2]
        keep = np.nonzero((d["scores"] >= min_score) & (size > 0).all(1))[0]
        if nms_iou is not None and len(keep):
            kept = nms(torch.as_tensor(d["boxes"][keep], dtype=torch.float64),
                       torch.as_tensor(d["scores"][keep], dtype=torch.float64), nms_iou)
            keep = keep[np.sort(kept.numpy())]
        out.append({k: v[keep] for k, v in d.items()})
    return out


def associate(detections: list[dict], config: TrackerConfig, features: list[np.ndarray] | None = None) -> np.ndarray:
    """MOT rows (N, 9) of the tracks an online Tracker builds from per-frame detections (frames from 1):
    each reported track's matched detection box, score and label. Detections scoring below
    config.low_score and empty boxes (zero width or height) are left out."""
    tracker = Tracker(config)
    rows = []
    for t, d in enumerate(detections):
        size = d["boxes"][:, 2:] - d["boxes"][:, :2]
        keep = (d["scores"] >= config.low_score) & (size > 0).all(1)   # empty boxes have no motion state
        boxes, scores = d["boxes"][keep], d["scores"][keep]
        feats = None if features is None else features[t][keep]
        ids, _ = tracker.update(boxes, scores, feats)
        j = tracker.reported_detections
        labels = d["labels"][keep][j] if "labels" in d else None
        rows.append(boxes_to_mot(t + 1, ids, boxes[j], scores[j], labels))
    return np.concatenate(rows) if rows else np.zeros((0, 9))


def track_sequence(frames: torch.Tensor, detector: nn.Module | None = None, embedder: nn.Module | None = None,
                   config: TrackerConfig | None = None, detections: list[dict] | None = None,
                   crop_size: int = 32, nms_iou: float | None = NMS_IOU) -> dict:
    """Track the objects of frames (T, 3, H, W) float in [0, 1].

    Detections come from `detections` (per frame 'boxes' (K, 4) xyxy px, 'scores' (K,), optional
    'labels') or from `detector`; appearance features from `embedder` (needed when
    config.appearance_weight > 0) on crops of `crop_size`. Detections below config.low_score, empty
    ones and duplicates (class-agnostic NMS at `nms_iou`) are left out first (`usable`). Returns
    'rows' (N, 9) MOT rows, and 'seconds': time spent detecting, embedding and associating.
    """
    config = config or TrackerConfig()
    seconds = {"detect": 0.0, "embed": 0.0, "associate": 0.0}
    if detections is None:
        if detector is None:
            raise PixelwiseError("track_sequence: give a detector or the detections of every frame")
        tick = time.perf_counter()
        detections = detect(detector, frames)
        seconds["detect"] = time.perf_counter() - tick
    if len(detections) != len(frames):
        raise PixelwiseError(f"track_sequence: {len(detections)} frames of detections for {len(frames)} frames")
    detections = usable(detections, config.low_score, nms_iou)
    features = None
    if config.appearance_weight > 0:
        if embedder is None:
            raise PixelwiseError("appearance_weight > 0 needs an embedding run (--embedding RUN)")
        tick = time.perf_counter()
        features = embed_detections(embedder, frames, detections, crop_size)
        seconds["embed"] = time.perf_counter() - tick
    tick = time.perf_counter()
    rows = associate(detections, config, features)
    seconds["associate"] = time.perf_counter() - tick
    return {"rows": rows, "seconds": seconds}


def track_files(source: str | Path, detector: str | Path, out_dir: str | Path, embedding: str | Path | None = None,
                config: TrackerConfig | None = None, video: str = "gif", scale: int | None = None,
                nms_iou: float | None = NMS_IOU, device: str = "auto") -> dict:
    """`pixelwise track`: tracks of a folder of frames or a video file, written to out_dir as
    tracks.txt (MOTChallenge: frame, id, left, top, width, height, score, class, -1) and tracks.gif
    or tracks.mp4 (`video`), boxes coloured by id. Without `embedding`, appearance_weight must be 0 (SORT).
    scale: enlarge the drawn frames (default: to at least 384 px). Returns a summary (also tracks.json)."""
    from pixelwise.viz.tracks import draw_tracks, write_video
    config = config or TrackerConfig()
    if video not in ("gif", "mp4"):
        raise PixelwiseError(f"--video {video!r}: give gif or mp4")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PixelwiseError(f"--out {out_dir}: is a file; give a folder for the tracks")
    if embedding is None and config.appearance_weight > 0:
        raise PixelwiseError(f"appearance weight {config.appearance_weight} needs --embedding RUN; without one, "
                             "give --appearance-weight 0 (SORT)")
    dev = pick_device(device)
    frames, fps = read_frames(source)
    det_model, _ = load_task_run(detector, "detection", "--detector", dev)
    embedder, crop_size = None, 32
    if embedding is not None and config.appearance_weight > 0:
        embedder, emb_config = load_task_run(embedding, "embedding", "--embedding", dev)
        crop_size = int(emb_config["train_config"]["data"].get("crop_size", 32))
    result = track_sequence(frames, det_model, embedder, config, crop_size=crop_size, nms_iou=nms_iou)
    rows = result["rows"]
    mot = write_mot(out_dir / "tracks.txt", rows)
    scale = scale or max(1, -(-384 // max(frames.shape[2:])))
    pictures = [draw_tracks(f, *mot_frame_boxes(rows, t + 1)[::-1], scale) for t, f in enumerate(frames)]
    drawn = write_video(pictures, out_dir / f"tracks.{video}", fps or 10.0)
    total = sum(result["seconds"].values())
    summary = {"source": str(source), "frames": len(frames), "tracks": int(len(np.unique(rows[:, 1]))),
               "boxes": int(len(rows)), "fps": len(frames) / total if total > 0 else None,
               "seconds": result["seconds"], "tracker": asdict(config),
               "files": {"mot": str(mot), "video": str(drawn)}}
    write_json(out_dir / "tracks.json", summary)
    return summary
