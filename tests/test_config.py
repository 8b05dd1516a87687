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
        load_config(None, ["data.eval_scales=[1, 0]"])
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
