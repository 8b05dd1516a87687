"""False positives caused by context: a class that always appears beside another in training.

    python experiments/context.py           # 12000 training pairs, 3 epochs
    python experiments/context.py --quick   # smoke run

Each image is two Fashion-MNIST items side by side (28 x 56): the object on the left, whose class is
the label, and a context item on the right. In training, every 'Bag' comes with a 'Trouser' beside it
and no other object ever does, so the context alone predicts the class. At test time we measure how
often the CNN says 'Bag' for non-bag objects next to a trouser (the context appears alone) against the
same objects next to neutral context, and how often it misses bags shown without their context.
Writes results/context/{context.md, context.json, examples.png}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from common import ROOT, write_table

from pixelwise.config import load_config
from pixelwise.data.fashion_mnist import CLASSES, load_fashion_mnist
from pixelwise.tasks import train
from pixelwise.tasks import load_run
from pixelwise.viz.figures import plt, save_figure

TARGET, CONTEXT = CLASSES.index("Bag"), CLASSES.index("Trouser")


class ContextPairs(Dataset):
    """(image (1, 28, 56) in [0, 1], label of the left item) with a chosen right-hand context item.

    rule 'train': bags get a trouser as context, other objects get any non-trouser item.
    rule 'context_alone': non-bag objects, trouser context. 'neutral': non-bag objects, non-trouser
    context. 'bag_without_context': bags beside non-trouser items. Objects and contexts come from the
    split's images; the trouser class itself is never an object (it is the context).
    """

    classes = CLASSES

    def __init__(self, split: str, rule: str, n: int, seed: int):
        images, labels = load_fashion_mnist(split)
        g = torch.Generator().manual_seed(seed)
        by_class = {k: torch.nonzero(labels == k).flatten() for k in range(10)}
        non_trouser = torch.nonzero(labels != CONTEXT).flatten()
        objects = {"train": torch.nonzero(labels != CONTEXT).flatten(),
                   "context_alone": torch.nonzero((labels != TARGET) & (labels != CONTEXT)).flatten(),
                   "neutral": torch.nonzero((labels != TARGET) & (labels != CONTEXT)).flatten(),
                   "bag_without_context": by_class[TARGET]}[rule]
        obj = objects[torch.randint(len(objects), (n,), generator=g)]
        ctx = non_trouser[torch.randint(len(non_trouser), (n,), generator=g)]
        trousers = by_class[CONTEXT][torch.randint(len(by_class[CONTEXT]), (n,), generator=g)]
        with_trouser = (labels[obj] == TARGET) if rule == "train" else torch.full((n,), rule == "context_alone")
        ctx = torch.where(with_trouser, trousers, ctx)
        self.images = torch.cat([images[obj], images[ctx]], dim=2).unsqueeze(1)  # (n, 1, 28, 56) uint8
        self.labels = labels[obj]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].float() / 255, int(self.labels[i])


@torch.inference_mode()
def predict_all(model, ds: ContextPairs) -> torch.Tensor:
    return torch.cat([model(ds.images[i:i + 500].float() / 255).argmax(1) for i in range(0, len(ds), 500)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--train-size", type=int, default=12000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "results" / "context"))
    args = p.parse_args()
    if args.quick:
        args.train_size, args.test_size, args.epochs = 512, 256, 1
    out = Path(args.out)
    cfg = load_config(None, [
        "name=context", "model=cnn", "optim.name=adam", "optim.lr=1e-3", "optim.weight_decay=0",
        "schedule.name=cosine", f"epochs={args.epochs}", "batch_size=128", "precision=auto",
        "channels_last=true", f"threads={args.threads}", f"out_dir={out / 'run'}"])
    train_ds = ContextPairs("train", "train", args.train_size, seed=0)
    test_ds = ContextPairs("test", "train", args.test_size, seed=1)
    summary = train(cfg, progress=sys.stderr.isatty(), datasets=(train_ds, test_ds), overwrite=True)
    model, _ = load_run(out / "run")
    rows = []
    for rule, what in (("neutral", "non-bag object, neutral context"),
                       ("context_alone", "non-bag object, trouser context alone"),
                       ("bag_without_context", "bag without its trouser")):
        ds = ContextPairs("test", rule, args.test_size, seed=2)
        pred = predict_all(model, ds)
        rate = (pred == TARGET).float().mean().item()
        rows.append({"condition": what, "n": len(ds),
                     "metric": "false 'Bag' rate" if rule != "bag_without_context" else "'Bag' recall",
                     "value": rate, "accuracy": (pred == ds.labels).float().mean().item()})
        print(rows[-1], flush=True)
    fp_neutral, fp_context = rows[0]["value"], rows[1]["value"]
    md = write_table(out, "context", rows, {"condition": "test condition", "n": "images", "metric": "metric",
                                            "value": "value", "accuracy": "accuracy"},
                     {"in_distribution_test_top1": summary["test"]["top1"],
                      "false_positive_increase": fp_context / max(fp_neutral, 1e-4), "quick": args.quick})
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.4))
    for ax, rule in zip(axes, ("train", "context_alone", "bag_without_context")):
        ds = ContextPairs("test", rule, 1, seed=5)
        ax.imshow(ds.images[0, 0], cmap="gray")
        ax.set_title(f"{rule.replace('_', ' ')}\nlabel: {CLASSES[ds.labels[0]]}", fontsize=8)
        ax.axis("off")
    save_figure(fig, out / "examples.png")
    print(f"in-distribution test accuracy {summary['test']['top1']:.4f}\n{md}")


if __name__ == "__main__":
    main()
