"""Typed run configs from YAML, with key=value overrides from the command line."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from pixelwise.errors import PixelwiseError


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked at load."""
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSection(Section):
    """What every dataset kind has; one subclass per kind, chosen by `name` (a discriminated union), so
    a key that does not apply to the chosen dataset is an error that names the dataset."""
    root: str | None = None              # --data-dir: where the files are
    train_limit: int | None = Field(None, ge=1)  # keep the first N training items (quick runs)
    test_limit: int | None = Field(None, ge=1)
    workers: int = Field(0, ge=0)


class ClassificationData(DataSection):
    augment: Literal["none", "crop_flip"] = "none"
    crop_padding: int = Field(4, ge=0)          # crop_flip: shift by up to this many pixels


class FashionMNISTData(ClassificationData):
    name: Literal["fashion_mnist"] = "fashion_mnist"
    label_noise: float = Field(0.0, ge=0, le=1)  # this fraction of training labels made random


class FolderData(ClassificationData):
    """Your own images, one sub-folder per class."""
    name: Literal["folder"] = "folder"
    val_root: str | None = None          # a separate test folder; its sub-folders are named training classes
    # without val_root: this fraction of each class's images (seeded, the same every run) is the test split
    # and training gets the rest; 0 tests on the training images themselves (the dataset's test_is_train)
    val_fraction: float = Field(0.2, ge=0, lt=1)
    image_size: int | None = Field(None, ge=8)   # images are resized to this side (default 224)
    channels: int = Field(1, ge=1, le=3)


class SegmentationSection(DataSection):
    """Training crops (pixelwise.data.transforms) and test-time augmentation of segmentation datasets."""
    augment: Literal["none", "crop_flip", "scale_crop_flip"] = "none"
    photometric: bool = False                   # random brightness/contrast, blur, noise
    crop_size: int | None = Field(None, ge=8)           # training crop side (default: canvas size or 512)
    scale_range: tuple[float, float] = (0.5, 2.0)       # random scale factors of scale_crop_flip
    eval_window: int | None = Field(None, ge=8)         # sliding-window evaluation side (None: whole image)
    eval_scales: list[Annotated[float, Field(gt=0)]] = Field([1.0], min_length=1)  # test-time image scales
    eval_flip: bool = False                              # also average the left-right mirrored image

    @property
    def test_time_augmentation(self) -> bool:
        """Whether evaluation averages more than the one plain pass (eval_scales, eval_flip)."""
        return self.eval_scales != [1.0] or self.eval_flip


class SegmentationFolderData(SegmentationSection):
    """Segmentation datasets in their published folder layouts (pixelwise.data.segmentation)."""
    name: Literal["cityscapes", "camvid", "voc", "ade20k", "masks"]
    val_root: str | None = None


class FashionScenesData(SegmentationSection):
    name: Literal["fashion_scenes"] = "fashion_scenes"
    canvas_size: int = Field(128, ge=16)                # scene side in pixels
    variant: Literal["texture", "contrast", "noise", "blur"] | None = None  # FS-Shift test scenes


class FSOODData(SegmentationSection):
    """Trains on FashionScenes, tests on FS-OOD (scenes with real-photo outliers)."""
    name: Literal["fs_ood"] = "fs_ood"
    canvas_size: int = Field(128, ge=16)


class FSDetData(DataSection):
    """FS-Det: FashionScenes scenes with one box per garment (pixelwise.data.fs_det)."""
    name: Literal["fs_det"] = "fs_det"
    canvas_size: int = Field(128, ge=16)
    augment: Literal["none", "scale_crop_flip"] = "scale_crop_flip"
    scale_range: tuple[float, float] = (0.5, 2.0)


class FSStereoData(DataSection):
    """FS-Stereo: rectified pairs with left-view disparity (pixelwise.data.fs_stereo)."""
    name: Literal["fs_stereo"] = "fs_stereo"
    canvas_size: int = Field(128, ge=16)
    variant: str | None = None          # e.g. 'texture' (pixelwise.data.fs_stereo.parse_variant)
    augment: Literal["none", "crop_flip"] = "crop_flip"   # crop_flip: random crop, flip-and-swap
    crop_size: tuple[int, int] | None = None   # crop_flip: training crop (H, W); None: whole pairs
    photometric: bool = True            # crop_flip: one brightness/contrast jitter for both views
    # Training pairs of these variants together ('clean' = none), e.g. [clean, textured]; None: `variant`.
    train_variants: list[str] | None = Field(None, min_length=1)


class FSVideoData(DataSection):
    """FS-Video sequences (pixelwise.data.fs_video): tracking and appearance embeddings.

    The embedding task trains on identity crops (pixelwise.data.fs_identities); train_limit and
    test_limit count sequences."""
    name: Literal["fs_video"] = "fs_video"
    canvas_size: int = Field(128, ge=16)
    crop_size: int = Field(32, ge=8)                       # identity crops are resized to this side
    min_visibility: float = Field(0.5, gt=0, le=1)         # crops of views at least this visible
    augment: Literal["none", "shift"] = "shift"            # shift: crops moved by up to crop_shift px
    crop_shift: int = Field(3, ge=0)


