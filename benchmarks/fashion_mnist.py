"""Shallow versus deep on Fashion-MNIST, measured: test accuracy and training time with 2 CPU threads.

    python benchmarks/fashion_mnist.py            # full protocol (official 60k/10k split)
    python benchmarks/fashion_mnist.py --quick    # smoke run on a small subset

Trains each model from its recipe in configs/{model}_fashion_mnist.yaml and writes
results/fashion_mnist.{json,md}. Training time excludes the per-epoch test evaluation. Besides wall time it
reports the process CPU time divided by the thread count: on a machine shared with other jobs that is the
better estimate of the wall time on an idle one.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.config import load_config  # noqa: E402
from pixelwise.tasks import train  # noqa: E402
from pixelwise.models import create_model  # noqa: E402

# Published test accuracies (DESIGN.md, FMNIST protocol).
ANCHORS = {"linear": ("logistic regression", 0.842), "cnn": ("2-conv CNN", 0.916),
           "resnet_small": ("ResNet18", 0.949)}


def run(models: list[str], quick: bool, out: Path) -> list[dict]:
    rows = []
    for name in models:
        overrides = ["threads=2", f"out_dir={ROOT / 'runs' / 'bench_fashion_mnist' / name}"]
        if quick:
            overrides += ["data.train_limit=2000", "data.test_limit=1000", "epochs=1"]
        cfg = load_config(ROOT / "configs" / f"{name}_fashion_mnist.yaml", overrides)
        summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
        params = sum(p.numel() for p in create_model(cfg.model, **cfg.model_kwargs).parameters())
        anchor = ANCHORS.get(name, ("", float("nan")))
        rows.append({"model": name, "params": params, "epochs": cfg.epochs,
                     "precision": summary["precision"], "test_top1": summary["test"]["top1"],
                     "test_top5": summary["test"]["top5"], "train_seconds": summary["train_seconds"],
                     "train_cpu_seconds": summary["train_cpu_seconds"], "threads": cfg.threads,
                     "published": anchor[0], "published_top1": anchor[1]})
        print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": "FMNIST" + (" (quick subset)" if quick else ""), "threads": 2,
            "torch": torch.__version__, "rows": rows}
    (out / "fashion_mnist.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["| model | params | epochs | precision | test top-1 | train wall (s) | train CPU (s) / threads "
             "| published |", "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {r['model']} | {r['params']:,} | {r['epochs']} | {r['precision']} | {r['test_top1']:.4f} | "
              f"{r['train_seconds']:.0f} | {r['train_cpu_seconds'] / r['threads']:.0f} | {r['published']} {r['published_top1']:.3f} |" for r in rows]
    (out / "fashion_mnist.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small subset, one epoch: a smoke run")
    p.add_argument("--models", default="linear,cnn,resnet_small")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args()
    torch.set_num_threads(2)
    run(args.models.split(","), args.quick, Path(args.out))


if __name__ == "__main__":
    main()
