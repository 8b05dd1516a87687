import json

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from tests.conftest import make_pattern_images


@pytest.fixture
def trained_run(fake_fmnist, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "--quiet", str(_empty(tmp_path)), "--json", str(tmp_path / "train.json"),
               "name=cli", "model=linear", f"data.root={fake_fmnist}", "epochs=3", "optim.name=adam",
               "optim.lr=0.01", f"out_dir={out}"])
    assert rc == 0
    return out


def _empty(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("{}\n")
    return p


def test_train_predict_eval_with_json(trained_run, tmp_path, capsys):
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["status"] == "finished" and summary["test"]["top1"] > 0.9
    images, labels = make_pattern_images(3, seed=7)
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(im).save(paths[-1])
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(trained_run), *map(str, paths), "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out
    preds = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert len(preds) == 3 and all(len(p["top"]) == 5 for p in preds)
    from pixelwise.data.fashion_mnist import CLASSES
    assert [p["top"][0]["class"] for p in preds] == [CLASSES[k] for k in labels]
    assert abs(sum(c["probability"] for c in preds[0]["top"]) - 1) < 0.05
    assert CLASSES[labels[0]] in printed and "%" in printed
    assert main(["eval", str(trained_run), "--json", str(tmp_path / "e.json"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert metrics["top1"] == pytest.approx(summary["test"]["top1"]) and metrics["n"] == 256
    assert (trained_run / "eval" / "confusion_matrix.png").stat().st_size > 1000


def test_bad_inputs_give_one_line_errors(trained_run, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["predict", "--checkpoint", str(trained_run), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.png: unreadable or corrupt image" in err and len(err.splitlines()) == 1
    assert main(["predict", "--checkpoint", str(tmp_path), str(bad)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["train", str(_empty(tmp_path)), "optim.lrr=1"]) == 2
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err
    assert main(["train", str(_empty(tmp_path)), "model=nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    # Test-time augmentation is for segmenters: a classifier run refuses it instead of ignoring it.
    assert main(["eval", str(trained_run), "--flip"]) == 2
    assert "apply to segmentation runs" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(trained_run), str(bad), "--scales", "1", "0.5"]) == 2
    assert "apply to segmentation runs only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(_empty(tmp_path)), "--bogus"])


def test_eval_predict_attack_take_a_device(trained_run, tmp_path, capsys, monkeypatch):
    images, _ = make_pattern_images(1, seed=3)
    Image.fromarray(images[0]).save(tmp_path / "one.png")
    assert main(["eval", str(trained_run), "--device", "cpu", "--quiet"]) == 0
    assert main(["predict", "--checkpoint", str(trained_run), str(tmp_path / "one.png"), "--device", "cpu"]) == 0
    assert main(["attack", str(trained_run), "--device", "cpu", "--eps", "0,0.1", "--steps", "2", "--limit", "8",
                 "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    for argv in (["eval", str(trained_run)], ["predict", "--checkpoint", str(trained_run), str(tmp_path / "one.png")],
                 ["attack", str(trained_run), "--eps", "0"]):
        assert main([*argv, "--device", "cuda", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert "no CUDA GPU is available" in err and len(err.splitlines()) == 1, err
