"""Defects that lost data or gave a wrong number without a word (the reliability issue), one test each."""
from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.engine.device import pick_precision
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.tasks import evaluate_run, get_task, load_task_config, predict_images, train
from pixelwise.tasks.base import output_stems


def test_output_names_never_collide():
    assert output_stems(["x/a.png", "y/b.jpg"]) == ["a", "b"]
    assert output_stems(["a/coffee.jpg", "b/coffee.png", "c/tea.png"]) == ["a_coffee", "b_coffee", "tea"]
    stems = output_stems(["a/coffee.jpg", "a/coffee.png", "coffee.gif"])
    assert len(set(stems)) == 3, stems


def test_run_files_keep_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644   # not the 0600 of mkstemp
    finally:
        os.umask(old)


def test_fp16_on_a_cpu_warns():
    with pytest.warns(UserWarning, match="fp16 autocast on a CPU"):
        assert pick_precision("fp16", torch.device("cpu")) == "fp16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pick_precision("fp32", torch.device("cpu"))


@pytest.fixture(scope="module")
def segmentation_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    task = get_task("segmentation")
    cfg = load_task_config(None, [*task.smoke_overrides(str(tmp / "data")), "threads=1", f"out_dir={tmp / 'run'}",
                                  "data.train_limit=8", "data.scale_range=[0.5, 0.6]"])
    train(cfg, progress=False)
    return tmp


def test_predict_writes_a_picture_per_input_even_for_equal_names(segmentation_run, tmp_path):
    for folder, suffix in (("a", "png"), ("b", "jpg")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.random.default_rng(len(folder)).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / folder / f"coffee.{suffix}")
    results = predict_images([str(tmp_path / "a/coffee.png"), str(tmp_path / "b/coffee.jpg")],
                             checkpoint=str(segmentation_run / "run"), out_dir=tmp_path / "out")
    overlays = {r["files"]["overlay"] for r in results}
    assert len(overlays) == 2 and all(os.path.exists(o) for o in overlays)


def test_eval_never_augments_and_refuses_unknown_splits(segmentation_run):
    run = segmentation_run / "run"
    evaluate_run(run, split="train", progress=False, out_dir=run / "on_train")
    matrix = np.array(json.loads((run / "on_train" / "confusion_matrix.json").read_text())["matrix"])
    # Whole 32 x 32 training scenes: every pixel counted. The run's augmentation (scale 0.5-0.6, padded
    # with the ignore label) would leave about a third of them.
    assert matrix.sum() == 8 * 32 * 32
    with pytest.raises(PixelwiseError, match="--split 'foo': give one of train, test"):
        evaluate_run(run, split="foo", progress=False)


