"""`pixelwise stereo` on a pair of PNG files (SGBM and a trained run), the side-by-side form of
`pixelwise predict`, and the refusals of pairs that do not belong together."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.fs_stereo import FSStereo
from pixelwise.data.stereo_files import read_disparity_png
from pixelwise.metrics.stereo import disparity_errors
from pixelwise.tasks import get_task, load_task_config, predict_images, train
from pixelwise.tasks.stereo import padded_disparity

pytest.importorskip("cv2")


def save(view: torch.Tensor, path) -> str:
    Image.fromarray((view[0].numpy() * 255).round().astype(np.uint8)).save(path)   # gray, as rendered
    return str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A rendered textured FS-Stereo test pair (128 px) as two PNG files, and its ground truth."""
    tmp = tmp_path_factory.mktemp("pair")
    left, right, target = FSStereo("test", root=tmp, n=1, variant="textured")[0]
    return save(left, tmp / "left.png"), save(right, tmp / "right.png"), target


def test_sgbm_on_two_files_is_close_to_the_truth(pair, tmp_path):
    left, right, target = pair
    assert main(["stereo", left, right, "--method", "sgbm", "--focal", "128", "--baseline", "0.25",
                 "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    files = result["files"]
    assert set(files) == {"disparity_colour", "disparity_16bit", "matched", "depth_npy", "depth_mm"}
    disparity, stored = read_disparity_png(files["disparity_16bit"])
    assert stored.all() and 0.8 < result["density"] <= 1
    out = disparity_errors(torch.from_numpy(disparity)[None], target["disparity"], target["valid"], target["occluded"])
    assert out["bad3_noc"] < 0.15 and out["epe_noc"] < 1.5   # measured 0.05 and 0.7 px
    depth = np.load(files["depth_npy"])
    assert np.allclose(depth, 128 * 0.25 / np.maximum(disparity, 1e-9), rtol=1e-3)   # Z = f B / d, d at 1/256 px
    assert np.asarray(Image.open(files["disparity_colour"])).shape == (128, 128, 3)


def test_trained_run_on_files_of_any_size_and_side_by_side(tmp_path):
    task = get_task("stereo")
    cfg = load_task_config(None, ["threads=1", f"out_dir={tmp_path / 'run'}", "max_steps=1",
                                  *task.smoke_overrides(str(tmp_path / "data")), "data.train_limit=4", "data.test_limit=1"])
    train(cfg, progress=False)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 61, 3), dtype=np.uint8)   # sizes no stride divides
    Image.fromarray(image[:, 3:]).save(tmp_path / "l.png")
    Image.fromarray(image[:, :-3]).save(tmp_path / "r.png")
    assert main(["stereo", str(tmp_path / "l.png"), str(tmp_path / "r.png"), "--checkpoint", str(tmp_path / "run"),
                 "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json"), "--quiet", "--device", "cpu"]) == 0
    files = json.loads((tmp_path / "r.json").read_text())["files"]
    assert set(files) == {"disparity_colour", "disparity_16bit"}
    assert read_disparity_png(files["disparity_16bit"])[0].shape == (37, 58)

    # `pixelwise predict` reads one side-by-side image: the same maps for its halves.
    Image.fromarray(np.concatenate([image[:, 3:], image[:, :-3]], 1)).save(tmp_path / "sbs.png")
    result = predict_images([str(tmp_path / "sbs.png")], checkpoint=str(tmp_path / "run"), out_dir=tmp_path / "pred",
                            device="cpu")[0]
    assert np.array_equal(read_disparity_png(result["files"]["disparity_16bit"])[0],
                          read_disparity_png(files["disparity_16bit"])[0])


def test_padding_crops_back_to_the_input():
    seen = []

    def model(left, right):
        seen.append(tuple(left.shape))
        return left[:, :1] * 0 + torch.arange(left.shape[-1]).float()

    out = padded_disparity(model, torch.rand(1, 3, 37, 61), torch.rand(1, 3, 37, 61), 32)
    assert seen == [(1, 3, 64, 64)] and out.shape == (1, 1, 37, 61) and torch.equal(out[0, 0, 0], torch.arange(61.0))


def test_pairs_that_do_not_belong_together_are_refused(pair, tmp_path, capsys):
    left, right, _ = pair
    Image.open(right).crop((0, 0, 120, 128)).save(tmp_path / "narrow.png")
    Image.open(right).convert("RGB").save(tmp_path / "colour.png")
    for other, words in ((tmp_path / "narrow.png", "120x128"), (tmp_path / "colour.png", "channel")):
        assert main(["stereo", left, str(other), "--method", "sgbm", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err and left in err and str(other) in err
    assert main(["stereo", left, right, "--method", "sgbm", "--focal", "100", "--out", str(tmp_path / "o")]) == 2
    assert "--baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):   # --checkpoint or --method, exactly one
        main(["stereo", left, right, "--out", str(tmp_path / "o")])
