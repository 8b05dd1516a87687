"""FashionScenes segmentation, measured: test mIoU after CPU training with the SwiftNet recipe, and the
mIoU drop on every FS-Shift variant (texture, contrast, noise, blur).

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation.py          # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation.py --quick  # smoke run

Trains configs/swiftnet_rn18half_fashion_scenes.yaml (SwiftNet on a half-width ResNet-18; 2 CPU threads)
on the 4000 train scenes for as many steps as fit the 10-minute budget on this machine (the median
step of a probe run of the same recipe times a step, benchmarks/budget.py; `--budget 0` trains the config's epochs instead; the learning-rate
schedule spans the steps that run), then evaluates the 1000 test scenes (whole 128x128 images,
confusion matrix over all pixels) clean and under each shift: with one pass per image, and with the config's test-time
augmentation (data.eval_scales, data.eval_flip: probabilities averaged over rescaled and mirrored
copies; it costs evaluation time, not training time). Training time is reported as wall-clock seconds and as
process CPU seconds / 2 (what the run costs two otherwise idle cores; the machine is shared, so wall
time overstates it under load).
Parameters, FLOPs and peak memory of the architectures: benchmarks/segmentation_arch.py (cited below
when results/segmentation_arch.json exists). Writes results/segmentation.{json,md}.

No ImageNet weights for ResNet-18 can be had offline, so the backbone starts from random weights and
learns at the full rate (the config says why). `--config configs/swiftnet_rn18_fashion_scenes.yaml`
trains the paper's full-width SwiftNet-RN18 instead. Overrides after the options change the recipe for
a run, e.g. `model=swiftnet "model_kwargs={backbone: efficientnet_lite0, pretrained: true}"`.
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

from pixelwise.bench.measure import device_name  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.scenes import SHIFTS, FashionScenes  # noqa: E402
from pixelwise.engine.inference import evaluate_segmenter, write_segmentation_report  # noqa: E402
from pixelwise.tasks import train  # noqa: E402
from pixelwise.tasks import load_run  # noqa: E402
from budget import PROBE_STEPS, cpu_seconds, steps_within  # noqa: E402  (benchmarks/budget.py)

TARGET_MIOU, TARGET_SECONDS = 0.80, 600


def run(config: Path, quick: bool, out: Path, extra: list[str], budget: float = TARGET_SECONDS) -> dict:
    torch.set_num_threads(2)
    run_dir = ROOT / "runs" / ("bench_segmentation" + ("_quick" if quick else ""))
    # The in-loop evaluation is cut to one scene so the training time excludes evaluation.
    overrides = ["threads=2", f"out_dir={run_dir}", "data.test_limit=1", *extra]
    if quick:
        overrides += ["data.train_limit=64", "data.canvas_size=64", "data.crop_size=64", "max_steps=4",
                      "batch_size=8"]
    probe = None
    if budget and not quick:
        fixed = [o for o in extra if o.split("=", 1)[0] in ("max_steps", "epochs")]
        if fixed:
            raise SystemExit(f"{' '.join(fixed)}: the steps follow from --budget ({budget:g} s); "
                             "pass --budget 0 to train a fixed number of steps or epochs")
        steps, seconds_per_step = steps_within(config, [*overrides, f"out_dir={run_dir}_probe"], budget)
        overrides.append(f"max_steps={steps}")
        probe = {"steps": PROBE_STEPS, "median_seconds_per_step": seconds_per_step}
        print(json.dumps({"probe": probe, "steps_within_budget": steps}), flush=True)
    cfg = load_config(config, overrides)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    train_wall, train_cpu = time.perf_counter() - wall0, (cpu_seconds() - cpu0) / 2

    model, _ = load_run(run_dir)
    n_test = 40 if quick else None
    tta = {"scales": cfg.data.eval_scales, "flip": cfg.data.eval_flip}
    has_tta = cfg.data.test_time_augmentation
    rows, clean, clean_tta = [], None, None
    for shift in (None, *SHIFTS):
        ds = FashionScenes("test", root=cfg.data.root, size=cfg.data.canvas_size, n=n_test, shift=shift)
        name = f"FashionScenes test{' / FS-Shift ' + shift if shift else ''}"
        t0 = time.perf_counter()
        meter = evaluate_segmenter(model, ds, len(ds.classes), torch.device("cpu"), cfg.eval_batch_size,
                                   progress=sys.stderr.isatty())
        metrics = write_segmentation_report(meter, list(ds.classes), out / "segmentation" / (shift or "clean"),
                                            title=name)
        clean = metrics["miou"] if shift is None else clean
        rows.append({"test_set": "FS" if shift is None else f"FS-Shift {shift}", "miou": metrics["miou"],
                     "pixel_accuracy": metrics["pixel_accuracy"], "drop": clean - metrics["miou"],
                     "eval_seconds": time.perf_counter() - t0, "per_class_iou": metrics["per_class_iou"]})
        if has_tta:
            t0 = time.perf_counter()
            meter = evaluate_segmenter(model, ds, len(ds.classes), torch.device("cpu"), cfg.eval_batch_size,
                                       progress=sys.stderr.isatty(), **tta)
            miou = meter.summary()["miou"]
            if shift is None:   # the per-class table and confusion figure of the augmented clean test
                write_segmentation_report(meter, list(ds.classes), out / "segmentation" / "clean_tta",
                                          title=f"{name}, test-time scales {tta['scales']}, flip {tta['flip']}")
                clean_tta = miou
            rows[-1].update(tta_miou=miou, tta_drop=clean_tta - miou, tta_eval_seconds=time.perf_counter() - t0)
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_class_iou"}), flush=True)

    arch_file = ROOT / "results" / "segmentation_arch.json"
    result = {"protocol": "FashionScenes" + (" (quick smoke run: 64 px, 4 steps)" if quick else ""),
              "config": str(config.relative_to(ROOT)), "overrides": overrides, "model": cfg.model,
              "threads": 2, "torch": torch.__version__, "steps": summary["step"],
              "budget_seconds": budget if probe else None, "probe": probe, "precision": summary["precision"],
              "device": device_name("cpu"),
              "train_wall_seconds": train_wall, "train_cpu_seconds_per_thread": train_cpu,
              "target": {"miou": TARGET_MIOU, "seconds": TARGET_SECONDS},
              "meets_target": clean >= TARGET_MIOU and min(train_wall, train_cpu) <= TARGET_SECONDS,
              "meets_target_with_tta": (clean_tta or 0) >= TARGET_MIOU and min(train_wall, train_cpu) <= TARGET_SECONDS,
              "test_time_augmentation": tta if has_tta else None,
              "rows": rows, "architecture": str(arch_file.relative_to(ROOT)) if arch_file.exists() else None}
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"FashionScenes, {cfg.model}, {summary['step']} steps of {cfg.batch_size} ({summary['precision']}, 2 threads): "
             f"training {train_wall:.0f} s wall, {train_cpu:.0f} s CPU per thread "
             f"(target: mIoU >= {TARGET_MIOU} within {TARGET_SECONDS} s)"
             + (f"; the steps that fit {budget:g} s here, at {probe['median_seconds_per_step']:.3f} s per step "
                f"(the median step of a {PROBE_STEPS}-step probe run)." if probe else "."), "",
             "| test set | mIoU | pixel accuracy | mIoU drop vs FS |"
             + (" mIoU, test-time augmentation | its drop |" if has_tta else ""),
             "| --- | ---: | ---: | ---: |" + (" ---: | ---: |" if has_tta else "")]
    lines += [f"| {r['test_set']} | {r['miou']:.4f} | {r['pixel_accuracy']:.4f} | {r['drop']:+.4f} |"
              + (f" {r['tta_miou']:.4f} | {r['tta_drop']:+.4f} |" if has_tta else "") for r in rows]
    if has_tta:
        lines += ["", f"Test-time augmentation: class probabilities averaged over the images resized by "
                  f"{', '.join(f'{s:g}' for s in tta['scales'])}" + (" and their mirror images" if tta["flip"] else "")
                  + f" (clean test evaluation {rows[0]['tta_eval_seconds']:.0f} s against "
                  f"{rows[0]['eval_seconds']:.0f} s for one pass)."]
    if arch_file.exists():
        lines += ["", f"Parameters, FLOPs and memory: {arch_file.relative_to(ROOT)} (benchmarks/segmentation_arch.py)."]
    (out / "segmentation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px scenes, a few steps: a smoke run")
    p.add_argument("--config", default=str(ROOT / "configs" / "swiftnet_rn18half_fashion_scenes.yaml"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--budget", type=float, default=TARGET_SECONDS,
                   help="seconds of training: as many steps as fit here (0: the config's epochs)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. epochs=3")
    args = p.parse_args()
    run(Path(args.config).resolve(), args.quick, Path(args.out), args.overrides, args.budget)


if __name__ == "__main__":
    main()
