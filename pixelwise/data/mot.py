"""MOTChallenge text files: one comma-separated row per box, `frame,id,left,top,width,height,conf,class,visibility`.

Rows are held as (N, 9) float64 arrays with those columns (MOT_COLUMNS). Frames count from 1, as in
MOTChallenge; ids are positive integers. Box coordinates are pixels in the frame of our xyxy boxes
(column 0 is the left edge of the first pixel); MOTChallenge's own ground truth counts pixels from 1,
a shift no IoU-based metric notices. Tracker outputs in MOTChallenge's 10-column layout
(`...,conf,x,y,z`) are read too; their class and visibility become -1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pixelwise.errors import PixelwiseError

MOT_COLUMNS = ("frame", "id", "left", "top", "width", "height", "conf", "class", "visibility")
_DEFAULTS = (1.0, -1.0, -1.0)   # conf, class, visibility when a row leaves them out


def as_mot_rows(rows, where: str = "rows") -> np.ndarray:
    """`rows` (N, 6..9) array-like as (N, 9) float64, missing conf = 1, class = -1, visibility = -1.

    Raises PixelwiseError naming `where` for a bad shape, non-integer or non-positive frames or ids,
    negative sizes or non-finite values.
    """
    a = np.asarray(rows, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 9))
    if a.ndim != 2 or not 6 <= a.shape[1] <= 9:
        raise PixelwiseError(f"{where}: MOT rows must have shape (N, 6..9) with columns "
                             f"{','.join(MOT_COLUMNS)}; got shape {a.shape}")
    if a.shape[1] < 9:
        a = np.concatenate([a, np.tile(_DEFAULTS[a.shape[1] - 6:], (len(a), 1))], axis=1)
    for k, name in ((0, "frame"), (1, "id")):
        bad = (a[:, k] < 1) | (a[:, k] != np.round(a[:, k]))
        if bad.any():
            r = int(np.argmax(bad))
            raise PixelwiseError(f"{where}: row {r}: {name} must be an integer >= 1 (frames count from 1), "
                                 f"got {a[r, k]!r}")
    bad = ~np.isfinite(a).all(axis=1) | (a[:, 4] < 0) | (a[:, 5] < 0)
    if bad.any():
        r = int(np.argmax(bad))
        raise PixelwiseError(f"{where}: row {r}: values must be finite and width, height >= 0, got {a[r].tolist()}")
    return a


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))   # repr round-trips exactly


def write_mot(path: str | Path, rows) -> Path:
    """Write `rows` ((N, 6..9), see `as_mot_rows`) to `path`, sorted by frame then id; returns the path."""
    path = Path(path)
    a = as_mot_rows(rows, str(path))
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(_number(v) for v in row) + "\n" for row in a))
    return path


def read_mot(path: str | Path) -> np.ndarray:
    """(N, 9) float64 rows of a MOTChallenge file (6 to 10 columns; blank lines skipped).

    Raises PixelwiseError naming the file and line of a malformed row.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PixelwiseError(f"{path}: cannot read MOT file ({e})") from e
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise PixelwiseError(f"{path}:{lineno}: not a row of numbers: {line.strip()!r}; expected "
                                 f"{','.join(MOT_COLUMNS)}") from None
        if not 6 <= len(values) <= 10:
            raise PixelwiseError(f"{path}:{lineno}: expected 6 to 10 comma-separated values "
                                 f"({','.join(MOT_COLUMNS)}), got {len(values)}: {line.strip()!r}")
        if len(values) == 10:   # MOTChallenge tracker output: conf, then world x, y, z
            values = values[:7] + [-1.0, -1.0]
        try:
            rows.append(as_mot_rows([values], f"{path}:{lineno}")[0])
        except PixelwiseError as e:
            raise PixelwiseError(str(e).replace(": row 0", "")) from None
    return np.stack(rows) if rows else np.zeros((0, 9))


def sequence_to_mot(sequence: dict[str, torch.Tensor], min_visibility: float = 0.0) -> np.ndarray:
    """Ground-truth rows (N, 9) of one FSVideo item: every track in every frame where it is visible.

    conf = 1, class = the garment's label (1-10), visibility = visible / full garment pixels. Tracks
    whose visibility is at most `min_visibility` in a frame are left out of that frame.
    """
    boxes = sequence["boxes"].double().numpy()              # (T, K, 4) xyxy
    visibility = sequence["visibility"].double().numpy()    # (T, K)
    labels, ids = sequence["labels"].numpy(), sequence["ids"].numpy()
    t, k = np.nonzero((visibility > min_visibility) & (visibility > 0))
    b = boxes[t, k]
    return np.column_stack([t + 1, ids[k], b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1],
                            np.ones(len(t)), labels[k], visibility[t, k]]).reshape(-1, 9).astype(np.float64)


def boxes_to_mot(frame: int, ids, boxes, scores=None, labels=None) -> np.ndarray:
    """Rows (M, 9) for one frame (1-based) from ids (M,), boxes (M, 4) xyxy px, optional scores and labels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    m = len(boxes)
    scores = np.ones(m) if scores is None else np.asarray(scores, dtype=np.float64).reshape(m)
    labels = -np.ones(m) if labels is None else np.asarray(labels, dtype=np.float64).reshape(m)
    rows = np.column_stack([np.full(m, frame), np.asarray(ids, dtype=np.float64).reshape(m), boxes[:, :2],
                            boxes[:, 2:] - boxes[:, :2], scores, labels, -np.ones(m)])
    return as_mot_rows(rows, f"frame {frame}")


def mot_frame_boxes(rows, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """ids (M,) and boxes (M, 4) xyxy px of the rows of one frame (1-based) of MOT rows (N, >= 6)."""
    rows = as_mot_rows(rows)
    r = rows[rows[:, 0] == frame]
    return r[:, 1].astype(np.int64), np.c_[r[:, 2:4], r[:, 2:4] + r[:, 4:6]]
