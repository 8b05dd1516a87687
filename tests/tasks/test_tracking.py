"""The tracking API and `pixelwise track` with stand-in detector and embedding runs (no runs/ needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image
from scipy import ndimage

from pixelwise.cli import main
from pixelwise.data.mot import boxes_to_mot, read_mot
from pixelwise.engine.checkpoint import save_weights
from pixelwise.metrics.tracking import tracking_metrics
from pixelwise.models import create_model
from pixelwise.models.registry import register_model, unregister_model
from pixelwise.tasks.tracking import read_frames, track_sequence
from pixelwise.tracking.tracker import TrackerConfig


class BlobDetector(nn.Module):
    """Stand-in detector: the boxes (xyxy, pixel edges) of connected regions brighter than 0.5 (scipy)."""

    def __init__(self):
        super().__init__()
        self.threshold = nn.Parameter(torch.tensor(0.5), requires_grad=False)

    def forward(self, images: torch.Tensor) -> list[dict]:
        out = []
        for image in images:
            regions = ndimage.find_objects(ndimage.label((image[0] > self.threshold).cpu().numpy())[0])
            boxes = torch.tensor([[s[1].start, s[0].start, s[1].stop, s[0].stop] for s in regions],
                                 dtype=torch.float32).reshape(-1, 4)
            out.append({"boxes": boxes, "scores": torch.full((len(boxes),), 0.9), "labels": torch.ones(len(boxes), dtype=torch.int64)})
        return out


@pytest.fixture(scope="module")
def blob_model():
    register_model("blob_detector_test", task="detection", input_size=(3, 48, 48))(BlobDetector)
    yield "blob_detector_test"
    unregister_model("blob_detector_test")


def two_squares(frames: int = 12) -> tuple[torch.Tensor, np.ndarray]:
    """Frames (T, 3, 48, 64) of two 8 x 8 squares of different brightness moving toward and past each
    other on two close rows, and their ground-truth MOT rows (ids 1, 2)."""
    video = torch.zeros(frames, 3, 48, 64)
    gt = []
    for t in range(frames):
        boxes = np.array([[4 + 4 * t, 10, 12 + 4 * t, 18], [52 - 4 * t, 20, 60 - 4 * t, 28]], float)
        for (x1, y1, x2, y2), value in zip(boxes.astype(int), (0.7, 1.0)):
            video[t, :, y1:y2, x1:x2] = value
        gt.append(boxes_to_mot(t + 1, [1, 2], boxes))
    return video, np.concatenate(gt)


def write_frames(video: torch.Tensor, folder) -> None:
    folder.mkdir()
    for t, f in enumerate(video):
        Image.fromarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{t:03d}.png")


def test_track_sequence_follows_two_objects(blob_model):
    video, gt = two_squares()
    result = track_sequence(video, BlobDetector(), config=TrackerConfig(min_hits=1))
    m = tracking_metrics(gt, result["rows"])
    assert m["IDF1"] == 1 and m["IDSW"] == 0 and m["HOTA"] == pytest.approx(1)
    assert set(result["seconds"]) == {"detect", "embed", "associate"}
    assert np.allclose(result["rows"][:, 6], 0.9) and (result["rows"][:, 7] == 1).all()
    with pytest.raises(Exception, match="embedding run"):
        track_sequence(video, BlobDetector(), config=TrackerConfig(appearance_weight=0.5))


def test_track_command_writes_mot_text_and_a_gif(blob_model, tmp_path):
    video, gt = two_squares()
    write_frames(video, tmp_path / "frames")
    save_weights(BlobDetector(), tmp_path / "det", {"model": blob_model, "model_kwargs": {}, "classes": ["square"],
                                                    "task": "detection"})
    torch.manual_seed(0)
    embedder = create_model("embedding_resnet", dim=8, widths=[8], depths=[1]).eval()
    save_weights(embedder, tmp_path / "emb", {"model": "embedding_resnet", "classes": ["a"], "task": "embedding",
                                              "model_kwargs": {"dim": 8, "widths": [8], "depths": [1]},
                                              "train_config": {"data": {"crop_size": 16}}})
    out = tmp_path / "out"
    assert main(["track", str(tmp_path / "frames"), "--detector", str(tmp_path / "det"), "--embedding",
                 str(tmp_path / "emb"), "--min-hits", "1", "--out", str(out), "--json", str(tmp_path / "t.json"),
                 "--quiet"]) == 0
    rows = read_mot(out / "tracks.txt")
    assert tracking_metrics(gt, rows)["IDF1"] == 1
    with Image.open(out / "tracks.gif") as gif:
        assert gif.n_frames == len(video) and gif.size == (64 * 6, 48 * 6)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["tracks"] == 2 and summary["tracker"]["appearance_weight"] > 0

    # A video file in, an MP4 out: the same tracks.
    import cv2
    avi = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for f in video:
        writer.write((f.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype(np.uint8))
    writer.release()
    frames, fps = read_frames(avi)
    assert frames.shape == video.shape and fps == pytest.approx(10) and (frames - video).abs().mean() < 0.02
    assert main(["track", str(avi), "--detector", str(tmp_path / "det"), "--min-hits", "1", "--video", "mp4",
                 "--out", str(tmp_path / "out2"), "--quiet"]) == 0
    assert tracking_metrics(gt, read_mot(tmp_path / "out2" / "tracks.txt"))["IDF1"] == 1
    assert (tmp_path / "out2" / "tracks.mp4").stat().st_size > 0


def test_track_command_errors_name_the_problem(blob_model, tmp_path, capsys):
    save_weights(BlobDetector(), tmp_path / "det", {"model": blob_model, "model_kwargs": {}, "classes": ["square"],
                                                    "task": "detection"})
    (tmp_path / "empty").mkdir()
    video, _ = two_squares(3)
    write_frames(video, tmp_path / "frames")
    (tmp_path / "frames" / "004.png").write_bytes(b"not a png")
    cases = [([str(tmp_path / "empty")], "no image files"),
             ([str(tmp_path / "frames")], "004.png: unreadable"),
             ([str(tmp_path / "nothing")], "no such folder"),
             ([str(tmp_path / "det" / "config.json")], "not a video file")]
    for args, message in cases:
        assert main(["track", *args, "--detector", str(tmp_path / "det"), "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "frames" / "004.png").unlink()
    assert main(["track", str(tmp_path / "frames"), "--detector", str(tmp_path / "det"), "--embedding",
                 str(tmp_path / "det"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--embedding" in err and "is a detection run" in err
    assert main(["track", str(tmp_path / "frames"), "--detector", str(tmp_path / "det"), "--appearance-weight", "0.5",
                 "--out", str(tmp_path / "o")]) == 2
    assert "needs --embedding" in capsys.readouterr().err


def test_associate_leaves_out_empty_boxes_and_low_scores():
    from pixelwise.tasks.tracking import associate
    box = np.array([[10.0, 10, 20, 30]])
    frames = [{"boxes": np.r_[box + 2 * t, [[5, 5, 9, 5]], [[40, 40, 50, 50]]], "scores": np.array([0.9, 0.9, 0.2]),
               "labels": np.array([3, 4, 5])} for t in range(4)]
    frames.append({"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)})
    features = [np.eye(3)[: len(f["boxes"])] for f in frames]
    for config, feats in ((TrackerConfig(min_hits=1), None), (TrackerConfig(min_hits=1, appearance_weight=0.5), features)):
        rows = associate(frames, config, feats)
        assert rows[:, 0].tolist() == [1, 2, 3, 4] and (rows[:, 1] == 1).all() and (rows[:, 7] == 3).all()
        assert np.allclose(rows[:, 2:6], [[10 + 2 * t, 10 + 2 * t, 10, 20] for t in range(4)])


def test_usable_detections_drop_duplicates_across_classes():
    from pixelwise.tasks.tracking import usable
    frame = {"boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10], [3, 3, 3, 8]], float),
             "scores": np.array([0.3, 0.6, 0.5, 0.4, 0.9]), "labels": np.array([1, 2, 3, 4, 5])}
    # IoU([0, 0, 10, 10], [1, 0, 11, 10]) = 9 / 11 > 0.8; with [5, 0, 15, 10] only 1 / 3; [3, 3, 3, 8] is empty.
    kept = usable([frame], 0.35)[0]
    assert kept["labels"].tolist() == [2, 4] and kept["scores"].tolist() == [0.6, 0.4]
    assert usable([frame], 0.0, nms_iou=None)[0]["labels"].tolist() == [1, 2, 3, 4]
