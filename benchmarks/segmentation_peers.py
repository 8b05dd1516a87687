"""FashionScenes: SwiftNet side by side with the segmenters a user would pick instead, trained the same way.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation_peers.py          # full run
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation_peers.py --quick  # smoke run
    ... segmentation_peers.py --budget 150 --models swiftnet_rn18half,smp_fpn_r18             # a probe

Every model (SwiftNet single scale at half and full ResNet-18 width, SwiftNet pyramid; smp FPN and Unet
on ResNet-18; torchvision LRASPP and DeepLabV3 on MobileNetV3-Large, adapters in
segmentation_peer_models.py, `pip install pixelwise[bench]`) is trained by pixelwise's engine with the
recipe of configs/swiftnet_rn18half_fashion_scenes.yaml (Adam, cosine schedule, augmentation, batch 16,
bf16 where native, channels-last, 2 threads, random initialization: no ImageNet weights offline) for as
many steps as fit `--budget` seconds on this machine (the median step of a probe run times a step, benchmarks/budget.py),
in one process, one model after the other. Then: mIoU on the 1000 test scenes (one pass, no test-time
augmentation), parameters and GMACs at 1024x2048 with 19 classes (FlopCounterMode on the meta device), and
latency at 1x3x1024x2048 (eager, eval, channels-last, fp32 and bf16 autocast) of all models timed in
interleaved rounds, so that a changing load on a shared machine affects them alike.

Learning rates: the SwiftNets keep the recipe's (tuned for it). Each peer gets its own: it is trained
`--tune-budget` seconds (steps from its probe) at every rate of LR_GRID, around the recipe's 2e-3, and
at one rate beyond the grid where the best lies on its edge; scored on 200 validation scenes (not the
test scenes) by mIoU, ties (all background after a short run) broken by the lower cross-entropy; the
best rate trains the full budget
(`--tune all` tunes the SwiftNets too, `--tune none` keeps the recipe for everyone).
Cost of the full run: about (budget + 2.5 min) per model plus 3-4 x (tune budget + 20 s) per tuned model
and the latency rounds: ~105 minutes for the default 7 models at 600 s.

Targets (DESIGN.md): SwiftNet ahead of every peer in test mIoU at equal training time, and faster than
every peer of equal or better mIoU; >= 0.65 test mIoU in 10 minutes on a CPU with AMX.
Writes results/segmentation_peers.{md,json,png}; run folders under runs/bench_peers/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pixelwise.bench.measure import count_flops, count_parameters, device_name, time_interleaved  # noqa: E402
from pixelwise.bench.optimize import inference_step  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.scenes import FashionScenes  # noqa: E402
from pixelwise.engine.device import native_bf16  # noqa: E402
from pixelwise.engine.inference import evaluate_segmenter  # noqa: E402
from pixelwise.models import create_model  # noqa: E402
from pixelwise.tasks import load_run, train  # noqa: E402
from budget import cpu_seconds, steps_within  # noqa: E402  (benchmarks/budget.py)
from segmentation_peer_models import register_peers  # noqa: E402

RECIPE = ROOT / "configs" / "swiftnet_rn18half_fashion_scenes.yaml"
HALF_WIDTH = {"backbone": "resnet18", "num_features": 64,
              "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 32}}
LR_GRID = (1e-3, 2e-3, 4e-3)
TARGET_MIOU, TARGET_SECONDS = 0.65, 600
LATENCY_SIZE = (1024, 2048)
TUNE_VAL_SCENES = 200


@dataclass(frozen=True)
class Entry:
    label: str
    model: str                 # registry name
    kwargs: dict = field(default_factory=dict)
    swiftnet: bool = False


MODELS = {
    "swiftnet_rn18half": Entry("SwiftNet, ResNet-18 half width", "swiftnet", HALF_WIDTH, True),
    "swiftnet_rn18": Entry("SwiftNet-RN18", "swiftnet_rn18", {}, True),
    "swiftnet_pyramid_rn18half": Entry("SwiftNet pyramid, ResNet-18 half width", "swiftnet_pyramid", HALF_WIDTH, True),
    "swiftnet_pyramid_rn18": Entry("SwiftNet pyramid, ResNet-18", "swiftnet_pyramid_rn18", {}, True),
    "smp_fpn_r18": Entry("smp FPN, ResNet-18", "smp_fpn_resnet18"),
    "smp_unet_r18": Entry("smp Unet, ResNet-18", "smp_unet_resnet18"),
    "lraspp_mnv3": Entry("torchvision LRASPP, MobileNetV3-L", "tv_lraspp_mobilenet_v3_large"),
    "deeplabv3_mnv3": Entry("torchvision DeepLabV3, MobileNetV3-L", "tv_deeplabv3_mobilenet_v3_large"),
}
DEFAULT_MODELS = [k for k in MODELS if k != "swiftnet_pyramid_rn18"]
QUICK = ["data.train_limit=16", "data.canvas_size=32", "data.crop_size=32", "batch_size=4", "eval_batch_size=8"]


def model_config(key: str, folder: Path) -> Path:
    """The recipe with `key`'s model in it (model_kwargs replaced, not merged), as a YAML file."""
    raw = yaml.safe_load(RECIPE.read_text())
    entry = MODELS[key]
    raw.update(name=f"peers_{key}", model=entry.model, model_kwargs=dict(entry.kwargs))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def train_run(config: Path, overrides: list[str]) -> dict:
    cfg = load_config(config, overrides)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    summary = train(cfg, progress=sys.stderr.isatty(), overwrite=True)
    return {"steps": summary["step"], "precision": summary["precision"], "lr": cfg.optim.lr,
            "train_wall_seconds": time.perf_counter() - wall0,
            "train_cpu_seconds_per_thread": (cpu_seconds() - cpu0) / 2}


