"""Appearance embeddings: crops of FS-Video garment identities -> unit vectors, trained with CosFace,
evaluated by retrieval (rank-1, mAP) on the identities of the test sequences."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from pixelwise.config import DataSection, TrainConfig
from pixelwise.errors import PixelwiseError
from pixelwise.files import write_json
from pixelwise.metrics.retrieval import RetrievalMeter
from pixelwise.tasks.base import Task, output_stems, read_images
from pixelwise.tasks.registry import register_task


def shift_crops(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Crops (N, C, S, S) each moved by up to `shift` px in x and y (draws from `gen`), edges replicated:
    what a detector's box jitter does to a crop."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@torch.inference_mode()
def embed(model: nn.Module, crops: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Embeddings (N, D) of crops (N, C, S, S) float in [0, 1]."""
    out = [model(crops[i:i + batch_size]).float() for i in range(0, len(crops), batch_size)]
    return torch.cat(out) if out else crops.new_zeros((0, 0))


def run_crop_size(config: dict) -> int:
    """The crop side an embedding run was trained on."""
    return int(config.get("train_config", {}).get("data", {}).get("crop_size", 32))


class Embedding(Task):
    name = "embedding"
    model_kind = "embedding"

    def dataset(self, data: DataSection, split: str) -> Dataset:
        if data.name != "fs_video":
            raise PixelwiseError(f"data.name {data.name!r}: the embedding task trains on identity crops of "
                                 "FS-Video; set data.name=fs_video")
        from pixelwise.data.fs_identities import FSIdentities
        limit = data.train_limit if split == "train" else data.test_limit
        return FSIdentities(split, data.root, data.canvas_size, limit, data.crop_size, data.min_visibility)

    def prepare_batch(self, batch, cfg: TrainConfig, device: torch.device, gen: torch.Generator):
        x, y = batch[0], torch.as_tensor(batch[1])
        if cfg.data.augment == "shift":
            x = shift_crops(x, cfg.data.crop_shift, gen)
        return x.to(device), y.to(device)

    def loss(self, model: nn.Module, x, target, cfg: TrainConfig) -> torch.Tensor:
        """CosFace: cross-entropy of the margin logits the model gives with the labels."""
        return F.cross_entropy(model(x, target).float(), target)

    def output_loss(self, output, target, cfg: TrainConfig) -> torch.Tensor:
        return F.cross_entropy(output.float(), target)

    def evaluate(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig, num_classes: int,
                 device: torch.device, progress: bool = True) -> RetrievalMeter:
        was_training = model.training
        model.eval()
        meter = RetrievalMeter()
        loader = DataLoader(dataset, batch_size=cfg.eval_batch_size, shuffle=False, num_workers=cfg.data.workers)
        with torch.inference_mode():
            for x, ids, roles in tqdm(loader, desc="eval", leave=False, disable=not progress or None):
                meter.update(model(x.to(device)), ids, roles)
        model.train(was_training)
        return meter

    def write_report(self, meter: RetrievalMeter, classes: list[str], out_dir: Path, title: str = "") -> dict:
        """retrieval.json and retrieval.md in out_dir: rank-1 and mAP of the test queries."""
        out_dir = Path(out_dir)
        m = meter.summary()
        write_json(out_dir / "retrieval.json", m)
        (out_dir / "retrieval.md").write_text(
            f"{title}\n\n| queries | gallery | rank-1 | mAP |\n| --- | --- | --- | --- |\n"
            f"| {m['queries']} | {m['gallery']} | {m['rank1']:.4f} | {m['mAP']:.4f} |\n")
        return m

    def describe(self, metrics: dict) -> str:
        return (f"rank-1 {metrics['rank1']:.4f}, mAP {metrics['mAP']:.4f} ({metrics['queries']} queries, "
                f"gallery of {metrics['gallery']} crops)")

    def predict(self, model: nn.Module, config: dict, images: list[str], out_dir: Path, *, topk: int = 5,
                scales: Sequence[float] | None = None, flip: bool | None = None,
                device: torch.device = torch.device("cpu")) -> list[dict]:
        """The embedding of each image file (the whole image as one crop): STEM_embedding.json holds it;
        the result gives its first dimensions and the cosine similarity to every other image given."""
        side = run_crop_size(config)
        crops = torch.stack([TF.resize(x, [side, side], antialias=True) for x in read_images(images, "RGB")])
        e = embed(model.to(device), crops.to(device)).cpu()
        out_dir = Path(out_dir)
        results = []
        for k, (path, stem) in enumerate(zip(images, output_stems(images))):
            file = out_dir / f"{stem}_embedding.json"
            write_json(file, {"image": str(path), "embedding": e[k].tolist()})
            results.append({"image": str(path), "files": {"embedding": str(file)}, "dims": len(e[k]),
                            "first": [round(v, 4) for v in e[k][:4].tolist()],
                            "cosine": {str(p): float(e[k] @ e[j]) for j, p in enumerate(images) if j != k}})
        return results

    def example_input(self, config: dict | None, model_name: str, size: tuple[int, int] | None = None,
                      channels: int | None = None) -> tuple[int, int, int]:
        c, h, w = super().example_input(config, model_name, size, channels)
        if config is not None and size is None:
            h = w = run_crop_size(config)
        return c, h, w

    def smoke_overrides(self, root: str) -> list[str]:
        return ["model=embedding_resnet", "model_kwargs={widths: [8, 16], depths: [1, 1], dim: 16}",
                "data.name=fs_video", f"data.root={root}", "data.canvas_size=32", "data.crop_size=16",
                "data.train_limit=3", "data.test_limit=3", "batch_size=16", "max_steps=4", "optim.name=adam",
                "optim.lr=0.01", "eval_batch_size=64"]


register_task(Embedding())
