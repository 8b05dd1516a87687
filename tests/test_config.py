import pytest

from pixelwise.config import TrainConfig, load_config, parse_overrides
from pixelwise.errors import PixelwiseError


def test_overrides_nest_and_parse_yaml_scalars():
    assert parse_overrides(["optim.lr=0.1", "epochs=3", "data.root=/x", "model_kwargs={width: 4}"]) == {
        "optim": {"lr": 0.1}, "epochs": 3, "data": {"root": "/x"}, "model_kwargs": {"width": 4}}


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: linear\noptim: {lr: 0.5, name: adam}\n")
    cfg = load_config(p, ["optim.lr=0.25"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.model == "linear" and cfg.optim.lr == 0.25 and cfg.optim.name == "adam"


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim: {lrr: 0.5}\n")
    with pytest.raises(PixelwiseError, match=r"c.yaml: unknown config key 'optim.lrr'; did you mean 'lr'"):
        load_config(p)


def test_wrong_type_names_key_and_value():
    with pytest.raises(PixelwiseError, match=r"config key 'epochs'.*got 'many'"):
        load_config(None, ["epochs=many"])
    with pytest.raises(PixelwiseError, match=r"config key 'optim.name'.*got 'rmsprop'"):
        load_config(None, ["optim.name=rmsprop"])
    with pytest.raises(PixelwiseError, match=r"config key 'optim.lr'.*greater than 0"):
        load_config(None, ["optim.lr=-1"])
    with pytest.raises(PixelwiseError, match=r"config key 'data.eval_scales.1'.*greater than 0"):
        load_config(None, ["data.name=fashion_scenes", "data.eval_scales=[1, 0]"])


def test_data_keys_of_another_dataset_kind_are_errors_that_name_it():
    with pytest.raises(PixelwiseError, match=r"^overrides: unknown config key 'data.canvas_size' for dataset "
                                             r"'fashion_mnist' \(a key of fashion_scenes, fs_det, fs_forecast, fs_ood, fs_stereo, "
                                             r"fs_video\)"):
        load_config(None, ["data.canvas_size=64"])
    with pytest.raises(PixelwiseError, match=r"'data.label_noise' for dataset 'fs_ood' \(a key of fashion_mnist\)"):
        load_config(None, ["data.name=fs_ood", "data.label_noise=0.1"])
    with pytest.raises(PixelwiseError, match=r"'data.canvas_sise' for dataset 'fs_ood'; did you mean 'canvas_size'"):
        load_config(None, ["data.name=fs_ood", "data.canvas_sise=64"])
    with pytest.raises(PixelwiseError, match=r"unknown dataset 'kitti'; known: fashion_mnist, folder"):
        load_config(None, ["data.name=kitti"])
    cfg = load_config(None, ["data.name=fashion_scenes", "data.canvas_size=64"])
    assert type(cfg.data).__name__ == "FashionScenesData" and cfg.data.canvas_size == 64
    assert load_config(None, ["data.root=/x"]).data.name == "fashion_mnist"   # the default kind
    # A check across keys: its message names both of them.
    with pytest.raises(PixelwiseError, match=r"^overrides: data.eval_scales / data.eval_flip .* outlier runs"):
        load_config(None, ["data.name=fs_ood", "data.eval_flip=true"])


def test_bad_files(tmp_path):
    with pytest.raises(PixelwiseError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(PixelwiseError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(PixelwiseError, match="expected a mapping"):
        load_config(lst)
    with pytest.raises(PixelwiseError, match="not key=value"):
        load_config(None, ["epochs"])


def test_shipped_configs_load():
    from pathlib import Path
    for p in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        load_config(p)
