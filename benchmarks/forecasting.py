"""FS-Forecast: semantic segmentation forecasting at t+3 and t+9 (the lecture's slide 37 on FS-Video):
oracle, copy-last, flow warp, F2F and F2F with the cross-entropy term, mIoU and mIoU over the garments.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/forecasting.py          # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/forecasting.py --quick  # smoke run

1. The single-frame model (configs/swiftnet_f2f_fs_forecast.yaml: SwiftNet decoding from stride 8) trains
   on the frames of the 600 training sequences for as many steps as fit --segmenter-budget (300 s).
2. F2F (configs/f2f_fs_forecast.yaml) over that frozen model, for as many steps as fit --budget (600 s),
   once with feature regression alone (ce_weight 0) and once with the cross-entropy term (ce_weight 1).
   The median step of a probe run of each recipe times a step (benchmarks/budget.py); the
   learning-rate schedule spans the steps that run.
3. Each forecasting run's evaluation: the 100 test clips at t = 20, oracle (the single-frame model on the
   true future frame), copy-last (its segmentation of frame t), flow warp (Farneback between t-3 and t,
   extrapolated and warped forward) and F2F, one confusion matrix per method and horizon over all pixels.
   Gap closed = (F2F - copy-last) / (oracle - copy-last) in mIoU.
Writes results/forecasting.{md,json} and results/forecasting_examples.png (strips of the F2F+CE run).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.bench.measure import device_name  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.tasks import train  # noqa: E402
from pixelwise.tasks.forecasting import LABELS, METHODS, percent  # noqa: E402
from budget import cpu_seconds, steps_within  # noqa: E402  (benchmarks/budget.py)

SEGMENTER_SECONDS, FORECASTER_SECONDS = 300, 600
TARGET_GAP_T3 = 0.5          # share of the copy-last-to-oracle gap closed at t+3; and beat copy-last at t+9
PROBE_STEPS = 13             # steps of the probe run that times a step (the first 5 warm up)
HORIZONS = (3, 9)


def train_within(config: Path, overrides: list[str], budget: float | None, run_dir: Path) -> dict:
    """Train `config` into run_dir for the steps that fit `budget` (None: as the overrides say); the summary
    with wall and CPU seconds and the probe."""
    probe = None
    if budget:
        steps, per_step = steps_within(config, [*overrides, f"out_dir={run_dir}_probe", "data.test_limit=1"],
                                       budget, PROBE_STEPS)
        shutil.rmtree(f"{run_dir}_probe", ignore_errors=True)
        overrides = [*overrides, f"max_steps={steps}"]
        probe = {"steps": PROBE_STEPS, "median_seconds_per_step": per_step, "steps_within_budget": steps}
        print(json.dumps({"run": run_dir.name, "probe": probe}), flush=True)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(load_config(config, [*overrides, f"out_dir={run_dir}"]), progress=sys.stderr.isatty(),
                    overwrite=True)
    summary.update(wall_seconds=time.perf_counter() - wall0, cpu_seconds_per_thread=(cpu_seconds() - cpu0) / 2,
                   probe=probe, budget_seconds=budget)
    print(json.dumps({"run": run_dir.name, "steps": summary["step"], "train_seconds": summary["train_seconds"],
                      "precision": summary["precision"], "test": {k: v for k, v in summary.get("test", {}).items()
                                                                  if isinstance(v, float)}}), flush=True)
    return summary


def table(metrics: dict, ce_metrics: dict) -> list[str]:
    """Slide 37's table: a row per method, mIoU and mIoU-MO at t+3 and t+9; F2F twice (without, with CE)."""
    rows = ["| method | t+3 mIoU | t+3 mIoU-MO | t+9 mIoU | t+9 mIoU-MO | gap closed t+3 | gap closed t+9 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    entries = [(LABELS[m], m, metrics) for m in METHODS] + [("F2F + cross-entropy", "f2f", ce_metrics)]
    for label, m, source in entries:
        cells = [f"{source[f'{m}_t{h}_{k}']:.4f}" for h in HORIZONS for k in ("miou", "miou_mo")]
        gaps = [percent(source.get(f"{m}_t{h}_gap_closed")) if m not in ("oracle", "copy_last") else "" for h in HORIZONS]
        rows.append(f"| {label} | " + " | ".join(cells + gaps) + " |")
    return rows


def run(quick: bool, out: Path, seg_budget: float, budget: float, extra: list[str]) -> dict:
    torch.set_num_threads(2)
    runs = ROOT / "runs" / ("bench_forecasting" + ("_quick" if quick else ""))
    common = ["threads=2"]
    if quick:   # 64 px, few sequences and steps: seconds
        common += ["data.canvas_size=64", "data.train_limit=16", "data.test_limit=8"]
        seg_budget = budget = 0
    seg_config, f2f_config = ROOT / "configs" / "swiftnet_f2f_fs_forecast.yaml", ROOT / "configs" / "f2f_fs_forecast.yaml"
    seg = train_within(seg_config, [*common, "data.test_limit=1", *(["data.crop_size=64", "max_steps=6"] if quick else [])],
                       seg_budget, runs / "segmenter")
    forecasts = {}
    for name, ce in (("f2f", 0.0), ("f2f_ce", 1.0)):
        overrides = [*common, f"model_kwargs.pretrained={runs / 'segmenter'}", f"model_kwargs.ce_weight={ce}",
                     *(["max_steps=4"] if quick else []), *extra]
        forecasts[name] = train_within(f2f_config, overrides, budget, runs / name)
    metrics, ce_metrics = forecasts["f2f"]["test"], forecasts["f2f_ce"]["test"]
    checks = {k: metrics[k] == ce_metrics[k] for k in metrics if k.split("_t")[0] in ("oracle", "copy_last", "flow_warp")}
    gap3 = {n: f["test"].get("f2f_t3_gap_closed") for n, f in forecasts.items()}
    beats9 = {n: f["test"]["f2f_t9_miou"] > f["test"]["copy_last_t9_miou"] for n, f in forecasts.items()}
    result = {
        "protocol": "FS-Forecast: 100 test clips at t = 20, observed t-9, t-6, t-3, t; targets t+3, t+9"
                    + (" (quick smoke run: 64 px, 8 clips, a few steps)" if quick else ""),
        "device": device_name("cpu"), "threads": 2, "torch": torch.__version__,
        "segmenter": {k: seg.get(k) for k in ("step", "precision", "train_seconds", "wall_seconds",
                                              "cpu_seconds_per_thread", "probe", "budget_seconds")},
        "forecasters": {n: {k: f.get(k) for k in ("step", "precision", "train_seconds", "wall_seconds",
                                                  "cpu_seconds_per_thread", "probe", "budget_seconds")}
                        for n, f in forecasts.items()},
        "metrics": {"f2f": metrics, "f2f_ce": ce_metrics},
        "baselines_equal_in_both_runs": all(checks.values()),
        "target": {"gap_closed_t3": TARGET_GAP_T3, "beat_copy_last_t9": True},
        "gap_closed_t3": gap3, "beats_copy_last_t9": beats9,
        "meets_target": {n: (gap3[n] or 0) >= TARGET_GAP_T3 and beats9[n] for n in forecasts},
        "runs": {"segmenter": str(runs / "segmenter"), **{n: str(runs / n) for n in forecasts}},
    }
    out.mkdir(parents=True, exist_ok=True)
    strips = Path(forecasts["f2f_ce"]["run_dir"]) / "forecast_examples.png"
    if strips.exists():
        shutil.copyfile(strips, out / "forecasting_examples.png")
    (out / "forecasting.json").write_text(json.dumps(result, indent=2) + "\n")
    f, fc = result["forecasters"]["f2f"], result["forecasters"]["f2f_ce"]
    lines = [f"FS-Forecast ({result['protocol']}), {result['device']}, 2 threads. Single-frame model swiftnet_f2f: "
             f"{seg['step']} steps ({seg['precision']}, {seg['train_seconds']:.0f} s). F2F: {f['step']} steps "
             f"({f['train_seconds']:.0f} s), F2F + cross-entropy: {fc['step']} steps ({fc['train_seconds']:.0f} s); "
             f"the frozen segmenter in {f['precision']}, the forecaster in fp32. mIoU-MO: mean IoU over the 10 garment "
             "classes (the moving objects). Gap closed: (F2F - copy-last) / (oracle - copy-last) in mIoU.", "",
             *table(metrics, ce_metrics), "",
             f"Target: >= {TARGET_GAP_T3:.0%} of the gap closed at t+3 [Saric et al. 2019: 41% on Cityscapes] and "
             f"ahead of copy-last at t+9: F2F {'met' if result['meets_target']['f2f'] else 'not met'}, F2F + "
             f"cross-entropy {'met' if result['meets_target']['f2f_ce'] else 'not met'}.",
             "", "Strips (observed frames, truth and each method's forecast): forecasting_examples.png."]
    (out / "forecasting.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px clips, a few steps: a smoke run")
    p.add_argument("--out", default=None, help="results folder (default: results/; --quick: its run folder)")
    p.add_argument("--segmenter-budget", type=float, default=SEGMENTER_SECONDS,
                   help="seconds of training of the single-frame model")
    p.add_argument("--budget", type=float, default=FORECASTER_SECONDS, help="seconds of training of each forecaster")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the forecasters' config, e.g. model_kwargs.width=64")
    args = p.parse_args()
    out = Path(args.out) if args.out else ROOT / ("runs/bench_forecasting_quick/results" if args.quick else "results")
    run(args.quick, out, args.segmenter_budget, args.budget, args.overrides)


if __name__ == "__main__":
    main()