def test_bad_paths_and_files_give_one_line_errors(segmentation_run, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from pixelwise.cli import main
    run = segmentation_run / "run"
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["eval", str(run), "--json", str(tmp_path), "--quiet"], "is a folder; give the path of a file"),
        (["predict", "--checkpoint", str(run), str(image), "--out", str(a_file)], "is a file; give a folder"),
        (["predict", "--checkpoint", str(run), str(tmp_path)], "is a folder, not an image file"),
        (["predict", "--checkpoint", str(run), str(image), "--topk", "-3"], "--topk -3"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    # a resumable checkpoint cut short, and one of garbage: refused, never with torch's weights_only advice
    ckpt = run / "last.ckpt"
    whole = ckpt.read_bytes()
    for broken in (whole[: len(whole) // 2], b"not a checkpoint at all"):
        ckpt.write_bytes(broken)
        cfg = load_task_config(None,
                               [*get_task("segmentation").smoke_overrides(str(segmentation_run / "data")),
                                "threads=1", f"out_dir={run}", "data.train_limit=8", "data.scale_range=[0.5, 0.6]"])
        with pytest.raises(PixelwiseError) as e:
            train(cfg, resume=True, progress=False)
        assert "unreadable checkpoint" in str(e.value) and "weights_only" not in str(e.value)
    ckpt.write_bytes(whole)
    # weights of the wrong shapes
    weights = load_file(str(run / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.ndim == 4)
    save_file({**weights, key: torch.zeros(1, 1, 1, 1)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((run / "config.json").read_text())
    assert main(["eval", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights do not fit" in err and key in err and len(err.splitlines()) == 1, err


def fmnist(tmp_path, out: str, *extra: str):
    return load_task_config(None, ["model=linear", "data.train_limit=64", "data.test_limit=16", "batch_size=16",
                                   "epochs=2", "threads=1", "checkpoint_every=2", f"out_dir={tmp_path / out}", *extra])


def test_a_finished_run_is_never_overwritten_without_asking(tmp_path):
    train(fmnist(tmp_path, "run"), progress=False)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(PixelwiseError, match=r"holds a run already \(model.safetensors, last.ckpt\); continue it "
                                             r"with --resume, train into a new out_dir, or replace it with --overwrite"):
        train(fmnist(tmp_path, "run", "optim.lr=0.5"), progress=False)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    train(fmnist(tmp_path, "run", "optim.lr=0.5"), progress=False, overwrite=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != before
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if not r.get("eval")] == list(range(1, 9))   # the old run's lines went


def test_resume_with_a_changed_config_names_the_keys(tmp_path):
    assert train(fmnist(tmp_path, "run"), stop_after=3, progress=False)["status"] == "stopped"
    for extra, named in ((["optim.lr=0.5"], "optim.lr: 0.05 -> 0.5"), (["optim.name=adam"], "optim.name: 'sgd' -> 'adam'"),
                         (["model=cnn"], "model: 'linear' -> 'cnn'")):
        with pytest.raises(PixelwiseError, match="differs from the one the run was trained with") as e:
            train(fmnist(tmp_path, "run", *extra), resume=True, progress=False)
        assert named in str(e.value), str(e.value)
    # what does not change the training (threads, where the data is, evaluation batch) may change
    summary = train(fmnist(tmp_path, "run", "eval_batch_size=7", "threads=2"), resume=True, progress=False)
    assert summary["status"] == "finished"


def test_folder_images_with_three_channels_train_the_default_cnn(tmp_path):
    for k, name in enumerate(("cat", "dog")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.full((20, 20, 3), 40 + 160 * k, np.uint8)
            pixels[i % 20] = 255
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i}.png")
    cfg = load_task_config(None, ["model=cnn", "data.name=folder", f"data.root={tmp_path / 'photos'}",
                                  "data.image_size=16", "data.channels=3", "batch_size=4", "epochs=1",
                                  "threads=1", f"out_dir={tmp_path / 'run'}"])
    assert train(cfg, progress=False)["status"] == "finished"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_kwargs"]["in_chans"] == 3
    with pytest.raises(PixelwiseError, match="model_kwargs.in_chans 1 but data.channels 3"):
        train(cfg.model_copy(update={"model_kwargs": {"in_chans": 1}, "out_dir": str(tmp_path / "r2")}), progress=False)


def test_a_relative_data_root_is_stored_resolved(tmp_path, monkeypatch, fake_fmnist):
    monkeypatch.chdir(fake_fmnist.parent)
    train(fmnist(tmp_path, "run", f"data.root={fake_fmnist.name}", "data.train_limit=32"), progress=False)
    root = json.loads((tmp_path / "run" / "config.json").read_text())["train_config"]["data"]["root"]
    assert root == str(fake_fmnist.resolve())
    monkeypatch.chdir(tmp_path / "run")
    assert evaluate_run(tmp_path / "run", progress=False)["metrics"]["n"] == 16


def test_an_error_in_a_loader_worker_stays_one_line():
    from torch.utils.data import DataLoader, Dataset

    class Broken(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            raise PixelwiseError(f"bad.png: unreadable or corrupt image (item {i})")

    with pytest.raises(PixelwiseError) as e:
        next(iter(DataLoader(Broken(), batch_size=2, num_workers=2)))
    assert str(e.value) == "bad.png: unreadable or corrupt image (item 0)"


def test_scores_on_the_training_images_say_so(tmp_path, capsys):
    from pixelwise.cli import main
    for k, name in enumerate(("cat", "dog")):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((12, 12), 40 + 160 * k + i, np.uint8)).save(tmp_path / "photos" / name / f"{i}.png")
    (tmp_path / "e.yaml").write_text("{}\n")
    argv = ["train", str(tmp_path / "e.yaml"), "model=linear", "model_kwargs={image_size: 12}", "data.name=folder",
            f"data.root={tmp_path / 'photos'}", "data.image_size=12", "batch_size=4", "threads=1", "--quiet"]
    assert main([*argv, "data.val_fraction=0", f"out_dir={tmp_path / 'same'}"]) == 0
    assert "on the training images" in capsys.readouterr().out
    assert json.loads((tmp_path / "same" / "summary.json").read_text())["test_is_train"] is True
    assert "these are the training images" in evaluate_run(tmp_path / "same", progress=False)["text"]
    assert main([*argv, f"out_dir={tmp_path / 'held'}"]) == 0   # the default holds 20% out
    assert "test_is_train" not in json.loads((tmp_path / "held" / "summary.json").read_text())
