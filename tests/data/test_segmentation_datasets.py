from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from pixelwise.config import DataConfig
from pixelwise.data import build_dataset
from pixelwise.data.segmentation import ADE20K_CLASSES, ade20k, camvid, cityscapes, mask_folder, voc
from pixelwise.errors import PixelwiseError


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3))


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    gt = np.array([[7, 8, 26, 0], [33, 6, 24, 255]])
    save(tmp_path / "leftImg8bit/val/bonn/bonn_000000_000019_leftImg8bit.png", rgb(2, 4))
    save(tmp_path / "gtFine/val/bonn/bonn_000000_000019_gtFine_labelIds.png", gt)
    ds = cityscapes(tmp_path, "val")
    image, mask = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 2, 4)
    assert mask.tolist() == [[0, 1, 13, 255], [18, 255, 11, 255]]
    assert len(ds.classes) == 19


def test_camvid_voc_ade20k_and_mask_folder_layouts(tmp_path):
    save(tmp_path / "camvid/test/a.png", rgb(2, 3))
    save(tmp_path / "camvid/testannot/a.png", np.array([[0, 10, 11], [3, 4, 5]]))
    assert camvid(tmp_path / "camvid", "test")[0][1].tolist() == [[0, 10, 255], [3, 4, 5]]

    voc_root = tmp_path / "VOCdevkit/VOC2012"
    (voc_root / "ImageSets/Segmentation").mkdir(parents=True)
    (voc_root / "ImageSets/Segmentation/val.txt").write_text("2007_000033\n")
    save(voc_root / "JPEGImages/2007_000033.jpg", rgb(2, 3))
    pal = Image.new("P", (3, 2))   # VOC masks are palette PNGs: the indices are the labels
    pal.putpalette([0, 0, 0, 128, 0, 0] + [7] * 762)
    pal.putdata([0, 1, 20, 255, 15, 0])
    (voc_root / "SegmentationClass").mkdir()
    pal.save(voc_root / "SegmentationClass/2007_000033.png")
    ds = voc(tmp_path / "VOCdevkit", "val")
    assert len(ds.classes) == 21 and ds[0][1].tolist() == [[0, 1, 20], [255, 15, 0]]

    save(tmp_path / "ade/images/validation/ADE_val_1.jpg", rgb(2, 3))
    save(tmp_path / "ade/annotations/validation/ADE_val_1.png", np.array([[0, 1, 150], [2, 0, 75]]))
    ds = ade20k(tmp_path / "ade", "val")
    assert ds[0][1].tolist() == [[255, 0, 149], [1, 255, 74]] and len(ADE20K_CLASSES) == 150

    save(tmp_path / "pairs/images/x.jpg", rgb(3, 3))
    save(tmp_path / "pairs/masks/x.png", np.array([[0, 1, 2], [2, 1, 255], [0, 0, 0]]))
    (tmp_path / "pairs/classes.txt").write_text("sky\nroad\ncar\n")
    ds = mask_folder(tmp_path / "pairs")
    assert ds.classes == ["sky", "road", "car"] and ds[0][1][1].tolist() == [2, 1, 255]


def test_build_dataset_names_and_augmentation(tmp_path):
    for i in range(3):
        save(tmp_path / f"pairs/images/{i}.png", rgb(20, 30, i))
        save(tmp_path / f"pairs/masks/{i}.png", np.full((20, 30), i))
    (tmp_path / "pairs/classes.txt").write_text("a\nb\nc\n")
    cfg = DataConfig(name="masks", root=str(tmp_path / "pairs"), augment="scale_crop_flip", crop_size=16,
                     train_limit=2)
    train = build_dataset(cfg, "train")
    assert len(train) == 2 and train[1][0].shape == (3, 16, 16)
    train.set_epoch(1, seed=0)
    first = train[1][1]
    assert torch.equal(first, train[1][1])   # the draws of one (seed, epoch, index) repeat exactly
    assert set(first.unique().tolist()) <= {1, 255}
    test = build_dataset(cfg, "test")
    assert len(test) == 3 and test[2][0].shape == (3, 20, 30)
    scenes = build_dataset(DataConfig(name="fashion_scenes", root=str(tmp_path / "fs"), canvas_size=32,
                                      test_limit=3, variant="noise"), "test")
    assert len(scenes) == 3 and scenes.shift == "noise" and scenes[0][0].shape == (3, 32, 32)
    with pytest.raises(PixelwiseError, match="data.root"):
        build_dataset(DataConfig(name="cityscapes"), "train")
    with pytest.raises(PixelwiseError, match="unknown dataset"):
        build_dataset(DataConfig(name="kitti"), "train")