class FSForecastData(SegmentationSection):
    """FS-Forecast: observed frames of FS-Video and the segmentation of future frames
    (pixelwise.data.fs_forecast). A segmentation run on it trains the single-frame model on the frames;
    a forecasting run reads clips. The limits count sequences."""
    name: Literal["fs_forecast"] = "fs_forecast"
    canvas_size: int = Field(128, ge=16)
    test_t: int = Field(20, ge=9)            # anchor frame t of the test clips (the protocol's 20)


DATA_SECTIONS: dict[str, type[DataSection]] = {
    "fashion_mnist": FashionMNISTData, "folder": FolderData, "fashion_scenes": FashionScenesData,
    "fs_ood": FSOODData, **{n: SegmentationFolderData for n in ("cityscapes", "camvid", "voc", "ade20k", "masks")},
    "fs_det": FSDetData, "fs_stereo": FSStereoData, "fs_video": FSVideoData, "fs_forecast": FSForecastData}
AnyData = Annotated[FashionMNISTData | FolderData | SegmentationFolderData | FashionScenesData | FSOODData
                    | FSDetData | FSStereoData | FSVideoData | FSForecastData,
                    Field(discriminator="name")]


def _data_name(raw) -> str:
    return raw.get("name", "fashion_mnist") if isinstance(raw, dict) else getattr(raw, "name", "fashion_mnist")


def _with_known_name(raw):
    """The data section with its default name, or a clear error for an unknown one."""
    if isinstance(raw, dict):
        name = raw.get("name", "fashion_mnist")
        if name not in DATA_SECTIONS:
            raise ValueError(f"data.name: unknown dataset {name!r}; known: {', '.join(DATA_SECTIONS)}")
        return {**raw, "name": name}
    return raw


def DataConfig(**fields) -> DataSection:  # noqa: N802 - reads like the section classes it builds
    """The data section of the dataset `name` (default fashion_mnist) with these keys, validated."""
    return build_config(fields, "data", DataSection)


