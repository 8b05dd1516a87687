"""Zhang et al. (ICLR 2017) on Fashion-MNIST: the same CNN memorizes random labels yet generalizes on true ones.

    python experiments/memorization.py           # 5000 training images, 60 epochs per label setting
    python experiments/memorization.py --quick   # smoke run

Trains one CNN (no augmentation, no dropout, no weight decay: nothing that limits capacity) on true
labels, on partially random and on fully random labels. Writes results/memorization/{memorization.md,
memorization.json, curves.png}: training accuracy climbs to ~100% in every setting while test accuracy
falls to chance as the labels lose their meaning, and fitting random labels takes several times more steps.
"""
from __future__ import annotations

import argparse
import sys

from common import ROOT, write_table

from pixelwise.config import load_config
from pixelwise.tasks import train
from pixelwise.viz.figures import plot_curves


def steps_to_fit(history: list[dict], threshold: float) -> int | None:
    """The first step at which training accuracy reached `threshold`; None if it never did."""
    return next((h["step"] for h in history if h.get("train_top1", 0) >= threshold), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--noise", default="0,0.5,1", help="fractions of random labels")
    p.add_argument("--threshold", type=float, default=0.99, help="training accuracy that counts as fitted")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "results" / "memorization"))
    args = p.parse_args()
    if args.quick:
        args.train_size, args.epochs = 256, 2
    out = __import__("pathlib").Path(args.out)
    rows, curves_train, curves_test = [], {}, {}
    for frac in (float(f) for f in args.noise.split(",")):
        cfg = load_config(None, [
            f"name=memorize_{frac:g}", "model=cnn", "model_kwargs={dropout: 0.0}", "data.name=fashion_mnist",
            f"data.train_limit={args.train_size}", f"data.test_limit={500 if args.quick else 2000}",
            f"data.label_noise={frac}", "optim.name=adam", "optim.lr=1e-3", "optim.weight_decay=0",
            "schedule.name=constant", f"epochs={args.epochs}", "batch_size=128", "eval_train=true",
            "precision=auto", "channels_last=true", f"threads={args.threads}", f"out_dir={out / f'run_noise_{frac:g}'}"])
        s = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
        h = s["history"]
        fit = steps_to_fit(h, args.threshold)
        rows.append({"random_labels": frac, "final_train_top1": h[-1]["train_top1"],
                     "final_test_top1": h[-1]["test_top1"], "steps_to_fit": fit if fit is not None else "not reached",
                     "train_seconds": round(s["train_seconds"], 1)})
        curves_train[f"{frac:.0%} random"] = ([r["step"] for r in h], [r["train_top1"] for r in h])
        curves_test[f"{frac:.0%} random"] = ([r["step"] for r in h], [r["test_top1"] for r in h])
        print(rows[-1], flush=True)
    base = rows[0]["steps_to_fit"]
    for r in rows:
        fitted = isinstance(r["steps_to_fit"], int) and isinstance(base, int)
        r["slowdown_vs_true_labels"] = round(r["steps_to_fit"] / base, 2) if fitted else "n/a"
    plot_curves(curves_train, out / "train_accuracy.png", "step", "training accuracy (labels it was given)",
                "Fitting true and random labels")
    plot_curves(curves_test, out / "test_accuracy.png", "step", "test accuracy (true labels)",
                "Generalization falls to chance (0.1) as labels lose meaning")
    md = write_table(out, "memorization", rows, {
        "random_labels": "random labels", "final_train_top1": "train acc", "final_test_top1": "test acc",
        "steps_to_fit": f"steps to {args.threshold:.0%} train acc", "slowdown_vs_true_labels": "slowdown",
        "train_seconds": "train time (s)"},
        {"train_size": args.train_size, "epochs": args.epochs, "threshold": args.threshold, "threads": args.threads,
         "quick": args.quick})
    print(md)


if __name__ == "__main__":
    main()