def validation_of(run_dir: Path, split: str, n: int | None) -> dict:
    """mIoU and mean cross-entropy of a run's model on the first n scenes of a FashionScenes split, one
    pass per image."""
    model, config = load_run(run_dir)
    data = config["train_config"]["data"]
    ds = FashionScenes(split, root=data.get("root"), size=data["canvas_size"], n=n)
    meter = evaluate_segmenter(model, ds, len(ds.classes), torch.device("cpu"), 50,
                               progress=sys.stderr.isatty(), scales=(1.0,), flip=False)
    return meter.summary()


def tune_score(row: dict) -> tuple[float, float]:
    """Validation mIoU first; where it ties (a short run that still labels everything background scores
    the same at every rate), the lower validation cross-entropy: the rate that got furthest."""
    return round(row["val_miou"], 4), -row["val_loss"]


def tune_lr(key: str, config: Path, base: list[str], steps: int, quick: bool) -> tuple[float, list[dict]]:
    """The rate with the best validation score (tune_score) after `steps` steps, and every rate's score.
    Tries LR_GRID, then, where the best rate lies on an edge of the rates tried, one rate beyond it (x2 or
    /2), so that a peer whose best rate is outside the grid is not held to its edge."""
    rows = []

    def attempt(lr: float) -> None:
        run_dir = ROOT / "runs" / f"bench_peers{'_quick' if quick else ''}" / "tune" / f"{key}_lr{lr:g}"
        train_run(config, [*base, f"out_dir={run_dir}", f"optim.lr={lr}", f"max_steps={steps}"])
        scores = validation_of(run_dir, "val", 8 if quick else TUNE_VAL_SCENES)
        rows.append({"lr": lr, "steps": steps, "val_miou": scores["miou"], "val_loss": scores["loss"]})
        print(json.dumps({"tune": key, **rows[-1]}), flush=True)

    for lr in (LR_GRID[1:] if quick else LR_GRID):
        attempt(lr)
    best = max(rows, key=tune_score)["lr"]
    rates = sorted(r["lr"] for r in rows)
    if not quick and best in (rates[0], rates[-1]):
        attempt(best * 2 if best == rates[-1] else best / 2)
    rows.sort(key=lambda r: r["lr"])
    return max(rows, key=tune_score)["lr"], rows


def train_and_test(key: str, budget: float, tune_budget: float, tune: str, quick: bool) -> dict:
    """Probe, tune (where asked), train the budget and test one model; its row of the table."""
    entry = MODELS[key]
    folder = ROOT / "runs" / f"bench_peers{'_quick' if quick else ''}"
    config = model_config(key, folder / "configs")
    # The in-loop evaluation is cut to one scene so that the training time excludes evaluation.
    base = ["threads=2", "data.test_limit=1", *(QUICK if quick else [])]
    row: dict = {"key": key, "label": entry.label, "model": entry.model, "model_kwargs": entry.kwargs,
                 "swiftnet": entry.swiftnet}
    if quick:
        steps, seconds_per_step = 2, None
    else:
        steps, seconds_per_step = steps_within(config, [*base, f"out_dir={folder / 'probe'}"], budget)
    row.update(budget_seconds=None if quick else budget, seconds_per_step=seconds_per_step)
    lr, tuning = load_config(config).optim.lr, []
    if tune == "all" or (tune == "peers" and not entry.swiftnet):
        tune_steps = 1 if quick else max(1, int(tune_budget / seconds_per_step))
        lr, tuning = tune_lr(key, config, base, tune_steps, quick)
    row.update(lr=lr, lr_tuning=tuning)
    run_dir = folder / key
    row.update(train_run(config, [*base, f"out_dir={run_dir}", f"optim.lr={lr}", f"max_steps={steps}"]))
    t0 = time.perf_counter()
    row.update(test_miou=validation_of(run_dir, "test", 16 if quick else None)["miou"],
               run_dir=str(run_dir.relative_to(ROOT)), eval_seconds=time.perf_counter() - t0)
    print(json.dumps({k: v for k, v in row.items() if k != "lr_tuning"}), flush=True)
    return row


