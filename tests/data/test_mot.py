import numpy as np
import pytest
import torch

import pixelwise.data.fs_video as fs_video
from pixelwise.data.fs_video import FSVideo
from pixelwise.data.mot import MOT_COLUMNS, as_mot_rows, boxes_to_mot, read_mot, sequence_to_mot, write_mot
from pixelwise.errors import PixelwiseError
from pixelwise.metrics.tracking import tracking_metrics


def test_round_trip_is_exact_and_sorted(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(1, 30, 50), rng.integers(1, 9, 50), rng.uniform(-5, 120, (50, 2)),
                            rng.uniform(1, 40, (50, 2)), rng.random(50), rng.integers(1, 11, 50), rng.random(50)])
    path = write_mot(tmp_path / "seq" / "gt.txt", rows)
    back = read_mot(path)
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    assert back.shape == (50, len(MOT_COLUMNS)) and np.array_equal(back, rows[order])
    assert path.read_text().splitlines()[0].count(",") == 8


def test_short_and_tracker_layouts_get_defaults(tmp_path):
    short = as_mot_rows([[1, 2, 0, 0, 5, 6]])
    assert short.tolist() == [[1, 2, 0, 0, 5, 6, 1, -1, -1]]
    (tmp_path / "res.txt").write_text("1,3,10.5,20,5,6,0.9,-1,-1,-1\n\n2,3,11,20,5,6,0.8,-1,-1,-1\n")
    res = read_mot(tmp_path / "res.txt")
    assert res[:, 6].tolist() == [0.9, 0.8] and (res[:, 7:] == -1).all()
    assert read_mot(write_mot(tmp_path / "empty.txt", np.zeros((0, 9)))).shape == (0, 9)
    rows = boxes_to_mot(4, [1, 2], [[0, 0, 10, 20], [5, 5, 6, 9]], scores=[0.5, 1])
    assert rows[:, [0, 1, 4, 5, 6]].tolist() == [[4, 1, 10, 20, 0.5], [4, 2, 1, 4, 1]]


@pytest.mark.parametrize("line, message", [
    ("1,2,3\n", "6 to 10"),
    ("1,2,a,4,5,6\n", "not a row of numbers"),
    ("0,2,3,4,5,6\n", "frame must be an integer >= 1"),
    ("1,2.5,3,4,5,6\n", "id must be"),
    ("1,2,3,4,-5,6\n", "width, height >= 0"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text("1,1,0,0,5,5,1,1,1\n" + line)
    with pytest.raises(PixelwiseError, match=rf"bad\.txt:2: .*{message}"):
        read_mot(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PixelwiseError, match="nothere.txt"):
        read_mot(tmp_path / "nothere.txt")


def test_sequence_ground_truth(monkeypatch, tmp_path):
    def fake(split="train", data_dir=None, download=True):
        return torch.full((5, 28, 28), 200, dtype=torch.uint8), torch.arange(5) + 5
    monkeypatch.setattr(fs_video, "load_fashion_mnist", fake)
    item = FSVideo("test", root=tmp_path, size=48, n=2, frames=6)[0]
    gt = sequence_to_mot(item)
    visible = item["visibility"] > 0
    assert len(gt) == int(visible.sum())
    assert set(gt[:, 0]) <= set(range(1, 7)) and set(gt[:, 7]) <= set(range(6, 11))
    t, k = int(gt[0, 0]) - 1, int(gt[0, 1]) - 1
    x1, y1, x2, y2 = item["boxes"][t, k].tolist()
    assert gt[0, 2:6].tolist() == [x1, y1, x2 - x1, y2 - y1]
    assert len(sequence_to_mot(item, min_visibility=0.5)) == int((item["visibility"] > 0.5).sum())
    back = read_mot(write_mot(tmp_path / "gt.txt", gt))
    assert np.array_equal(back, gt)
    m = tracking_metrics(gt, back)
    assert m["HOTA"] == pytest.approx(1) and m["MOTA"] == 1 and m["IDF1"] == 1


def test_frame_boxes_are_xyxy():
    from pixelwise.data.mot import mot_frame_boxes
    rows = np.array([[1, 3, 10, 20, 5, 6], [2, 4, 0, 0, 1, 1], [1, 7, 1, 2, 3, 4]], float)
    ids, boxes = mot_frame_boxes(rows, 1)
    assert ids.tolist() == [3, 7] and boxes.tolist() == [[10, 20, 15, 26], [1, 2, 4, 6]]
    assert mot_frame_boxes(np.zeros((0, 9)), 1)[1].shape == (0, 4)
