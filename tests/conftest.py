"""Shared fixtures: small hand-made datasets so that tests need no downloads."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write `array` (uint8 or big-endian int32) as an IDX file; gzipped when the name ends in .gz."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    raw = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_pattern_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose class k (0..9) is a bright horizontal band at rows 2k..2k+5, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 2:2 * k + 6, 4:24] = 200 + rng.integers(0, 55)
    return images, labels


@pytest.fixture
def fake_fmnist(tmp_path: Path) -> Path:
    """A folder with Fashion-MNIST-format IDX files (train 512, test 256) of learnable patterns."""
    folder = tmp_path / "fmnist"
    folder.mkdir()
    for split, n, seed in (("train", 512, 0), ("t10k", 256, 1)):
        images, labels = make_pattern_images(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder
