"""FS-Forecast clips and frames against the FS-Video sequences they are cut from."""
import pytest
import torch

import pixelwise.data.fs_video as fs_video
from pixelwise.config import DataConfig
from pixelwise.data import build_dataset
from pixelwise.data.fs_forecast import (FSForecast, FSForecastFrames, clip_frames, draw_anchor, valid_anchors)
from pixelwise.data.fs_video import FSVideo
from pixelwise.errors import PixelwiseError
from tests.data.conftest import solid_fashion_mnist


@pytest.fixture
def solid_items(monkeypatch):
    monkeypatch.setattr(fs_video, "load_fashion_mnist", solid_fashion_mnist)


def test_clip_indices_follow_the_protocol():
    assert clip_frames(20) == [11, 14, 17, 20, 23, 29]      # t-9, t-6, t-3, t; t+3, t+9
    assert valid_anchors(30) == range(9, 21)
    with pytest.raises(PixelwiseError, match="too short"):
        valid_anchors(18)
    draws = [draw_anchor(7, i) for i in range(400)]
    assert {t for t, _ in draws} == set(range(9, 21)) and {m for _, m in draws} == {False, True}
    assert draws == [draw_anchor(7, i) for i in range(400)]          # a function of (seed, index)
    assert draws != [draw_anchor(8, i) for i in range(400)]


def test_test_clips_are_the_frames_of_the_sequences(solid_items, tmp_path):
    video = FSVideo("test", root=tmp_path, size=32, n=3)
    clips = FSForecast("test", root=tmp_path, size=32, n=3)
    assert len(clips) == 3
    for i in range(3):
        item, seq = clips[i], video[i]
        frames = [11, 14, 17, 20, 23, 29]
        assert int(item["t"]) == 20 and int(item["sequence"]) == i
        assert torch.equal(item["frames"], seq["images"][frames])
        assert torch.equal(item["masks"], seq["masks"][frames])
    with pytest.raises(PixelwiseError, match="test_t=25"):
        FSForecast("test", root=tmp_path, size=32, n=3, test_t=25)


def test_training_clips_are_drawn_per_epoch_and_mirrored_whole(solid_items, tmp_path):
    video = FSVideo("train", root=tmp_path, size=32, n=6)
    clips = FSForecast("train", root=tmp_path, size=32, n=6, mirror=True)
    clips.set_epoch(0, seed=3)
    first = [clips.anchor(i) for i in range(6)]
    clips.set_epoch(1, seed=3)
    assert [clips.anchor(i) for i in range(6)] != first
    clips.set_epoch(0, seed=3)
    assert [clips.anchor(i) for i in range(6)] == first           # resumed runs draw the same clips
    for i, (t, mirrored) in enumerate(first):
        frames = clip_frames(t)
        expected = video[i]["images"][frames]
        assert torch.equal(clips[i]["frames"], expected.flip(-1) if mirrored else expected)
        assert int(clips[i]["t"]) == t
    plain = FSForecast("train", root=tmp_path, size=32, n=6, mirror=False)
    plain.set_epoch(0, seed=3)
    assert all(torch.equal(plain[i]["masks"], video[i]["masks"][clip_frames(t)]) for i, (t, _) in enumerate(first))


def test_single_frames_for_the_segmenter(solid_items, tmp_path):
    video = FSVideo("train", root=tmp_path, size=32, n=2)
    frames = build_dataset(DataConfig(name="fs_forecast", root=str(tmp_path), canvas_size=32, train_limit=2), "train")
    assert isinstance(frames, FSForecastFrames) and len(frames) == 2 * 30
    image, mask = frames[30 + 7]                                  # sequence 1, frame 7
    assert torch.equal(image, video[1]["images"][7]) and torch.equal(mask, video[1]["masks"][7])
    test = build_dataset(DataConfig(name="fs_forecast", root=str(tmp_path), canvas_size=32, test_limit=2), "test")
    assert test.index == [(0, 23), (0, 29), (1, 23), (1, 29)]     # the oracle's frames: t+3, t+9 of t = 20
    assert test.classes == video.classes
