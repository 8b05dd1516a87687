import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from pixelwise.cli import main
from pixelwise.config import load_config
from pixelwise.engine.inference import segment_logits
from pixelwise.tasks import get_task
from pixelwise.tasks import train
from pixelwise.models import register_model
from pixelwise.models.registry import unregister_model

STAND_IN = "tiny_segmenter_for_tests"


class TinySegmenter(nn.Module):
    """A stand-in segmenter: per-pixel logits (N, K, H, W) from a 3x3 convolution 'backbone'."""

    def __init__(self, num_classes: int = 11, width: int = 8):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.fixture(autouse=True, scope="module")
def stand_in_registered():
    """Registered only while these tests run, so registry-wide tests elsewhere never see it."""
    register_model(STAND_IN, task="segmentation")(TinySegmenter)
    yield
    unregister_model(STAND_IN)


def tiny_config(tmp_path, out, *overrides):
    return load_config(None, [
        "name=tiny_seg", f"model={STAND_IN}", "data.name=fashion_scenes", f"data.root={tmp_path / 'cache'}",
        "data.canvas_size=32", "data.train_limit=32", "data.test_limit=8", "data.augment=scale_crop_flip",
        "data.crop_size=32", "batch_size=8", "epochs=3", "optim.name=adam", "optim.lr=0.01",
        "optim.backbone_lr_mult=0.25", "optim.weight_decay=1e-4", "schedule.name=cosine", "eval_batch_size=4",
        "checkpoint_every=2", "threads=1", f"out_dir={out}", *overrides])


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_train_eval_predict_on_tiny_fashion_scenes(tmp_path, capsys):
    run = tmp_path / "run"
    summary = train(tiny_config(tmp_path, run), progress=False)
    assert summary["status"] == "finished" and summary["step"] == 12
    test = summary["test"]
    assert set(test["per_class_iou"]) == {"background", "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
    # The report's numbers follow from its own confusion matrix (recomputed here with numpy).
    cm = np.array(json.loads((run / "confusion_matrix.json").read_text())["matrix"], dtype=float)
    assert cm.sum() == 8 * 32 * 32
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    iou = np.diag(cm)[union > 0] / union[union > 0]
    assert test["miou"] == pytest.approx(iou.mean())
    assert test["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert test["pixel_accuracy"] > 0.5   # the background alone is most pixels; a few steps find it
    assert (run / "per_class_iou.md").read_text().count("|") > 40
    assert json.loads((run / "per_class_iou.json").read_text())["miou"] == pytest.approx(test["miou"])
    assert (run / "confusion_matrix.png").stat().st_size > 1000

    assert main(["eval", str(run), "--quiet", "--json", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["miou"] == pytest.approx(test["miou"]) and evaluated["n"] == 8
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "the first 8: the run's data.test_limit" in printed
    for name in ("per_class_iou.md", "per_class_iou.json", "confusion_matrix.png"):
        assert (run / "eval" / name).is_file()
    # --limit overrides the run's data.test_limit: fewer scenes, or the whole test split (1000).
    assert main(["eval", str(run), "--quiet", "--limit", "3", "--out", str(tmp_path / "few"),
                 "--json", str(tmp_path / "few.json")]) == 0
    few = json.loads((tmp_path / "few.json").read_text())
    cm = np.array(json.loads((tmp_path / "few" / "confusion_matrix.json").read_text())["matrix"])
    assert few["n"] == 3 and cm.sum() == 3 * 32 * 32 and "data.test_limit" not in capsys.readouterr().out
    assert main(["eval", str(run), "--quiet", "--limit", "all", "--out", str(tmp_path / "all"),
                 "--json", str(tmp_path / "all.json")]) == 0
    assert json.loads((tmp_path / "all.json").read_text())["n"] == 1000
    for bad in ("0", "ten"):
        with pytest.raises(SystemExit):
            main(["eval", str(run), "--limit", bad])
        assert f"expected a positive number of images or 'all', got '{bad}'" in capsys.readouterr().err

    # Test-time augmentation from the command line scores what the Python API scores.
    from pixelwise.data.scenes import FashionScenes
    from pixelwise.engine.inference import evaluate_segmenter
    from pixelwise.tasks import load_run
    assert main(["eval", str(run), "--quiet", "--scales", "0.5", "1", "--flip", "--out", str(tmp_path / "tta"),
                 "--json", str(tmp_path / "tta.json")]) == 0
    assert main(["eval", str(run), "--quiet", "--scales", "1", "0"]) == 2
    assert "test-time scales must be positive numbers, got [1.0, 0.0]" in capsys.readouterr().err
    model, _ = load_run(run)
    test_set = FashionScenes("test", root=tmp_path / "cache", size=32, n=8)
    tta = evaluate_segmenter(model, test_set, 11, torch.device("cpu"), progress=False, scales=(0.5, 1), flip=True)
    assert json.loads((tmp_path / "tta.json").read_text())["miou"] == pytest.approx(tta.summary()["miou"])
    assert not torch.equal(tta.cm, evaluate_segmenter(model, test_set, 11, torch.device("cpu"), progress=False).cm)

    scene = FashionScenes("test", root=tmp_path / "cache", size=32, n=2)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"scene{i}.png")
        Image.fromarray((scene[i][0][0].numpy() * 255).round().astype(np.uint8)).save(paths[-1])
    out = tmp_path / "overlays"
    assert main(["predict", "--checkpoint", str(run), *map(str, paths), "--out", str(out), "--quiet"]) == 0
    overlay = np.asarray(Image.open(out / "scene0_overlay.png"))
    labels = np.asarray(Image.open(out / "scene1_labels.png"))
    assert overlay.shape == (32, 32, 3) and labels.shape == (32, 32) and labels.max() < 11
    assert main(["predict", "--checkpoint", str(run), str(paths[1]), "--out", str(out / "tta"), "--flip",
                 "--quiet"]) == 0
    from pixelwise.data.folders import read_image
    image = read_image(paths[1], "RGB")[None]
    flipped = segment_logits(model, image, flip=True).argmax(1)[0].numpy()
    assert (flipped != segment_logits(model, image).argmax(1)[0].numpy()).any()   # so the flag is seen
    np.testing.assert_array_equal(np.asarray(Image.open(out / "tta" / "scene1_labels.png")), flipped)


def test_resume_equals_uninterrupted(tmp_path):
    full = train(tiny_config(tmp_path, tmp_path / "full", "epochs=2"), progress=False)
    part = train(tiny_config(tmp_path, tmp_path / "part", "epochs=2"), stop_after=5, progress=False)
    assert part["status"] == "stopped"
    resumed = train(tiny_config(tmp_path, tmp_path / "part", "epochs=2"), resume=True, progress=False)
    assert resumed["step"] == full["step"] == 8
    assert_same_weights(load_file(str(tmp_path / "full/model.safetensors")),
                        load_file(str(tmp_path / "part/model.safetensors")))


def test_loss_ignores_the_ignore_label():
    cfg = load_config(None, [])
    logits = torch.randn(1, 3, 2, 2)
    target = torch.full((1, 2, 2), 255)
    target[0, 1, 0] = 2
    expected = F.cross_entropy(logits[:, :, 1, 0], torch.tensor([2]))
    torch.testing.assert_close(get_task("segmentation").output_loss(logits, target, cfg), expected)


def test_sliding_window_equals_whole_image_for_a_local_model():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 21, 30)
    # A 1x1 model sees no context, so overlapping windows (averaged) must equal the whole-image pass.
    pointwise = nn.Conv2d(3, 4, 1).eval()
    whole = segment_logits(pointwise, images)
    for window, stride in ((8, 3), ((16, 12), None), (7, 7)):
        torch.testing.assert_close(segment_logits(pointwise, images, window, stride), whole)
    # A window larger than the image pads with zeros, which is what the 3x3 convolution's padding sees.
    model = TinySegmenter(num_classes=4).eval()
    torch.testing.assert_close(segment_logits(model, images, 40), segment_logits(model, images))
    # With 3x3 context, tiles differ from the whole image only near tile borders.
    tiled = segment_logits(model, images, 12, 6)
    assert tiled.shape == (2, 4, 21, 30) and not torch.allclose(tiled, segment_logits(model, images))
