"""FS-Det, measured: our detector (CenterNet heads on SwiftNet's encoder and ladder) against torchvision's
FCOS on the same backbone, trained with the same budget in the same run, with the ground-truth oracle.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/detection.py          # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/detection.py --quick  # smoke run

Each config (configs/swiftnet_det_fs_det.yaml, configs/fcos_fs_det.yaml: half-width ResNet-18 from
scratch, Adam, cosine schedule, 2 CPU threads) trains on the 4000 FS-Det train scenes for as many
steps as fit the budget (600 s) on this machine: a probe run of the same recipe times a step by the
median of its step times (benchmarks/budget.py, as every training benchmark does), and the schedule spans
the steps that run. Both are then
evaluated on the 1000 test scenes with the COCO protocol (pixelwise.metrics.detection.coco_map, equal
to pycocotools): AP@[.5:.95], AP50, AP75, AR@100, and timed end to end (boxes out, batch 1, one
128x128 scene, median of interleaved rounds, fp32). The oracle row scores the ground-truth boxes
themselves (AP 1.0: the evaluation's sanity check). Training time is reported as wall seconds and as
process CPU seconds / 2 (the machine is shared; wall time overstates the cost under load).

Writes results/detection.{md,json}, results/detection_per_class.png, results/detection_examples.png and
each model's COCO report (tables, precision-recall curves) under results/detection/. Our detector's run
folder stays at runs/bench_detection (the tracking benchmark loads it), FCOS's at runs/bench_detection_fcos.
Overrides after the options apply to both configs, e.g. `optim.lr=1e-3`. `--train ours` retrains only
our detector and takes FCOS's run folder and training figures as an earlier run left them
(results/detection.json).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from pixelwise.bench.measure import device_name, time_interleaved  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.fs_det import FSDet  # noqa: E402
from pixelwise.metrics.detection import coco_map  # noqa: E402
from pixelwise.tasks import get_task, load_run, train  # noqa: E402
from pixelwise.tasks.detection import write_detection_report  # noqa: E402
from pixelwise.viz.detections import draw_detections  # noqa: E402
from pixelwise.viz.figures import plt, save_figure  # noqa: E402
from budget import PROBE_STEPS, cpu_seconds, steps_within  # noqa: E402  (benchmarks/budget.py)

BUDGET_SECONDS = 600
MODELS = {   # key: (label, config, run folder)
    "ours": ("SwiftNet + CenterNet heads (ours)", ROOT / "configs" / "swiftnet_det_fs_det.yaml", "bench_detection"),
    "fcos": ("torchvision FCOS", ROOT / "configs" / "fcos_fs_det.yaml", "bench_detection_fcos"),
}
METRICS = (("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"), ("ar100", "AR@100"))
EXAMPLE_SCORE = 0.3


def train_one(config: Path, run_dir: Path, quick: bool, extra: list[str], budget: float) -> dict:
    """Train one config for the steps that fit `budget` seconds (quick: 4 steps on 64 px scenes)."""
    # The in-loop evaluation is cut to one scene so the training time excludes evaluation.
    overrides = ["threads=2", f"out_dir={run_dir}", "data.test_limit=1", *extra]
    if quick:
        overrides += ["data.train_limit=64", "data.canvas_size=64", "max_steps=4", "batch_size=8"]
    probe = None
    if budget and not quick:
        steps, per_step = steps_within(config, [*overrides, f"out_dir={run_dir}_probe"], budget)
        overrides.append(f"max_steps={steps}")
        probe = {"steps": PROBE_STEPS, "median_seconds_per_step": per_step, "steps_within_budget": steps}
        print(json.dumps({"config": config.name, "probe": probe}), flush=True)
    cfg = load_config(config, overrides)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    return {"config": str(config.relative_to(ROOT)), "overrides": overrides, "model": cfg.model,
            "model_kwargs": cfg.model_kwargs, "steps": summary["step"], "batch_size": cfg.batch_size,
            "precision": summary["precision"], "probe": probe,
            "train_wall_seconds": time.perf_counter() - wall0, "train_cpu_seconds_per_thread": (cpu_seconds() - cpu0) / 2}


def oracle(dataset: FSDet) -> dict:
    """COCO numbers of the ground-truth boxes given as detections (score 1): AP 1.0 if the evaluation is sound."""
    targets = [dataset[i][1] for i in range(len(dataset))]
    predictions = [{"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]}
                   for t in targets]
    return coco_map(targets, predictions, labels=range(1, len(dataset.classes) + 1))


def plot_per_class(rows: dict, classes: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(rows)
    for j, (key, row) in enumerate(rows.items()):
        values = [row["per_class_ap"][c] for c in classes]
        ax.bar([i + (j - (len(rows) - 1) / 2) * width for i in range(len(classes))], values, width,
               label=MODELS[key][0])
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylabel("AP@[.5:.95]")
    ax.set_title("FS-Det test: AP per class")
    ax.legend()
    return save_figure(fig, path)


def plot_examples(models: dict, dataset: FSDet, path: Path, n: int = 6) -> Path:
    """Test scenes with the detections scoring >= EXAMPLE_SCORE: ground truth, then each model."""
    classes = list(dataset.classes)
    fig, axes = plt.subplots(1 + len(models), n, figsize=(2.2 * n, 2.3 * (1 + len(models))))
    for i in range(n):
        image, target = dataset[i]
        panels = [("ground truth", target["boxes"], target["labels"], None)]
        for key, model in models.items():
            with torch.inference_mode():
                found = model(image[None])[0]
            keep = found["scores"] >= EXAMPLE_SCORE
            panels.append((key, found["boxes"][keep], found["labels"][keep], found["scores"][keep]))
        for row, (name, boxes, labels, scores) in enumerate(panels):
            ax = axes[row, i]
            ax.imshow(draw_detections(image, boxes, labels, classes, scores))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name)
    fig.suptitle(f"FS-Det test scenes; detections scoring >= {EXAMPLE_SCORE}")
    return save_figure(fig, path)


def run(quick: bool, out: Path, extra: list[str], budget: float = BUDGET_SECONDS,
        train_only: list[str] | None = None) -> dict:
    torch.set_num_threads(2)
    suffix = "_quick" if quick else ""
    task = get_task("detection")
    earlier = out / "detection.json"
    trained = {}
    for key, (_, config, folder) in MODELS.items():
        if train_only is None or key in train_only:
            trained[key] = train_one(config, ROOT / "runs" / (folder + suffix), quick, extra, budget)
        else:   # as an earlier run of this benchmark trained it
            if not earlier.is_file():
                raise SystemExit(f"--train {','.join(train_only)}: {earlier} holds no earlier run to take {key} from")
            row = json.loads(earlier.read_text())["rows"][key]
            trained[key] = {k: row[k] for k in ("config", "overrides", "model", "model_kwargs", "steps", "batch_size",
                                                "precision", "probe", "train_wall_seconds",
                                                "train_cpu_seconds_per_thread")}
            trained[key]["from_earlier_run"] = True
    models, rows = {}, {}
    for key, (label, config, folder) in MODELS.items():
        model, _ = load_run(ROOT / "runs" / (folder + suffix))
        models[key] = model.eval()
        cfg = load_config(config, trained[key]["overrides"])
        data = cfg.data.model_copy(update={"test_limit": 40 if quick else None})
        test = task.dataset(data, "test")
        t0 = time.perf_counter()
        meter = task.evaluate(model, test, cfg, len(test.classes), torch.device("cpu"), progress=sys.stderr.isatty())
        metrics = write_detection_report(meter, list(test.classes), out / "detection" / key, title=f"{label}, FS-Det test")
        rows[key] = {"label": label, **trained[key], **metrics, "eval_seconds": time.perf_counter() - t0}
        print(json.dumps({k: rows[key][k] for k in ("label", "steps", "precision", "ap", "ap50", "ap75", "ar100")}),
              flush=True)
    side = data.canvas_size
    scene = test[0][0][None].as_subclass(torch.Tensor)
    with torch.inference_mode():
        latency = time_interleaved({key: (lambda m=m: m(scene)) for key, m in models.items()},
                                   warmup=5, runs=10 if quick else 100)
    for key in rows:
        rows[key]["latency_ms"] = latency[key]["median_ms"]
    truth = oracle(test)
    classes = list(test.classes)
    per_class_png = plot_per_class(rows, classes, out / "detection_per_class.png")
    examples_png = plot_examples(models, test, out / "detection_examples.png")

    ours, fcos = rows["ours"], rows["fcos"]
    result = {"protocol": "FS-Det" + (" (quick smoke run: 64 px, 4 steps)" if quick else ""),
              "device": device_name("cpu"), "threads": 2, "torch": torch.__version__,
              "budget_seconds": budget if not quick else None, "test_scenes": len(test), "scene_size": side,
              "latency": "batch 1, one scene, fp32, boxes out, median of interleaved rounds",
              "rows": rows, "oracle": {k: truth[k] for k, _ in METRICS},
              "ours_minus_fcos_ap": ours["ap"] - fcos["ap"], "meets_target": ours["ap"] > fcos["ap"],
              "figures": [str(per_class_png), str(examples_png)]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "detection.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"FS-Det test ({len(test)} scenes of {side}x{side} px), COCO protocol; each detector trained on "
             f"the train scenes for the steps that fit {budget:g} s here (2 threads, {device_name('cpu')}).", "",
             "| detector | AP | AP50 | AP75 | AR@100 | latency per scene (ms) | steps x batch | precision | "
             "train wall s | train CPU s / 2 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for r in rows.values():
        lines.append(f"| {r['label']} | " + " | ".join(f"{r[k]:.4f}" for k, _ in METRICS)
                     + f" | {r['latency_ms']:.1f} | {r['steps']} x {r['batch_size']} | {r['precision']} | "
                       f"{r['train_wall_seconds']:.0f} | {r['train_cpu_seconds_per_thread']:.0f} |")
    lines.append("| ground-truth boxes (oracle) | " + " | ".join(f"{truth[k]:.4f}" for k, _ in METRICS)
                 + " | - | - | - | - | - |")
    for r in rows.values():
        if r.get("probe"):
            p = r["probe"]
            per_step = p.get("median_seconds_per_step") or p.get("seconds_per_step")
            how = "median step time of a probe run" if "median_seconds_per_step" in p else "difference of two probe runs"
            lines.append(f"- {r['label']}: {r['steps']} steps from {per_step:.3f} s per step ({how})"
                         + ("; trained by an earlier run of this benchmark" if r.get("from_earlier_run") else "") + ".")
    lines += ["", f"Ours minus FCOS: {result['ours_minus_fcos_ap']:+.4f} AP "
              f"({'ahead' if result['meets_target'] else 'behind'}; target: ahead).",
              "Latency: " + result["latency"] + ". Per-class AP: detection_per_class.png; precision-recall "
              "curves and per-class tables: detection/ours, detection/fcos."]
    (out / "detection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px scenes, a few steps: a smoke run")
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                   help="seconds of training per detector: as many steps as fit here (0: the configs' epochs)")
    p.add_argument("--train", default=None,
                   help=f"comma-separated models to train ({', '.join(MODELS)}; default all); the others are "
                        "taken from their run folders and the earlier results in --out")
    p.add_argument("overrides", nargs="*", help="key=value overrides for both configs, e.g. optim.lr=1e-3")
    args = p.parse_args()
    run(args.quick, Path(args.out), args.overrides, args.budget, args.train.split(",") if args.train else None)


if __name__ == "__main__":
    main()
