"""`pixelwise attack` on a run folder and on image files, and the panda-slide figure."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset
from torchvision.transforms.v2 import functional as TF

from pixelwise.attacks import fgsm
from pixelwise.cli.attack import parse_eps_list
from pixelwise.cli import main
from pixelwise.config import DataConfig
from pixelwise.data import build_dataset
from pixelwise.errors import PixelwiseError
from pixelwise.tasks import load_run, run_config
from pixelwise.attacks.figures import adversarial_example_figure
from tests.attacks.models import linear_classifier


def test_parse_eps_list():
    assert parse_eps_list("0, 2/255,0.5/255,0.1") == pytest.approx([0, 2 / 255, 0.5 / 255, 0.1])
    with pytest.raises(PixelwiseError, match="'x/255'"):
        parse_eps_list("1/255,x/255")
    with pytest.raises(PixelwiseError, match="outside"):
        parse_eps_list("2")


def test_attack_run_folder(adv_run, data_dir, tmp_path):
    out = tmp_path / "attack"
    code = main(["attack", str(adv_run), "--attack", "fgsm", "--eps", "0,0.2", "--limit", "64",
                 "--data-dir", str(data_dir), "--out", str(out), "--json", str(tmp_path / "r.json"), "--quiet"])
    assert code == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["eps"] for r in rows] == [0, 0.2] and rows[0]["n"] == 64
    model, config = load_run(adv_run)
    data = run_config(config).data.model_copy(update={"root": str(data_dir)})
    images, labels = zip(*Subset(build_dataset(data, "test"), range(64)))
    x, y = torch.stack(images), torch.tensor(labels)
    assert rows[0]["accuracy"] == pytest.approx((model(x).argmax(1) == y).float().mean().item())
    assert rows[1]["accuracy"] == pytest.approx((model(fgsm(model, x, y, 0.2)).argmax(1) == y).float().mean().item())
    assert {p.name for p in out.iterdir()} == {"robustness_fgsm_linf.json", "robustness_fgsm_linf.md",
                                               "robustness_fgsm_linf.png"}


@pytest.fixture
def tiny_pretrained(monkeypatch):
    model = linear_classifier(in_chans=3, side=8, classes=3, seed=1)
    classes = ["apple", "banana", "cherry"]
    preprocess = lambda image: TF.resize(image, [8, 8], antialias=True)  # noqa: E731
    monkeypatch.setattr("pixelwise.models.pretrained.load_pretrained_classifier",
                        lambda name: (model, classes, preprocess))
    return model, classes, preprocess


def test_attack_image_files_finds_the_smallest_flipping_eps(tiny_pretrained, tmp_path, capsys):
    model, classes, preprocess = tiny_pretrained
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    eps_list = [0.01, 0.05, 0.2, 0.5]
    code = main(["attack", "--model", "tiny", *map(str, paths), "--attack", "fgsm", "--eps", "0.01,0.05,0.2,0.5",
                 "--out", str(tmp_path / "figs"), "--json", str(tmp_path / "r.json")])
    assert code == 0 and "im0.png" in capsys.readouterr().out
    results = json.loads((tmp_path / "r.json").read_text())["images"]
    assert any(r["eps"] is not None for r in results)
    for path, r in zip(paths, results):
        x = preprocess(TF.to_dtype(TF.pil_to_tensor(Image.open(path)), torch.float32, scale=True))[None]
        clean = model(x).argmax(1)
        flips = [e for e in eps_list if model(fgsm(model, x, clean, e)).argmax(1) != clean]
        assert r["eps"] == (flips[0] if flips else None)
        assert r["clean"] == classes[clean.item()]
        assert (tmp_path / "figs" / f"{path.stem}_fgsm.png").is_file()


def test_attack_errors_are_one_line(tmp_path, capsys):
    assert main(["attack", str(tmp_path), str(tmp_path)]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["attack", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_panda_figure_reports_the_three_predictions(tmp_path):
    model = linear_classifier(in_chans=3, side=8, classes=3, seed=2)
    image = torch.rand(3, 8, 8)
    info = adversarial_example_figure(model, image, ["a", "b", "c"], 0.3, tmp_path / "panda.png")
    assert (tmp_path / "panda.png").stat().st_size > 1000
    x = image[None]
    clean = model(x).argmax(1)
    grad_sign_image = (torch.autograd.functional.jacobian(
        lambda z: torch.nn.functional.cross_entropy(model(z), clean), x).sign() + 1) / 2
    probs = model(torch.cat([x, grad_sign_image, fgsm(model, x, clean, 0.3)])).softmax(1)
    for key, p in zip(("image", "gradient_sign", "adversarial"), probs):
        assert info[key]["index"] == p.argmax().item()
        assert info[key]["confidence"] == pytest.approx(p.max().item(), rel=1e-5)
