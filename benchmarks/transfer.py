"""Knowledge transfer on Fashion-MNIST: ImageNet-pretrained EfficientNet-Lite0 versus the same network from scratch.

    flock /tmp/pixelwise-bench.lock python benchmarks/transfer.py           # 500 and 2000 images, 10k test
    flock /tmp/pixelwise-bench.lock python benchmarks/transfer.py --quick   # smoke run

Each run trains on the first N Fashion-MNIST training images with its recipe
(configs/transfer_fashion_mnist.yaml, configs/transfer_scratch_fashion_mnist.yaml; they differ only in the
initialisation and in what that implies: freezing and a lower backbone rate for the pretrained one) and
is tested on the full 10k test split, with 2 CPU threads. Writes results/transfer.{json,md}
(--quick: results/transfer_quick.{json,md}).

Why 64x64 inputs and these epochs: a CPU forward/backward pass of EfficientNet-Lite0 costs in proportion
to the pixel count; at 64 px (2.3x the 28 px originals, a 2x2 map at stride 32) the four runs and four
10k test passes fit in well under 20 minutes on 2 threads, where 96 px would cost 2.25x. Both
initialisations get the same steps: 15 epochs of 500 images (225 steps of 32), 6 epochs of 2000 (372
steps), so the comparison is at equal compute; the table shows the final training loss of each run, to
tell a generalisation gap from an unfinished run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.config import load_config  # noqa: E402
from pixelwise.tasks import train  # noqa: E402

CONFIGS = {"imagenet": "transfer_fashion_mnist.yaml", "scratch": "transfer_scratch_fashion_mnist.yaml"}
EPOCHS = {500: 15, 2000: 6}


def run_one(init: str, n: int, epochs: int, quick: bool) -> dict:
    """Train one (initialisation, training-set size) cell and test it; returns its table row."""
    overrides = ["threads=2", f"data.train_limit={n}", f"epochs={epochs}", f"name=transfer_{init}_{n}",
                 f"out_dir={ROOT / 'runs' / 'bench_transfer' / f'{init}_{n}'}"]
    if quick:
        overrides += ["data.test_limit=500", "optim.freeze_backbone_steps=2", "schedule.warmup_steps=2"]
    cfg = load_config(ROOT / "configs" / CONFIGS[init], overrides)
    started = time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    seconds = time.perf_counter() - started
    return {"init": init, "train_images": n, "epochs": epochs, "steps": summary["step"],
            "input_size": cfg.model_kwargs["input_size"], "test_images": summary["test"]["n"],
            "test_top1": summary["test"]["top1"], "final_train_loss": summary["history"][-1]["train_loss"],
            "seconds": seconds, "seconds_per_step": seconds / max(1, summary["step"])}


def write_tables(rows: list[dict], quick: bool, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": "FMNIST subsets, full test split" + (" (quick smoke run)" if quick else ""),
            "threads": 2, "torch": torch.__version__, "rows": rows}
    name = "transfer_quick" if quick else "transfer"  # a smoke run never overwrites the real table
    (out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["| train images | init | epochs | steps | test images | test top-1 | final train loss | "
             "time (s, train + test) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['train_images']} | {r['init']} | {r['epochs']} | {r['steps']} | {r['test_images']} | "
              f"{r['test_top1']:.4f} | {r['final_train_loss']:.3f} | {r['seconds']:.0f} |" for r in rows]
    by = {(r["init"], r["train_images"]): r for r in rows}
    gains = [f"{n} images: pretrained - scratch = {by['imagenet', n]['test_top1'] - by['scratch', n]['test_top1']:+.4f}"
             for n in sorted({r["train_images"] for r in rows}) if ("imagenet", n) in by and ("scratch", n) in by]
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {g}" for g in gains) + "\n"
    (out / f"{name}.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 training images, 1 epoch, 500 test images")
    p.add_argument("--sizes", default="500,2000", help="training-set sizes, comma-separated")
    p.add_argument("--inits", default="imagenet,scratch")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args()
    torch.set_num_threads(2)
    sizes = [100] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        for init in args.inits.split(","):
            rows.append(run_one(init, n, 1 if args.quick else EPOCHS.get(n, 8), args.quick))
            print(json.dumps(rows[-1]), flush=True)
    print(write_tables(rows, args.quick, Path(args.out)))


if __name__ == "__main__":
    main()
