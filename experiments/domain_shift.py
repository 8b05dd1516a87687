"""Cross-dataset generalization, measured: train on FashionScenes, test on each FS-Shift variant.

    python experiments/domain_shift.py           # SwiftNet-RN18, the recipe of configs/swiftnet_rn18_fashion_scenes.yaml
    python experiments/domain_shift.py --quick   # smoke run
    python experiments/domain_shift.py epochs=2  # key=value overrides of the recipe, for both runs

FS-Shift (DESIGN.md) keeps the test scenes and changes what the camera sees: real-photo background
textures, contrast, noise, blur. The mIoU drop against the clean test scenes is the price of the shift.
A second model trained with photometric augmentation (random brightness/contrast, blur and noise on the
training scenes) shows how much of the gap an augmentation closes. Writes results/domain_shift/
{domain_shift.md, domain_shift.json, miou.png}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import ROOT, write_table

from pixelwise.config import load_config
from pixelwise.data import build_dataset
from pixelwise.data.scenes import SHIFTS
from pixelwise.engine.inference import evaluate_segmenter
from pixelwise.tasks import train
from pixelwise.tasks import load_run
from pixelwise.viz.figures import plt, save_figure


def shifted_miou(run: Path, cfg, variants: list[str | None], progress: bool) -> dict[str, float]:
    """Test mIoU of a trained run on the clean test scenes (None) and on each FS-Shift variant."""
    model, config = load_run(run)
    out = {}
    for v in variants:
        data = cfg.data.model_copy(update={"variant": v})
        meter = evaluate_segmenter(model, build_dataset(data, "test"), len(config["classes"]), torch.device("cpu"),
                                   batch_size=cfg.eval_batch_size, progress=progress)
        out[v or "clean"] = meter.summary()["miou"]
        print(f"{run.name} {v or 'clean'}: mIoU {out[v or 'clean']:.4f}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--config", default=str(ROOT / "configs" / "swiftnet_rn18_fashion_scenes.yaml"))
    p.add_argument("--out", default=str(ROOT / "results" / "domain_shift"))
    p.add_argument("overrides", nargs="*", help="key=value config overrides for both runs, e.g. epochs=2")
    args = p.parse_args()
    out, progress = Path(args.out), sys.stderr.isatty()
    quick = ["data.train_limit=32", "data.test_limit=8", "epochs=1", "data.canvas_size=64",
             "data.crop_size=64", "batch_size=8"] if args.quick else []
    variants = [None, *SHIFTS]
    results = {}
    for name, extra in (("baseline", []), ("photometric", ["data.photometric=true"])):
        cfg = load_config(args.config, [f"name=shift_{name}", f"out_dir={out / name}", *quick, *extra,
                                        *args.overrides])
        train(cfg, progress=progress, overwrite=True)
        results[name] = shifted_miou(out / name, cfg, variants, progress)
    rows = []
    for v in variants:
        key = v or "clean"
        row = {"test": key}
        for name in results:
            row[f"{name}_miou"] = results[name][key]
            row[f"{name}_drop"] = results[name]["clean"] - results[name][key]
        rows.append(row)
    md = write_table(out, "domain_shift", rows, {
        "test": "test scenes", "baseline_miou": "mIoU", "baseline_drop": "drop",
        "photometric_miou": "mIoU, photometric aug.", "photometric_drop": "drop, photometric aug."},
        {"config": args.config, "overrides": args.overrides, "quick": args.quick})
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(rows))
    for j, name in enumerate(results):
        ax.bar([x + (j - 0.5) * 0.4 for x in xs], [r[f"{name}_miou"] for r in rows], width=0.4, label=name)
    ax.set_xticks(list(xs), [r["test"] for r in rows])
    ax.set_ylabel("test mIoU")
    ax.set_title("FashionScenes -> FS-Shift: mIoU under domain shift")
    ax.legend()
    save_figure(fig, out / "miou.png")
    print(md)


if __name__ == "__main__":
    main()
