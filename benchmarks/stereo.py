"""FS-Stereo, measured: the learned stereo network trained for 10 CPU minutes against OpenCV's StereoSGBM
in the same run, on the clean and the textured test pairs.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/stereo.py          # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/stereo.py --quick  # smoke run (seconds)

Trains configs/swiftnet_stereo_fs_stereo.yaml (2 CPU threads) on the clean and the textured training
pairs together for as many steps as fit the budget on this machine: the median step of a probe run
of the recipe times a step (benchmarks/budget.py), in fp32 and in bf16, and the faster precision trains
(`precision=...` after the options fixes it). Then evaluates both methods on the first --test-limit
(default all 1000) test pairs of each look: EPE, bad-1/2/3, D1 (> 3 px and > 5%) over all valid and
over non-occluded pixels, depth abs-rel up to 80 m, and the time per pair (the learned model in fp32,
batches of 50 and batch 1; SGBM one pair at a time, as OpenCV works). Target (DESIGN.md): learned
D1 (non-occluded) at most half of SGBM's. Writes results/stereo.{json,md} and results/stereo_examples.png.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.bench.measure import device_name  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.fs_stereo import FSStereo  # noqa: E402
from pixelwise.models.sgbm import StereoSGBM  # noqa: E402
from pixelwise.tasks import load_run, train  # noqa: E402
from pixelwise.tasks.stereo import DEPTH_CAP, StereoPairs, evaluate_stereo, stereo_table  # noqa: E402
from pixelwise.viz.disparity import plot_disparity_strip  # noqa: E402
from budget import PROBE_STEPS, cpu_seconds, steps_within  # noqa: E402  (benchmarks/budget.py)

TARGET_RATIO, TARGET_SECONDS = 0.5, 600
LOOKS = ("clean", "textured")


class SGBMCounting(nn.Module):
    """StereoSGBM's forward that also counts the pixels SGBM matched itself (its density)."""

    def __init__(self):
        super().__init__()
        self.sgbm, self.matched, self.pixels = StereoSGBM(), 0, 0

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        result = self.sgbm.predict_with_validity(left, right)
        self.matched += int(result.valid.sum())
        self.pixels += result.valid.numel()
        return result.disparity


def latency_ms(model: nn.Module, dataset, n: int = 20) -> float:
    """Median ms of one pair (batch 1) over the first n pairs, after one warm-up."""
    times = []
    with torch.inference_mode():
        for i in range(min(n, len(dataset)) + 1):
            left, right, _ = dataset[i % len(dataset)]
            started = time.perf_counter()
            model(left[None], right[None])
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[1:])


