"""FS-OOD, measured: AP, AUROC and FPR at 95% TPR of dense outlier scores, with the inlier mIoU.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/outliers.py          # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/outliers.py --quick  # smoke run

Trains configs/swiftnet_lite0_fs_ood.yaml (SwiftNet on the ImageNet-pretrained EfficientNet-Lite0,
2 CPU threads) once per variant: 'none' (no negatives: the max-softmax, entropy and max-logit
baselines), 'two_heads' (outlier head beside the semantic head, crops of scikit-learn's sample photos
pasted as negatives) and 'single_head' (a 12th 'outlier' class). Each model is
evaluated on the 1000 FS-OOD test scenes (real-photo outliers, never seen), metrics exact over all
pixels. Results are written after every variant, so an interrupted run keeps what it finished;
--reuse skips training of variants whose run folder holds finished weights. The recipe (steps, crops,
rates) is the config's; key=value overrides after the options change it for every variant, and
`--config configs/swiftnet_rn18_fs_ood.yaml` trains the backbone from scratch instead.
Writes results/outliers.{json,md} and per-variant tables and precision-recall figures in results/outliers/.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.fs_ood import FSOOD  # noqa: E402
from pixelwise.tasks import train  # noqa: E402
from pixelwise.outliers.evaluate import evaluate_outliers, write_outlier_report  # noqa: E402
from pixelwise.tasks import load_run  # noqa: E402

VARIANTS = ("none", "two_heads", "single_head")
TARGET_AP_RATIO, TARGET_FPR95 = 2.0, 0.10


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_variant(config: Path, mode: str, quick: bool, reuse: bool, extra: list[str]) -> tuple[Path, dict]:
    run_dir = ROOT / "runs" / "bench_outliers" / mode
    # The in-loop evaluation is cut to one scene so the training time excludes evaluation.
    overrides = ["threads=2", f"out_dir={run_dir}", f"name=fs_ood_{mode}", f"outliers.mode={mode}",
                 "data.test_limit=1", *extra]
    if quick:
        overrides += ["data.train_limit=64", "data.canvas_size=64", "data.crop_size=64", "max_steps=4",
                      "batch_size=8"]
    cfg = load_config(config, overrides)
    done = run_dir / "summary.json"
    if reuse and done.is_file() and json.loads(done.read_text()).get("status") == "finished":
        info = json.loads(done.read_text())
        return run_dir, {"overrides": overrides, "steps": info["step"], "train_wall_seconds": info["train_seconds"],
                         "train_cpu_seconds_per_thread": None, "reused": True, "canvas": cfg.data.canvas_size}
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    return run_dir, {"overrides": overrides, "steps": summary["step"], "batch_size": cfg.batch_size,
                     "train_wall_seconds": time.perf_counter() - wall0,
                     "train_cpu_seconds_per_thread": (cpu_seconds() - cpu0) / 2, "reused": False,
                     "canvas": cfg.data.canvas_size}


def write_tables(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "outliers.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"FS-OOD ({result['protocol']}), {result['model']}, 2 CPU threads; metrics over all "
             f"{result.get('test_scenes', '?')} test scenes' pixels (outlier = positive).", "",
             "| score | model trained | AP | AUROC | FPR95 | inlier mIoU |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['score']} | {r['variant']} | {r['ap']:.4f} | {r['auroc']:.4f} | {r['fpr95']:.4f} | "
              f"{r['miou']:.4f} |" for r in result["rows"]]
    if result.get("target"):
        t = result["target"]
        lines += ["", f"Target: outlier head AP >= {TARGET_AP_RATIO}x max-softmax AP (no negatives) and FPR95 < "
                      f"{TARGET_FPR95}: AP ratio {t['ap_ratio']:.2f}, FPR95 {t['fpr95']:.4f} -> "
                      f"{'met' if t['met'] else 'not met'}."]
    lines += ["", "| model trained | steps | train wall s | train CPU s / thread |", "| --- | ---: | ---: | ---: |"]
    for v, info in result["training"].items():
        cpu = info["train_cpu_seconds_per_thread"]
        lines += [f"| {v} | {info['steps']} | {info['train_wall_seconds']:.0f} | {'-' if cpu is None else f'{cpu:.0f}'} |"]
    (out / "outliers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def run(config: Path, quick: bool, variants: list[str], reuse: bool, out: Path, extra: list[str]) -> dict:
    torch.set_num_threads(2)
    result = {"protocol": "quick smoke run: 64 px, 4 steps, 40 scenes" if quick else "1000 test scenes, 128 px",
              "config": str(config.relative_to(ROOT)), "model": load_config(config).model, "threads": 2,
              "torch": torch.__version__, "rows": [], "training": {}, "target": None}
    test_set = None
    for mode in variants:
        run_dir, info = train_variant(config, mode, quick, reuse, extra)
        result["training"][mode] = info
        if test_set is None:
            test_set = FSOOD(size=info["canvas"], n=40 if quick else None, progress=sys.stderr.isatty())
            result["test_scenes"] = len(test_set)
        model, config_json = load_run(run_dir)
        t0 = time.perf_counter()
        evaluation = evaluate_outliers(model, test_set, len(config_json["classes"]), mode, torch.device("cpu"),
                                       batch_size=50, progress=sys.stderr.isatty())
        summary = write_outlier_report(evaluation, config_json["classes"], out / "outliers" / mode)
        info["eval_seconds"] = time.perf_counter() - t0
        scores = ["max_softmax", "entropy", "max_logit"] if mode == "none" else ["outlier_head", "max_softmax"]
        for name in scores:
            m = evaluation.metrics()[name]
            result["rows"].append({"score": name if mode != "single_head" or name != "outlier_head"
                                   else "outlier_class", "variant": mode, "ap": m["ap"], "auroc": m["auroc"],
                                   "fpr95": m["fpr95"], "miou": summary["miou"]})
        baseline = next((r for r in result["rows"] if r["variant"] == "none" and r["score"] == "max_softmax"), None)
        head = next((r for r in result["rows"] if r["variant"] == "two_heads" and r["score"] == "outlier_head"), None)
        if baseline and head:
            ratio = head["ap"] / max(baseline["ap"], 1e-12)
            result["target"] = {"ap_ratio": ratio, "fpr95": head["fpr95"],
                                "met": ratio >= TARGET_AP_RATIO and head["fpr95"] < TARGET_FPR95}
        write_tables(result, out)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px scenes, a few steps, 40 test scenes: a smoke run")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--reuse", action="store_true", help="evaluate finished runs in runs/bench_outliers again")
    p.add_argument("--config", default=str(ROOT / "configs" / "swiftnet_lite0_fs_ood.yaml"))
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every variant, e.g. max_steps=500")
    args = p.parse_args()
    run(Path(args.config).resolve(), args.quick, args.variants, args.reuse, Path(args.out), args.overrides)


if __name__ == "__main__":
    main()
