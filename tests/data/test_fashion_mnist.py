import gzip

import numpy as np
import pytest
import torch

from pixelwise.data import fashion_mnist as fm
from pixelwise.errors import PixelwiseError
from tests.conftest import write_idx


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_read_idx_round_trip_uint8(tmp_path, name):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = fm.read_idx(write_idx(tmp_path / name, a))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)


def test_read_idx_big_endian_int32(tmp_path):
    a = np.array([1, -2, 70000], dtype=">i4")
    out = fm.read_idx(write_idx(tmp_path / "labels", a))
    assert out.tolist() == [1, -2, 70000]
    assert out.dtype.byteorder in ("=", "<", "|")  # native order for torch


def test_read_idx_header_bytes_by_hand(tmp_path):
    # magic 0x00000801 (uint8, 1 dim), 3 items: the labels file layout of the official files.
    p = tmp_path / "hand"
    p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    assert fm.read_idx(p).tolist() == [7, 8, 9]


def test_truncated_idx_names_file_and_sizes(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    write_idx(p, np.zeros((4, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(PixelwiseError, match=r"train-images-idx3-ubyte: truncated or corrupt IDX.*\(4, 28, 28\)"):
        fm.read_idx(p)


def test_bad_magic_and_corrupt_gzip(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x89PNG not idx")
    with pytest.raises(PixelwiseError, match="x.idx: not an IDX file"):
        fm.read_idx(p)
    g = tmp_path / "y.idx.gz"
    g.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x05abcde")[:-8])
    with pytest.raises(PixelwiseError, match="y.idx.gz"):
        fm.read_idx(g)


def test_load_from_data_dir_and_env(fake_fmnist, monkeypatch):
    images, labels = fm.load_fashion_mnist("test", fake_fmnist, download=False)
    assert images.shape == (256, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.max() <= 9
    monkeypatch.setenv("PIXELWISE_DATA", str(fake_fmnist))
    assert fm.find_data_dir(None) == fake_fmnist


def test_missing_dataset_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELWISE_DATA", raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(PixelwiseError, match="Fashion-MNIST not found.*dataset-fashion-mnist"):
        fm.load_fashion_mnist("train", tmp_path / "empty", download=False)


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("PIXELWISE_DATA", raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nowhere")
    import torchvision.datasets

    class Offline:
        def __init__(self, *a, **k):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    with pytest.raises(PixelwiseError, match="download failed.*RuntimeError"):
        fm.load_fashion_mnist("train", tmp_path / "dl")


def test_mismatched_images_and_labels(fake_fmnist):
    write_idx(fake_fmnist / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    with pytest.raises(PixelwiseError, match=r"test images \(256, 28, 28\) and labels \(10,\)"):
        fm.load_fashion_mnist("test", fake_fmnist, download=False)


def test_dataset_items_in_unit_range(fake_fmnist):
    ds = fm.FashionMNIST("train", fake_fmnist, limit=10)
    x, y = ds[3]
    assert len(ds) == 10 and x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and isinstance(y, int)
    assert ds.classes[9] == "Ankle boot"