def test_bad_inputs_name_the_file(tmp_path):
    root = tmp_path / "pairs"
    (root).mkdir()
    (root / "classes.txt").write_text("a\nb\n")
    save(root / "images/small.png", rgb(4, 4))
    save(root / "masks/small.png", np.zeros((5, 4)))
    save(root / "images/values.png", rgb(4, 4))
    save(root / "masks/values.png", np.array([[0, 1, 2, 255]] * 4))
    save(root / "masks/broken.png", np.zeros((4, 4)))
    (root / "images/broken.png").write_bytes(b"not a png at all")
    save(root / "images/colour.png", rgb(4, 4))
    save(root / "masks/colour.png", rgb(4, 4))
    ds = mask_folder(root)
    index = {p.stem: i for i, (p, _) in enumerate(ds.pairs)}
    with pytest.raises(PixelwiseError, match=r"masks/small\.png.*4x5 px.*4x4 px"):
        ds[index["small"]]
    with pytest.raises(PixelwiseError, match=r"masks/values\.png: mask values \[2\]"):
        ds[index["values"]]
    with pytest.raises(PixelwiseError, match=r"images/broken\.png: unreadable"):
        ds[index["broken"]]
    with pytest.raises(PixelwiseError, match=r"masks/colour\.png: colour-coded"):
        ds[index["colour"]]
    (root / "masks/values.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(PixelwiseError, match=r"masks/values\.png: unreadable"):
        ds[index["values"]]
    save(root / "images/orphan.png", rgb(4, 4))
    with pytest.raises(PixelwiseError, match=r"images/orphan\.png: has no mask"):
        mask_folder(root)
    with pytest.raises(PixelwiseError, match="leftImg8bit"):
        cityscapes(tmp_path / "nowhere", "train")


def test_cityscapes_palette_and_overlays():
    from cityscapesscripts.helpers.labels import trainId2label

    from pixelwise.data.segmentation import CITYSCAPES_CLASSES
    from pixelwise.viz.overlays import bit_palette, colorize, overlay, palette_for
    palette = palette_for(CITYSCAPES_CLASSES)
    assert [tuple(c) for c in palette] == [trainId2label[t].color for t in range(19)]
    assert bit_palette(3).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]   # Pascal VOC's first colours
    mask = torch.tensor([[0, 13], [255, 18]])
    assert colorize(mask, palette).tolist() == [[[128, 64, 128], [0, 0, 142]], [[0, 0, 0], [119, 11, 32]]]
    blended = overlay(torch.ones(1, 2, 2), mask, palette, alpha=0.5)
    assert blended.dtype == np.uint8 and blended[0, 0].tolist() == [192, 160, 192]


def test_training_images_of_different_sizes_without_crops_are_refused_at_build(tmp_path):
    root = tmp_path / "pairs"
    (root / "classes.txt").parent.mkdir(parents=True)
    (root / "classes.txt").write_text("a\nb\n")
    for name, (h, w) in {"a": (6, 8), "b": (6, 8), "c": (7, 8)}.items():
        save(root / f"images/{name}.png", rgb(h, w))
        save(root / f"masks/{name}.png", np.zeros((h, w)))
    cfg = DataConfig(name="masks", root=str(root))
    with pytest.raises(PixelwiseError, match=r"images/a\.png is 8x6 px but .*images/c\.png is 8x7 px.*"
                                             r"data\.augment: scale_crop_flip.*data\.crop_size"):
        build_dataset(cfg, "train")
    assert len(build_dataset(cfg, "test")) == 3        # evaluation takes images one at a time
    assert len(build_dataset(DataConfig(name="masks", root=str(root), train_limit=2), "train")) == 2
    cropped = build_dataset(DataConfig(name="masks", root=str(root), augment="scale_crop_flip", crop_size=8), "train")
    assert {tuple(cropped[i][0].shape) for i in range(3)} == {(3, 8, 8)}


def test_size_check_reads_headers_and_follows_exif_orientation(tmp_path, monkeypatch):
    root = tmp_path / "pairs"
    root.mkdir()
    (root / "classes.txt").write_text("a\n")
    save(root / "images/plain.png", rgb(6, 8))
    save(root / "masks/plain.png", np.zeros((6, 8)))
    im = Image.fromarray(rgb(6, 8).astype(np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6            # stored 8x6, shown (and read) 6x8
    im.save(root / "images/turned.png", exif=exif.tobytes())
    save(root / "masks/turned.png", np.zeros((8, 6)))
    calls = []
    monkeypatch.setattr(Image.Image, "load", lambda self: calls.append(self) or None)
    with pytest.raises(PixelwiseError, match=r"turned\.png is 6x8 px"):
        build_dataset(DataConfig(name="masks", root=str(root)), "train")
    assert not calls                      # sizes come from the headers, no image was decoded