def measure_models(keys: list[str], size: tuple[int, int], precisions: list[str], rounds: int,
                   warmup: int) -> dict[str, dict]:
    """Parameters, GMACs and interleaved latencies (ms, median) of every model at 1x3xHxW, 19 classes."""
    out, steps = {}, {}
    x = torch.rand(1, 3, *size)
    for key in keys:
        model = create_model(MODELS[key].model, num_classes=19, **MODELS[key].kwargs).eval()
        out[key] = {"params": count_parameters(model),
                    "gmacs": count_flops(model, x)["macs"] / 1e9}
        for precision in precisions:
            steps[f"{key}|{precision}"] = inference_step(model, x, ["channels_last"], precision)[0]
    times = time_interleaved(steps, "cpu", warmup=warmup, runs=rounds, progress=sys.stderr.isatty())
    for name, t in times.items():
        key, precision = name.split("|")
        out[key][f"latency_{precision}_ms"] = t["median_ms"]
        out[key][f"latency_{precision}_p90_ms"] = t["p90_ms"]
    return out


def targets(rows: list[dict], precisions: list[str], budget: float) -> dict:
    """The issue's targets judged on the rows: the best SwiftNet against every peer."""
    swift = [r for r in rows if r["swiftnet"]]
    peers = [r for r in rows if not r["swiftnet"]]
    if not swift or not peers:
        return {"judged": False, "why": "needs at least one SwiftNet and one peer"}
    best = max(swift, key=lambda r: r["test_miou"])
    slower = {p: [r["key"] for r in peers if r["test_miou"] >= best["test_miou"]
                  and r[f"latency_{p}_ms"] <= best[f"latency_{p}_ms"]] for p in precisions}
    return {"judged": True, "best_swiftnet": best["key"], "best_peer": max(peers, key=lambda r: r["test_miou"])["key"],
            "ahead_in_miou": best["test_miou"] > max(r["test_miou"] for r in peers),
            "peers_as_good_and_not_slower": slower,
            "faster_than_every_peer_as_good": not any(slower.values()),
            "miou_at_least_0.65": best["test_miou"] >= TARGET_MIOU,
            "budget_is_the_target_budget": budget == TARGET_SECONDS,
            "cpu_has_amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())}


def plot(rows: list[dict], precisions: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(precisions), figsize=(6 * len(precisions), 4.5), squeeze=False)
    for ax, p in zip(axes[0], precisions):
        for r in rows:
            ax.scatter(r[f"latency_{p}_ms"], r["test_miou"], marker="o" if r["swiftnet"] else "s",
                       color="tab:red" if r["swiftnet"] else "tab:blue", s=40)
            ax.annotate(r["label"], (r[f"latency_{p}_ms"], r["test_miou"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"latency at 1x3x{LATENCY_SIZE[0]}x{LATENCY_SIZE[1]}, {p}, 2 threads (ms)")
        ax.set_ylabel("FashionScenes test mIoU")
        ax.grid(alpha=0.3)
    axes[0][0].set_title("SwiftNet (red) and peers (blue), equal training time", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: dict, out: Path) -> str:
    rows, precisions = result["rows"], result["precisions"]
    size = "x".join(map(str, result["latency_input"]))
    lines = [f"FashionScenes, {len(rows)} models trained in one run by pixelwise's engine with the recipe of "
             f"{result['recipe']} ({result['precision']}, 2 threads, {result['device']}), "
             + (f"{result['budget_seconds']:g} s of training each (the steps that fit here by a probe run)"
                if result["budget_seconds"] else "a few steps each (quick smoke run)")
             + f"; test mIoU over {result['test_scenes']} test scenes, one pass per image. Parameters, GMACs "
             f"and latency with 19 classes at {size} (latency: median of {result['rounds']} interleaved rounds, "
             f"eager, eval, channels-last).", "",
             "| model | test mIoU | params (M) | GMACs | " + " | ".join(f"latency {p} (ms)" for p in precisions)
             + " | lr | steps | s/step | training wall s |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in precisions) + " | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=lambda r: -r["test_miou"]):
        sps = f"{r['seconds_per_step']:.3f}" if r["seconds_per_step"] else "–"
        lines.append(f"| {r['label']} | {r['test_miou']:.4f} | {r['params'] / 1e6:.2f} | {r['gmacs']:.1f} | "
                     + " | ".join(f"{r[f'latency_{p}_ms']:.0f}" for p in precisions)
                     + f" | {r['lr']:g}{' (tuned)' if r['lr_tuning'] else ''} | {r['steps']} | {sps} | "
                     f"{r['train_wall_seconds']:.0f} |")
    tuned = [r for r in rows if r["lr_tuning"]]
    if tuned:
        rates = sorted({t["lr"] for r in tuned for t in r["lr_tuning"]})
        lines += ["", "Learning-rate tuning (validation mIoU, and cross-entropy where mIoU ties, on the first "
                  f"{TUNE_VAL_SCENES if result['budget_seconds'] else 8} val scenes after the steps of "
                  f"{result['tune_budget_seconds']:g} s; a rate beyond the grid where the best lay on its edge):",
                  "", "| model | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
                  "| --- | " + " | ".join("---:" for _ in rates) + " | ---: |"]
        for r in tuned:
            scores = {t["lr"]: f"{t['val_miou']:.4f} ({t['val_loss']:.3f})" for t in r["lr_tuning"]}
            lines.append(f"| {r['label']} | " + " | ".join(scores.get(lr, "–") for lr in rates) + f" | {r['lr']:g} |")
    t = result["targets"]
    if t.get("judged"):
        lines += ["", f"Targets: best SwiftNet ({t['best_swiftnet']}) ahead of every peer in mIoU: "
                  f"{'yes' if t['ahead_in_miou'] else 'no'} (best peer {t['best_peer']}); faster than every peer "
                  f"of equal or better mIoU: {'yes' if t['faster_than_every_peer_as_good'] else 'no'}; "
                  f">= {TARGET_MIOU} test mIoU: {'yes' if t['miou_at_least_0.65'] else 'no'} "
                  f"(budget {result['budget_seconds'] or 0:g} s, target {TARGET_SECONDS} s; this CPU "
                  f"{'has' if t['cpu_has_amx'] else 'has no'} AMX)."]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation_peers.md").write_text("# SwiftNet and peers on FashionScenes\n\n" + text
                                               + "\n![mIoU against latency](segmentation_peers.png)\n")
    (out / "segmentation_peers.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, precisions, out / "segmentation_peers.png")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 px scenes, 2 steps, small latency input: a smoke run")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"comma-separated, of: {', '.join(MODELS)}")
    p.add_argument("--budget", type=float, default=TARGET_SECONDS, help="seconds of training per model")
    p.add_argument("--tune", choices=("peers", "all", "none"), default="peers",
                   help="whose learning rate is tuned on validation scenes")
    p.add_argument("--tune-budget", type=float, default=60, help="seconds of training per tried rate")
    p.add_argument("--precisions", default="fp32,bf16", help="latency precisions (autocast)")
    p.add_argument("--rounds", type=int, default=10, help="interleaved latency rounds")
    p.add_argument("--out", type=Path, default=ROOT / "results")
    args = p.parse_args()
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    precisions = [q.strip() for q in args.precisions.split(",") if q.strip()]
    torch.set_num_threads(2)
    register_peers()
    rows = [train_and_test(k, args.budget, args.tune_budget, args.tune, args.quick) for k in keys]
    size = (64, 128) if args.quick else LATENCY_SIZE
    rounds, warmup = (1, 1) if args.quick else (args.rounds, 2)
    measured = measure_models(keys, size, precisions, rounds, warmup)
    for r in rows:
        r.update(measured[r["key"]])
    precision = sorted({r["precision"] for r in rows})
    result = {"protocol": "FashionScenes peers" + (" (quick smoke run)" if args.quick else ""),
              "recipe": str(RECIPE.relative_to(ROOT)), "device": device_name("cpu"), "threads": 2,
              "torch": torch.__version__, "native_bf16": native_bf16(torch.device("cpu")),
              "precision": "/".join(precision), "budget_seconds": None if args.quick else args.budget,
              "tune": args.tune, "tune_budget_seconds": args.tune_budget, "lr_grid": list(LR_GRID),
              "test_scenes": 16 if args.quick else 1000, "latency_input": [1, 3, *size], "rounds": rounds,
              "precisions": precisions, "rows": rows,
              "targets": targets(rows, precisions, None if args.quick else args.budget)}
    print(write(result, args.out))


if __name__ == "__main__":
    main()
