"""KITTI's 16-bit disparity PNGs and millimetre depth PNGs, read back by OpenCV (an independent reader)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelwise.data.stereo_files import (depth_from_disparity, image_channels, read_disparity_png,
                                         write_depth_png, write_disparity_png)
from pixelwise.errors import PixelwiseError

cv2 = pytest.importorskip("cv2")


def test_disparity_png_is_kittis_x256_uint16(tmp_path):
    d = np.array([[0.0, 1 / 256, 12.34567], [31.999, 300.0, np.nan]])
    valid = np.array([[True, True, True], [False, True, True]])
    path = write_disparity_png(d, tmp_path / "d.png", valid)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (2, 3)
    # valid 0 px is stored as 1 (not "missing"), 300 px saturates, invalid and NaN are 0
    assert raw.tolist() == [[1, 1, round(12.34567 * 256)], [0, 65535, 0]]
    back, ok = read_disparity_png(path)
    assert ok.tolist() == [[True, True, True], [False, True, False]]
    assert abs(back[0, 2] - 12.34567) <= 1 / 512 and back.dtype == np.float32


def test_depth_from_disparity_and_millimetre_png(tmp_path):
    depth = depth_from_disparity(np.array([[8.0, 0.0], [32.0, 0.1]]), focal=128.0, baseline=0.25)
    assert depth[0, 0] == pytest.approx(4.0) and np.isinf(depth[0, 1]) and depth[1, 0] == pytest.approx(1.0)
    raw = cv2.imread(str(write_depth_png(depth, tmp_path / "z.png")), cv2.IMREAD_UNCHANGED)
    assert raw.tolist() == [[4000, 0], [1000, 0]]   # 320 m does not fit 16 bits of mm: none
    with pytest.raises(PixelwiseError, match="> 0"):
        depth_from_disparity(depth, focal=0.0, baseline=0.25)


def test_channels_and_bad_files(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(tmp_path / "rgba.png")
    assert image_channels(tmp_path / "g.png") == 1 and image_channels(tmp_path / "rgba.png") == 3
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(PixelwiseError, match="bad.png"):
        read_disparity_png(tmp_path / "bad.png")
    with pytest.raises(PixelwiseError, match="rgba.png"):
        read_disparity_png(tmp_path / "rgba.png")