class OptimConfig(Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    backbone_lr_mult: float = Field(1.0, ge=0)  # learning rate of model.backbone relative to lr
    freeze_backbone_steps: int = Field(0, ge=0)  # model.backbone gets lr 0 for the first N steps


class ScheduleConfig(Section):
    name: Literal["constant", "cosine", "onecycle", "step"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    step_size: int = Field(1000, ge=1)   # 'step': multiply by gamma every step_size steps
    gamma: float = Field(0.1, gt=0)
    final_lr_frac: float = Field(0.0, ge=0)


class AdversarialConfig(Section):
    """Adversarial training: each batch is replaced by attacked images (pixelwise.attacks)."""
    method: Literal["none", "fgsm", "pgd"] = "none"   # fgsm = fast FGSM with random start
    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(8 / 255, ge=0)
    alpha: float | None = Field(None, gt=0)            # step size; default per method
    steps: int = Field(7, ge=1)
    random_start: bool = True


class OutliersConfig(Section):
    """Dense outlier detection: negatives pasted into training scenes (pixelwise.data.paste)."""
    mode: Literal["none", "two_heads", "single_head"] = "none"  # single_head: a (K+1)-th 'outlier' class
    # source of training negatives, never the test outliers: scikit-learn's digits and/or its sample photos
    negatives: Literal["digits", "photos", "digits+photos"] = "digits"
    paste_prob: float = Field(0.5, ge=0, le=1)   # chance that a training scene receives negatives
    min_count: int = Field(1, ge=1)              # objects pasted into a chosen scene, inclusive range
    max_count: int = Field(2, ge=1)
    min_size: int = Field(24, ge=2)              # side of a pasted object in px, inclusive range
    max_size: int = Field(56, ge=2)
    jitter: bool = True                          # random gain and offset of each pasted object
    loss_weight: float = Field(1.0, ge=0)        # weight of the outlier loss against the semantic loss


class TrainConfig(Section):
    name: str = "run"
    # classification | segmentation | outlier_segmentation | ... (pixelwise.tasks.list_tasks()); unset: the
    # task of the model's kind that claims the config, decided at load and recorded in config.json
    task: str | None = None
    model: str = "cnn"
    model_kwargs: dict[str, Any] = {}
    data: AnyData = FashionMNISTData()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    adversarial: AdversarialConfig = AdversarialConfig()
    outliers: OutliersConfig = OutliersConfig()
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)   # stop after this many steps (overrides epochs)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # autocast for forward and loss; auto: bf16 where the device has it in hardware (AMX or AVX512-BF16
    # on CPU, a bf16-capable GPU), fp32 elsewhere (pixelwise.engine.train.pick_precision)
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    channels_last: bool = False                           # NHWC memory format: faster convolutions on CPU
    # torch.compile (inductor) the training forward and backward; checkpoints and evaluation use the
    # model uncompiled. Not a resumable change: compiled and eager steps round differently.
    compile: bool = False
    out_dir: str | None = None                  # default runs/{name}
    checkpoint_every: int = Field(500, ge=1)    # steps between resumable checkpoints
    eval_every_epoch: bool = True
    eval_train: bool = False                    # also measure accuracy on the training set each epoch

    @field_validator("data", mode="before")
    @classmethod
    def _data_name_known(cls, raw):
        return _with_known_name(raw)

    @model_validator(mode="after")
    def _augmentation_only_for_plain_segmenters(self) -> "TrainConfig":
        tta = getattr(self.data, "test_time_augmentation", False)
        if tta and (self.data.name == "fs_ood" or self.outliers.mode != "none"):
            raise ValueError("data.eval_scales / data.eval_flip (test-time augmentation) apply to segmenters "
                             "without outlier scoring; outlier runs are evaluated with one pass per image, "
                             "so leave both at their defaults ([1.0], false)")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """['optim.lr=0.1', 'epochs=3'] -> nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise PixelwiseError(f"override {pair!r} is not key=value (e.g. optim.lr=0.1)")
        key, value = pair.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value) if value else None
    return out


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def build_config(raw: dict, source: str = "config", cls: type[Section] = TrainConfig) -> Section:
    """Validate a nested dict; errors name the source, the dotted key and the offending value.

    cls DataSection validates a data section alone, of the kind its `name` picks."""
    try:
        if cls is DataSection:
            return TypeAdapter(AnyData).validate_python(_with_known_name(raw))
        return cls.model_validate(raw)
    except ValueError as e:
        if not isinstance(e, ValidationError):
            raise PixelwiseError(f"{source}: {e}") from None
        err = e.errors()[0]
        loc = _without_tags(err["loc"], cls is DataSection)
        key = ".".join(str(p) for p in loc)
        if cls is DataSection:
            key = f"data.{key}" if key else "data"
        if not key:   # a check across keys: its message names them
            raise PixelwiseError(f"{source}: {err['msg'].removeprefix('Value error, ')}") from None
        if err["type"] == "extra_forbidden":
            data_raw = raw if cls is DataSection else raw.get("data", {})
            known, what = _known_keys(cls, loc[:-1], data_raw)
            elsewhere = sorted({n for n, c in DATA_SECTIONS.items() if str(loc[-1]) in c.model_fields}) if what else []
            what += f" (a key of {', '.join(elsewhere)})" if elsewhere else ""
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(known)}"
            raise PixelwiseError(f"{source}: unknown config key {key!r}{what}{extra}") from None
        raise PixelwiseError(
            f"{source}: config key {key!r}: {err['msg'].removeprefix('Value error, ')} "
            f"(got {err.get('input')!r})") from None


def _without_tags(loc: tuple, data_alone: bool) -> tuple:
    """An error location without the union's tag: ('data', 'fs_ood', 'crop_size') -> ('data', 'crop_size')."""
    loc = tuple(loc)
    if data_alone:
        return loc[1:] if loc and loc[0] in DATA_SECTIONS else loc
    if len(loc) > 1 and loc[0] == "data" and loc[1] in DATA_SECTIONS:
        return loc[:1] + loc[2:]
    return loc


def _known_keys(cls: type[BaseModel], loc: tuple, data_raw) -> tuple[list[str], str]:
    """The keys of the section at `loc`, and for a data section which dataset's keys they are."""
    if cls is DataSection or tuple(loc[:1]) == ("data",):
        name = _data_name(data_raw)
        return sorted(DATA_SECTIONS[name].model_fields), f" for dataset {name!r}"
    for part in loc:
        field = cls.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return [], ""
        cls = field.annotation
    return sorted(cls.model_fields), ""


def load_config(path: str | Path | None, overrides: list[str] = (), cls: type[Section] = TrainConfig):
    """Read a YAML config (or start from defaults when `path` is None) and apply key=value overrides."""
    raw: dict = {}
    source = "overrides"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise PixelwiseError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PixelwiseError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise PixelwiseError(f"{path}: expected a mapping of keys at the top, got {type(raw).__name__}")
    return build_config(_merge(raw, parse_overrides(list(overrides))), source, cls)


def saved_train_config(raw: dict) -> TrainConfig:
    """The TrainConfig of a run folder's config.json (its `train_config`), validated as at training."""
    return build_config({**raw, "data": saved_data_config(raw.get("data", {})).model_dump()},
                        "config.json train_config")


def saved_data_config(raw: dict) -> DataSection:
    """The data section of a run folder's config.json, validated as at training. Runs written before
    the sections were split by dataset saved every key of every kind: those of other kinds are dropped."""
    section = DATA_SECTIONS.get(_data_name(raw))
    keep = {k: v for k, v in raw.items() if section is None or k in section.model_fields}
    return build_config(keep, "config.json data", DataSection)