def run(config: Path, quick: bool, out: Path, extra: list[str], budget: float, test_limit: int | None) -> dict:
    torch.set_num_threads(2)
    run_dir = ROOT / "runs" / ("bench_stereo" + ("_quick" if quick else ""))
    overrides = ["threads=2", f"out_dir={run_dir}", "data.test_limit=1", *extra]
    if quick:
        overrides += ["data.train_limit=16", "data.canvas_size=64", "max_steps=3", "batch_size=8"]
        test_limit = 6
    probes = {}
    if budget and not quick:
        fixed = [o for o in extra if o.split("=", 1)[0] in ("max_steps", "epochs")]
        if fixed:
            raise SystemExit(f"{' '.join(fixed)}: the steps follow from --budget ({budget:g} s); "
                             "pass --budget 0 to train a fixed number of steps or epochs")
        given = [o.split("=", 1)[1] for o in extra if o.startswith("precision=")]
        for precision in given or ["fp32", "bf16"]:
            probes[precision] = steps_within(config, [*overrides, f"out_dir={run_dir}_probe",
                                                      f"precision={precision}"], budget)
            print(json.dumps({"probe": precision, "steps_within_budget": probes[precision][0],
                              "median_seconds_per_step": probes[precision][1]}), flush=True)
        precision = max(probes, key=lambda p: probes[p][0])
        steps = probes[precision][0]
        overrides += [f"precision={precision}", f"max_steps={steps}"]
    cfg = load_config(config, overrides)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    train_wall, train_cpu = time.perf_counter() - wall0, (cpu_seconds() - cpu0) / 2
    model, _ = load_run(run_dir)

    rows, strip = [], []
    for look in LOOKS:
        ds = StereoPairs([FSStereo("test", root=cfg.data.root, size=cfg.data.canvas_size, n=test_limit,
                                   variant=look)])
        sgbm = SGBMCounting()
        evaluations = {"learned": evaluate_stereo(model, ds, batch_size=cfg.eval_batch_size,
                                                  progress=sys.stderr.isatty()),
                       "sgbm": evaluate_stereo(sgbm, ds, batch_size=cfg.eval_batch_size, progress=sys.stderr.isatty())}
        for method, ev in evaluations.items():
            row = {"test_set": f"FS-Stereo {look}", "method": method, "pairs": len(ds), **ev.summary(),
                   "ms_per_pair": 1000 * ev.seconds / ev.pairs,
                   "ms_per_pair_batch1": latency_ms(model if method == "learned" else sgbm.sgbm, ds)}
            if method == "sgbm":
                row["sgbm_density"] = sgbm.matched / sgbm.pixels
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items()}), flush=True)
        learned, classical = rows[-2], rows[-1]
        learned["d1_noc_ratio_to_sgbm"] = learned["d1_noc"] / classical["d1_noc"]
        for i in range(2):
            ex = evaluations["learned"].examples[i]
            strip.append({"left": ex["left"], "disparity": ex["disparity"], "valid": ex["valid"],
                          "preds": {"learned": ex["pred"], "SGBM": evaluations["sgbm"].examples[i]["pred"]}})

    ratios = {r["test_set"]: r["d1_noc_ratio_to_sgbm"] for r in rows if r["method"] == "learned"}
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_disparity_strip(strip, out / "stereo_examples.png",
                                  title="FS-Stereo test pairs (clean, clean, textured, textured): learned vs SGBM")
    pairs_per_epoch = len(cfg.data.train_variants or [cfg.data.variant]) * (cfg.data.train_limit or 4000)
    epochs = summary["step"] * cfg.batch_size / pairs_per_epoch
    result = {"protocol": "FS-Stereo" + (" (quick smoke run: 64 px, 3 steps, 6 test pairs)" if quick else ""),
              "config": str(config.relative_to(ROOT)), "overrides": overrides, "model": cfg.model,
              "model_kwargs": cfg.model_kwargs, "train_variants": cfg.data.train_variants,
              "threads": 2, "torch": torch.__version__, "device": device_name("cpu"),
              "precision": summary["precision"], "steps": summary["step"], "batch_size": cfg.batch_size,
              "epochs": epochs, "budget_seconds": budget if probes else None,
              "probes": {p: {"steps": PROBE_STEPS, "median_seconds_per_step": s, "steps_within_budget": n}
                         for p, (n, s) in probes.items()},
              "train_wall_seconds": train_wall, "train_cpu_seconds_per_thread": train_cpu,
              "depth_cap_m": DEPTH_CAP, "target": {"d1_noc_ratio_to_sgbm": TARGET_RATIO},
              "d1_noc_ratio_to_sgbm": ratios, "meets_target": all(v <= TARGET_RATIO for v in ratios.values()),
              "sgbm": {"num_disparities": 48, "block_size": 5, "p1": "8 * C * 5^2", "p2": "32 * C * 5^2",
                       "uniqueness_ratio": 10, "speckle_window_size": 100, "speckle_range": 2,
                       "disp12_max_diff": 1, "mode": "sgbm", "holes": "filled, KITTI background interpolation"},
              "rows": rows, "figure": str(figure.relative_to(ROOT)) if figure.is_relative_to(ROOT) else str(figure)}
    (out / "stereo.json").write_text(json.dumps(result, indent=2) + "\n")
    probe_text = ", ".join(f"{p} {s:.3f} s per step" for p, (_, s) in probes.items())
    lines = [f"# FS-Stereo: learned stereo network vs StereoSGBM ({device_name('cpu')}, 2 threads)", "",
             f"{cfg.model} ({', '.join(f'{k}={v}' for k, v in cfg.model_kwargs.items())}), trained on the "
             f"{' + '.join(cfg.data.train_variants or [cfg.data.variant or 'clean'])} training pairs: "
             f"{summary['step']} steps of {cfg.batch_size} pairs ({epochs:.2f} epochs of the {pairs_per_epoch} "
             f"pairs, {summary['precision']}), "
             f"training {train_wall:.0f} s wall, {train_cpu:.0f} s CPU per thread"
             + (f"; the steps that fit {budget:g} s here (median step of a {PROBE_STEPS}-step "
                f"probe run: {probe_text})." if probes else "."), "",
             "| test set | method | EPE (px) | bad-3 | D1 | EPE noc | bad-3 noc | D1 noc | abs-rel noc "
             f"(<= {DEPTH_CAP:g} m) | ms per pair (batched) | ms per pair (batch 1) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['test_set']} ({r['pairs']}) | {r['method']} | {r['epe']:.3f} | {r['bad3']:.4f} | {r['d1']:.4f} | "
              f"{r['epe_noc']:.3f} | {r['bad3_noc']:.4f} | {r['d1_noc']:.4f} | {r['abs_rel_noc']:.4f} | "
              f"{r['ms_per_pair']:.1f} | {r['ms_per_pair_batch1']:.1f} |" for r in rows]
    lines += ["", "Target: learned D1 (non-occluded) <= " f"{TARGET_RATIO:g} x SGBM's: "
              + "; ".join(f"{k}: {v:.2f} x" for k, v in ratios.items())
              + (" (met)." if result["meets_target"] else " (not met)."), "",
              "SGBM: OpenCV StereoSGBM, numDisparities 48, block 5, P1 = 8 C 5^2, P2 = 32 C 5^2, uniqueness 10, "
              "speckle window 100 / range 2, left-right check 1 px; its unmatched pixels are filled by KITTI's "
              "background interpolation (density: "
              + ", ".join(f"{r['test_set']} {r['sgbm_density']:.3f}" for r in rows if r["method"] == "sgbm") + ").",
              f"Figures over valid pixels ('noc': not occluded in the right view); D1: error > 3 px and > 5%; depth "
              f"abs-rel over pixels whose true depth is <= {DEPTH_CAP:g} m, predictions clipped to it. The learned "
              "model is timed in fp32.", "", f"Examples: {figure.name} (left view, truth, learned, SGBM, their errors).",
              "", "## Learned model, clean test pairs", "", *stereo_table(rows[0]), ""]
    (out / "stereo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px pairs, a few steps: a smoke run")
    p.add_argument("--config", default=str(ROOT / "configs" / "swiftnet_stereo_fs_stereo.yaml"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--budget", type=float, default=TARGET_SECONDS,
                   help="seconds of training: as many steps as fit here (0: the config's epochs)")
    p.add_argument("--test-limit", type=int, default=None, help="test pairs per look (default all 1000)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. optim.lr=0.001")
    args = p.parse_args()
    run(Path(args.config).resolve(), args.quick, Path(args.out), args.overrides, args.budget, args.test_limit)


if __name__ == "__main__":
    main()
