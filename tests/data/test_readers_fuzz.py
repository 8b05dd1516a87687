"""Corrupted files (cut short, bytes changed, random bytes) are read or refused with PixelwiseError,
never another exception: the readers of images, masks, IDX files, checkpoints and run folders."""
import gzip
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from pixelwise.data.fashion_mnist import read_idx
from pixelwise.data.folders import read_image
from pixelwise.data.segmentation import read_mask
from pixelwise.engine.checkpoint import load_resume_state, read_run
from pixelwise.errors import PixelwiseError

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def encoded(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def with_exif(array: np.ndarray, fmt: str) -> bytes:
    im = Image.fromarray(array)
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    return bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def checkpoint_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"step": 3, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "note": "x", "rng": torch.zeros(4, dtype=torch.uint8)}, buf)
    return buf.getvalue()


def safetensors_bytes() -> bytes:
    from safetensors.torch import save
    return save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)})


_rng = np.random.default_rng(0)   # the valid files every corruption starts from
_RGB = _rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
_LABELS = _rng.integers(0, 4, (12, 10), dtype=np.uint8)
_palette = Image.fromarray(_LABELS, "L").convert("P")
_pbuf = io.BytesIO()
_palette.save(_pbuf, "PNG")
VALID = {
    "image": [encoded(_RGB, "PNG"), encoded(_RGB, "JPEG"), with_exif(_RGB, "JPEG"), with_exif(_RGB, "PNG"),
              encoded((_LABELS.astype(np.uint16) * 9000), "PNG"), encoded(_RGB, "BMP"), encoded(_RGB, "TIFF"),
              encoded(_RGB, "GIF"), encoded(_RGB, "WEBP")],
    "mask": [encoded(_LABELS, "PNG"), _pbuf.getvalue(), encoded(_LABELS.astype(np.uint16), "PNG"), with_exif(_LABELS, "PNG")],
    "idx": [idx_bytes(_LABELS), idx_bytes(_LABELS[0]), idx_bytes(_LABELS.astype(">i4"), 0x0C)],
    "idx.gz": [gzip.compress(idx_bytes(_LABELS), mtime=0)],
    "checkpoint": [checkpoint_bytes()],
    "weights": [safetensors_bytes()],
    "config": [json.dumps({"model": "cnn", "model_kwargs": {}, "classes": ["a", "b"]}).encode()],
}

# Inputs that once raised other exceptions, kept as examples: a PNG whose IHDR chunk claims length 0
# (Pillow: ValueError), a .gz whose deflate stream is corrupt (zlib.error).
_PNG = VALID["image"][0]
ZERO_IHDR = _PNG[:11] + b"\x00" + _PNG[12:]
BAD_DEFLATE = VALID["idx.gz"][0][:10] + bytes([VALID["idx.gz"][0][10] ^ 0xFF]) + VALID["idx.gz"][0][11:]


@st.composite
def corrupted(draw, kind: str) -> bytes:
    """A valid file of `kind` cut short or with bytes changed, or random bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "random"]))
    if how == "random":
        return draw(st.binary(max_size=600))
    valid = draw(st.sampled_from(VALID[kind]))
    if how == "truncate":
        return valid[:draw(st.integers(0, len(valid) - 1))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def read_or_refuse(read, *args):
    try:
        read(*args)
    except PixelwiseError:
        pass


@FUZZ
@given(data=corrupted("image"), suffix=st.sampled_from([".png", ".jpg", ".tif"]), mode=st.sampled_from(["RGB", "L"]))
@example(data=ZERO_IHDR, suffix=".png", mode="RGB")
def test_image_reader(tmp_path, data, suffix, mode):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    read_or_refuse(read_image, path, mode)


@FUZZ
@given(data=corrupted("mask"))
@example(data=ZERO_IHDR)
def test_mask_reader(tmp_path, data):
    path = tmp_path / "m.png"
    path.write_bytes(data)
    read_or_refuse(read_mask, path)


@FUZZ
@given(data=corrupted("idx"))
def test_idx_reader(tmp_path, data):
    path = tmp_path / "i-idx1-ubyte"
    path.write_bytes(data)
    read_or_refuse(read_idx, path)


@FUZZ
@given(data=corrupted("idx.gz") | corrupted("idx").map(lambda raw: gzip.compress(raw, mtime=0)))
@example(data=BAD_DEFLATE)
def test_gzipped_idx_reader(tmp_path, data):
    """Corrupt gzip streams, and intact gzip streams of corrupt IDX bytes."""
    path = tmp_path / "i-idx1-ubyte.gz"
    path.write_bytes(data)
    read_or_refuse(read_idx, path)


@FUZZ
@given(data=corrupted("checkpoint"))
def test_checkpoint_reader(tmp_path, data):
    path = tmp_path / "last.ckpt"
    path.write_bytes(data)
    read_or_refuse(load_resume_state, path)


@FUZZ
@given(weights=corrupted("weights"))
def test_run_reader_weights(tmp_path, weights):
    (tmp_path / "config.json").write_bytes(VALID["config"][0])
    (tmp_path / "model.safetensors").write_bytes(weights)
    read_or_refuse(read_run, tmp_path)


@FUZZ
@given(config=corrupted("config"))
def test_run_reader_config(tmp_path, config):
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "model.safetensors").write_bytes(VALID["weights"][0])
    read_or_refuse(read_run, tmp_path)


def float8_weights() -> bytes:
    header = json.dumps({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + bytes(4)


def test_run_reader_float8_weights(tmp_path):
    (tmp_path / "config.json").write_bytes(VALID["config"][0])
    (tmp_path / "model.safetensors").write_bytes(float8_weights())
    read_or_refuse(read_run, tmp_path)


@pytest.mark.parametrize("config", [b"1", b"[]", b"null", b'"x"', b'{"a": 1}'])
def test_run_reader_refuses_a_config_that_is_no_run_config(tmp_path, config):
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "model.safetensors").write_bytes(float8_weights())
    with pytest.raises(PixelwiseError, match="not the config.json of a run"):
        read_run(tmp_path)


@pytest.mark.parametrize("state", [[1, 2], torch.zeros(3), {"model": {}}])
def test_checkpoint_reader_refuses_what_is_no_checkpoint(tmp_path, state):
    torch.save(state, tmp_path / "last.ckpt")
    with pytest.raises(PixelwiseError, match="not a pixelwise checkpoint"):
        load_resume_state(tmp_path / "last.ckpt")
