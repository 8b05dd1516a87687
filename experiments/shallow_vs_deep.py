"""The lecture's shallow-versus-deep contrast on Fashion-MNIST: one table and one figure.

    python experiments/shallow_vs_deep.py           # reuses results/fashion_mnist.json when present
    python experiments/shallow_vs_deep.py --rerun   # trains again (benchmarks/fashion_mnist.py)
    python experiments/shallow_vs_deep.py --quick   # smoke run on a subset

Writes results/shallow_vs_deep/{shallow_vs_deep.md, shallow_vs_deep.json, accuracy.png}.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from common import ROOT, write_table

from pixelwise.viz.figures import plt, save_figure


def load_benchmark():
    spec = importlib.util.spec_from_file_location("fashion_mnist_bench", ROOT / "benchmarks" / "fashion_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plot_accuracy(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = [r["model"] for r in rows]
    ours = [r["test_top1"] for r in rows]
    published = [r["published_top1"] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], ours, width=0.4, label="pixelwise (measured)")
    ax.bar([x + 0.2 for x in xs], published, width=0.4, label="published anchor", alpha=0.6)
    for x, r in zip(xs, rows):
        ax.text(x - 0.2, r["test_top1"] + 0.003, f"{r['test_top1']:.3f}\n{r['params'] / 1e3:.0f}k params",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), names)
    ax.set_ylim(min(ours + published) - 0.05, 1.0)
    ax.set_ylabel("Fashion-MNIST test accuracy")
    ax.set_title("Shallow (one projection) versus deep (convolutions)")
    ax.legend(loc="upper left")
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rerun", action="store_true")
    p.add_argument("--out", default=str(ROOT / "results" / "shallow_vs_deep"))
    args = p.parse_args()
    out = Path(args.out)
    cached = ROOT / "results" / "fashion_mnist.json"
    if args.quick or args.rerun or not cached.is_file():
        rows = load_benchmark().run(["linear", "cnn", "resnet_small"], args.quick, out / "benchmark")
        source = "trained in this run" + (" (quick subset)" if args.quick else "")
    else:
        rows = json.loads(cached.read_text())["rows"]
        source = f"from {cached.relative_to(ROOT)} (python benchmarks/fashion_mnist.py)"
    plot_accuracy(rows, out / "accuracy.png")
    md = write_table(out, "shallow_vs_deep", rows, {
        "model": "model", "params": "params", "test_top1": "test accuracy", "train_seconds": "train time (s)",
        "published": "published", "published_top1": "published accuracy"}, {"source": source})
    print(f"source: {source}\n{md}")


if __name__ == "__main__":
    main()
