from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.config import DataConfig
from pixelwise.data import build_dataset
from pixelwise.data.folders import ImageFolder, read_image
from pixelwise.errors import PixelwiseError


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def gray(value: int, side: int = 8) -> np.ndarray:
    return np.full((side, side), value, np.uint8)


def class_folder(root: Path, counts: dict[str, int]) -> Path:
    """root/CLASS/i.png; every pixel of an image of class k is 10 * (k + 1) + i, so an item tells its file."""
    for k, (name, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            save(root / name / f"{i}.png", gray(10 * (k + 1) + i))
    return root


def pixel(x: torch.Tensor) -> int:
    return round(float(x[0, 0, 0]) * 255)


def test_val_root_maps_sub_folders_onto_the_training_classes_by_name(tmp_path):
    class_folder(tmp_path / "train", {"cat": 1, "dog": 1, "fox": 1})
    save(tmp_path / "val/fox/a.png", gray(200))   # no cat, no dog: a test folder may lack classes
    cfg = DataConfig(name="folder", root=str(tmp_path / "train"), val_root=str(tmp_path / "val"), image_size=8)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.classes == test.classes == ["cat", "dog", "fox"]
    assert [y for _, y in test] == [2]            # fox is class 2 of training, not class 0 of its own folder
    assert not test.test_is_train


def test_a_test_class_unknown_to_training_names_it_and_the_known_ones(tmp_path):
    class_folder(tmp_path / "train", {"cat": 1, "dog": 1})
    class_folder(tmp_path / "val", {"cat": 1, "wolf": 1, "emu": 1})
    with pytest.raises(PixelwiseError, match=r"val: sub-folders \['emu', 'wolf'\] are not training classes "
                                             r"\['cat', 'dog'\]"):
        ImageFolder(tmp_path / "val", size=8, channels=1, classes=["cat", "dog"])
    cfg = DataConfig(name="folder", root=str(tmp_path / "train"), val_root=str(tmp_path / "val"))
    with pytest.raises(PixelwiseError, match="emu"):
        build_dataset(cfg, "test")


def test_without_val_root_a_seeded_fraction_of_each_class_is_held_out(tmp_path):
    root = class_folder(tmp_path / "imgs", {"a": 10, "b": 5, "c": 1})
    cfg = DataConfig(name="folder", root=str(root), image_size=8, val_fraction=0.2)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert train.classes == test.classes == ["a", "b", "c"]
    seen_train, seen_test = {pixel(x) for x, _ in train}, {pixel(x) for x, _ in test}
    assert not seen_train & seen_test and len(seen_train | seen_test) == 16   # disjoint, all images used
    held = {k: sum(y == k for _, y in test) for k in range(3)}
    assert held == {0: 2, 1: 1, 2: 0}             # 20% per class; a class of one image stays in training
    assert not train.test_is_train and not test.test_is_train
    torch.manual_seed(123)                         # the split does not depend on the global RNG
    again = build_dataset(cfg, "test")
    assert [pixel(x) for x, _ in again] == [pixel(x) for x, _ in test]


def test_val_fraction_zero_tests_on_the_training_images_and_says_so(tmp_path):
    root = class_folder(tmp_path / "imgs", {"a": 3, "b": 2})
    cfg = DataConfig(name="folder", root=str(root), image_size=8, val_fraction=0)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) == len(test) == 5 and test.test_is_train
    assert DataConfig(name="folder").val_fraction == 0.2
    for bad in (1.0, -0.1):
        with pytest.raises(PixelwiseError, match="data.val_fraction"):
            DataConfig(name="folder", val_fraction=bad)


def test_limit_keeps_the_dataset_attributes(tmp_path):
    root = class_folder(tmp_path / "imgs", {"a": 5, "b": 5})
    cfg = DataConfig(name="folder", root=str(root), image_size=8, train_limit=3, test_limit=1)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert len(train) == 3 and len(test) == 1 and train.classes == ["a", "b"] and not test.test_is_train


def test_16_bit_png_reads_scaled_by_65535(tmp_path):
    values = (np.arange(6 * 7, dtype=np.uint16).reshape(6, 7) * 1567)   # 0 .. 64247
    path = save(tmp_path / "g16.png", values)
    assert Image.open(path).mode == "I;16"
    expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
    gray_read = read_image(path, "L")
    assert gray_read.shape == (1, 6, 7)
    torch.testing.assert_close(gray_read[0], expected, atol=1e-4, rtol=0)
    rgb_read = read_image(path, "RGB")
    assert rgb_read.shape == (3, 6, 7)
    for c in range(3):
        torch.testing.assert_close(rgb_read[c], expected, atol=1e-4, rtol=0)
    as_int32 = save(tmp_path / "g32.tif", values.astype(np.int32))   # mode 'I', as older Pillow opened 16-bit PNGs
    assert Image.open(as_int32).mode == "I"
    torch.testing.assert_close(read_image(as_int32, "L")[0], expected, atol=1e-4, rtol=0)


def test_8_bit_modes_still_read_by_255(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = save(tmp_path / "rgb.png", rgb)
    torch.testing.assert_close(read_image(path, "RGB"), torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    gray_path = save(tmp_path / "l.png", rgb[..., 0])
    torch.testing.assert_close(read_image(gray_path, "L")[0], torch.from_numpy(rgb[..., 0]).float() / 255)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:8, :8] = 255                    # 8x8 blocks (JPEG's own) survive its rounding
    pixels[8:, 16:] = (0, 0, 255)
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6                        # orientation 6: shown rotated 90 degrees clockwise
    path = tmp_path / f"rotated.{suffix}"
    im.save(path, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if suffix == "jpg" else {}))
    got = read_image(path, "RGB")
    expected = torch.from_numpy(np.rot90(pixels, k=-1).copy()).permute(2, 0, 1).float() / 255
    assert got.shape == (3, 24, 16)
    torch.testing.assert_close(got, expected, atol=0.05 if suffix == "jpg" else 0, rtol=0)
