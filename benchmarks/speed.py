"""Inference speed of SwiftNet-RN18 (1024x2048, 19 classes, batch 1), the classifiers and the other
segmenters (pyramid SwiftNet-RN18, LDN-121: the main path of each precision), per precision.

Every configuration's latency is a ratio to plain fp32 eager (eval mode, torch.no_grad) measured in the
same run, with all configurations of a model timed in interleaved rounds so that a changing load on a
shared machine affects them alike. Achieved GFLOP/s (multiply-add = 2 FLOPs, FLOPs of the fp32 model)
are compared with the matrix-multiply peak of the precision that ran (fp32, bf16, int8), each the best
over sizes 1024-4096 and repeats, measured before and after the model timings. Paths: fp32 eager and
compiled; bf16 through autocast or bf16 weights, eager or compiled (inductor, with freezing, with
max-autotune); int8 through PT2 export quantization for x86 (X86InductorQuantizer, compiled with
freezing) and through onnxruntime (QDQ, per-channel). SwiftNet's rows also time the label path (what a
user wants: labels at full resolution, pixelwise.bench.label_path). The accuracy section measures the
mIoU change of each low-precision path and label method on a trained FashionScenes SwiftNet (--fs-run;
else the top-1 change on a Fashion-MNIST CNN trained here).

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/speed.py [--quick] [--fs-run runs/...]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pixelwise.bench.benchmark import num_threads
from pixelwise.bench.export import export_onnx, onnx_parity, onnx_session
from pixelwise.bench.label_path import SegmentationLabels
from pixelwise.bench.measure import (FLOP_CONVENTION, count_flops, count_parameters, device_name, matmul_peak,
                                     time_interleaved)
from pixelwise.bench.optimize import fold_batchnorm, inference_step
from pixelwise.bench.quantize import calibration_images, compare_accuracy, quantize_onnx
from pixelwise.bench.quantize_pt2e import quantize_x86
from pixelwise.files import write_json
from pixelwise.models import create_model

BASELINE = "fp32 eager"
FAST = ["inference_mode", "channels_last", "fold_bn"]
# label -> (kind, switches, precision, label method or None); kind: torch, pt2e (int8), ort (onnxruntime)
CONFIGS = {
    BASELINE: ("torch", [], "fp32", None),
    "fp32 compile+channels_last+fold_bn": ("torch", FAST + ["compile"], "fp32", None),
    "fp32 compile freezing+channels_last": ("torch", FAST + ["freezing"], "fp32", None),
    "bf16 autocast+channels_last+fold_bn": ("torch", FAST, "bf16", None),
    "bf16 autocast compile+channels_last+fold_bn": ("torch", FAST + ["compile"], "bf16", None),
    "bf16 autocast compile freezing+channels_last": ("torch", FAST + ["freezing"], "bf16", None),
    "bf16 weights compile freezing+channels_last": ("torch", FAST + ["cast_weights", "freezing"], "bf16", None),
    "bf16 weights max-autotune freezing+channels_last": ("torch", FAST + ["cast_weights", "freezing", "max_autotune"],
                                                         "bf16", None),
    "int8 pt2e x86 (compile freezing)": ("pt2e", [], "int8", None),
    "onnxruntime fp32": ("ort", [], "fp32", None),
    "onnxruntime int8": ("ort", [], "int8", None),
    # the label path: labels (N, H, W) at full resolution from the fastest bf16 and int8 models
    "labels full bilinear+argmax, bf16 weights freezing": ("torch", FAST + ["cast_weights", "freezing"], "bf16", "full"),
    "labels refine, bf16 weights freezing": ("torch", FAST + ["cast_weights", "freezing"], "bf16", "refine"),
    "labels nearest (argmax at stride 4), bf16 weights freezing": ("torch", FAST + ["cast_weights", "freezing"],
                                                                  "bf16", "nearest"),
    "labels nearest (argmax at stride 4), int8 pt2e": ("pt2e", [], "int8", "nearest"),
}
# the other models get fewer rows (the time of the full run): the main path of each precision
MAIN_CONFIGS = (BASELINE, "bf16 autocast+channels_last+fold_bn",
                "bf16 weights compile freezing+channels_last", "int8 pt2e x86 (compile freezing)",
                "onnxruntime fp32", "onnxruntime int8")
QUICK_SKIP = ("bf16 weights max-autotune freezing+channels_last",)
PEAK_PRECISIONS = ("fp32", "bf16", "int8")
OTHER_SEGMENTERS = ("swiftnet_pyramid_rn18", "ldn121")   # timed last (and after the training rows): the slowest


def model_list(quick: bool, seg_size: str | None = None) -> list[tuple[str, dict, tuple[int, int, int, int]]]:
    """(registry name, kwargs, input shape) of the models in the table."""
    seg = (1, 3, *map(int, seg_size.split("x"))) if seg_size else (1, 3, 256, 512) if quick else (1, 3, 1024, 2048)
    # SwiftNet first: the targets are its rows; results are written after each model; the other
    # segmenters last, as they take longest
    return [("swiftnet_rn18", {"num_classes": 19}, seg),
            ("cnn", {}, (64, 1, 28, 28)),
            ("resnet_small", {}, (64, 1, 28, 28)),
            ("efficientnet_lite0", {"pretrained": False}, (1, 3, 224, 224)),
            *((name, {"num_classes": 19}, seg) for name in OTHER_SEGMENTERS)]


def configs_for(name: str, args) -> dict:
    configs = dict(CONFIGS) if name == "swiftnet_rn18" else {k: CONFIGS[k] for k in MAIN_CONFIGS}
    for label in list(configs):
        kind, switches = configs[label][:2]
        if (args.no_compile and (kind == "pt2e" or "compile" in switches or "freezing" in switches)) \
                or (args.quick and label in QUICK_SKIP) or any(part in label for part in args.skip):
            configs.pop(label)
    return configs


def make_step(model, inputs, kind: str, switches: list, precision: str, method: str | None, cache: dict, notes: dict):
    """A zero-argument function running one configuration; ONNX and int8 models are built once per model."""
    if method is not None:
        if "fold_bn" in switches:  # on the logits' model: folding checks outputs, and labels of near-ties flip
            model, pairs = fold_batchnorm(model, inputs[:1, :, :128, :128])
            switches, notes["folded_bn"] = [s for s in switches if s != "fold_bn"], len(pairs)
        model = SegmentationLabels(model, method)
    if kind == "torch":
        step, info = inference_step(model, inputs, switches, precision)
        notes.update(info)
        return step
    if kind == "pt2e":
        calibration = torch.rand(len(inputs), *inputs.shape[1:], generator=torch.Generator().manual_seed(1))
        # calibrated on a random image: right speed, not right accuracy (that is the accuracy section's)
        int8, info = quantize_x86(model, inputs, calibration)
        notes.update(compile_seconds=info["compile_seconds"], calibration="random image (timing only)")

        def run():
            with torch.inference_mode():
                return int8(inputs)
        return run
    if "ort" not in cache:
        cache["ort"] = _ort_sessions(model, inputs, Path(cache["tmp"]), cache)
    session = cache["ort"][precision]
    notes.update(cache["ort_notes"][precision])
    feed = {session.get_inputs()[0].name: inputs.cpu().numpy()}
    return lambda: session.run(None, feed)


def _ort_sessions(model, inputs, folder: Path, cache: dict) -> dict:
    """onnxruntime fp32 and int8 (calibrated on a random image: right speed, not right accuracy)."""
    exported = export_onnx(model.cpu(), inputs[:1].cpu(), folder / "fp32.onnx")
    threads = cache["threads"]
    fp32 = onnx_session(folder / "fp32.onnx", threads)
    parity = onnx_parity(model, fp32, inputs[:1].cpu())
    # one image: the scales do not change the speed, and calibration keeps every activation in memory
    calibration = torch.rand(1, *inputs.shape[1:], generator=torch.Generator().manual_seed(1))
    quantize_onnx(folder / "fp32.onnx", folder / "int8.onnx", calibration, batch_size=1)
    cache["ort_notes"] = {"fp32": {"exporter": exported["exporter"], "parity_max_rel_diff":
                                   max(v["max_rel_diff"] for v in parity["outputs"].values())},
                          "int8": {"calibration": "1 random image (timing only)"}}
    return {"fp32": fp32, "int8": onnx_session(folder / "int8.onnx", threads)}


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raises TimeoutError in the block after `seconds` (SIGALRM; a compilation that hangs, as inductor's
    symbolic shape simplification once did for EfficientNet-Lite0, becomes a failed row, not a lost run)."""
    if not seconds or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise TimeoutError(f"stopped after {seconds:g} s (--prepare-limit)")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bench_model(name: str, kwargs: dict, shape, device: torch.device, args) -> list[dict]:
    """One row per configuration of one model; failures (e.g. torch.compile) become rows with an error."""
    torch._dynamo.reset()  # no compiled state carried over from the previous model
    model = create_model(name, **kwargs).eval().to(device)
    inputs = torch.rand(*shape, generator=torch.Generator().manual_seed(0)).to(device)
    flops = count_flops(model, inputs)["flops"]
    configs = configs_for(name, args)
    steps, notes, rows = {}, {}, []
    tmp = tempfile.TemporaryDirectory()
    cache = {"tmp": tmp.name, "threads": args.threads}
    for label, (kind, switches, precision, method) in configs.items():
        print(f"  preparing {label}", flush=True)
        notes[label] = {}
        try:
            with time_limit(args.prepare_limit):
                steps[label] = make_step(model, inputs, kind, switches, precision, method, cache, notes[label])
        except Exception as e:  # torch.compile can fail on a machine without a working compiler
            rows.append({"config": label, "precision": precision, "error":
                         f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"})
    timings = time_interleaved(steps, device, warmup=args.warmup, runs=args.runs, progress=True)
    tmp.cleanup()
    base = timings[BASELINE]["median_ms"]
    for label, t in timings.items():
        gflops = flops / (t["median_ms"] / 1e3) / 1e9
        rows.append({"config": label, "precision": configs[label][2], "median_ms": t["median_ms"],
                     "p90_ms": t["p90_ms"], "ratio_to_fp32_eager": t["median_ms"] / base,
                     "fps": shape[0] * 1e3 / t["median_ms"], "achieved_gflops": gflops,
                     "notes": notes.get(label, {}), "times_ms": t["times_ms"]})
    order = list(configs)
    rows.sort(key=lambda r: order.index(r["config"]))
    return [{"model": name, "input_shape": list(shape), "params": count_parameters(model), "flops": flops, **r}
            for r in rows]


# the FashionScenes training setup (configs/swiftnet_rn18half_fashion_scenes.yaml): batch 16 of 128 px scenes
TRAIN_MODEL = ("swiftnet", {"num_classes": 11, "backbone": "resnet18", "num_features": 64,
                            "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 32}}, (16, 3, 128, 128))
TRAIN_CONFIGS = {"fp32 eager+channels_last": (["channels_last"], "fp32"),
                 "bf16 autocast+channels_last": (["channels_last"], "bf16"),
                 "bf16 autocast compile+channels_last": (["channels_last", "compile"], "bf16")}


def bench_training(args) -> list[dict]:
    """Training steps (forward + backward + SGD) per second and achieved GFLOP/s of the FashionScenes
    SwiftNet, eager against compiled, fp32 against bf16, in interleaved rounds."""
    from pixelwise.bench.optimize import train_step
    name, kwargs, shape = TRAIN_MODEL
    inputs = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    flops = count_flops(create_model(name, **kwargs), inputs, train=True)["flops"]
    steps, notes, rows = {}, {}, []
    for label, (switches, precision) in TRAIN_CONFIGS.items():
        if args.no_compile and "compile" in switches:
            continue
        print(f"  preparing training {label}", flush=True)
        torch.manual_seed(0)
        try:
            steps[label], notes[label] = train_step(create_model(name, **kwargs), inputs, switches, precision)
        except Exception as e:
            rows.append({"config": label, "precision": precision, "error": f"{type(e).__name__}: {str(e)[:200]}"})
    timings = time_interleaved(steps, "cpu", warmup=args.warmup, runs=args.runs, progress=True)
    base = next(iter(timings.values()))["median_ms"]
    for label, t in timings.items():
        rows.append({"config": label, "precision": TRAIN_CONFIGS[label][1], "median_ms": t["median_ms"],
                     "p90_ms": t["p90_ms"], "ratio_to_fp32_eager": t["median_ms"] / base,
                     "fps": shape[0] * 1e3 / t["median_ms"], "achieved_gflops": flops / (t["median_ms"] / 1e3) / 1e9,
                     "notes": notes.get(label, {}), "times_ms": t["times_ms"]})
    return [{"model": f"{name} (rn18 half width, FashionScenes config), training step", "input_shape": list(shape),
             "params": count_parameters(create_model(name, **kwargs)), "flops": flops, **r} for r in rows]


def precision_accuracy(args) -> dict:
    """The headline metric of each low-precision path and label method against fp32 on a trained model."""
    import copy

    from torch.utils.data import Subset

    from pixelwise.bench.optimize import CastInputs, inductor_options
    from pixelwise.tasks import get_task

    if args.fs_run:
        from pixelwise.data.scenes import FashionScenes
        from pixelwise.tasks import load_run
        model, config = load_run(args.fs_run)
        data = config["train_config"]["data"]
        # whole scenes without the training augmentation (the ONNX input size is fixed to the canvas)
        train_set = FashionScenes("train", root=data.get("root"), size=data["canvas_size"], n=256)
        test_set = FashionScenes("test", root=data.get("root"), size=data["canvas_size"])
        task, classes = "segmentation", len(config["classes"])
        summary = Path(args.fs_run) / "summary.json"
        steps = json.loads(summary.read_text()).get("step", "?") if summary.is_file() else "?"
        source = f"FashionScenes run {args.fs_run} ({steps} training steps)"
    else:
        from pixelwise.data.fashion_mnist import FashionMNIST
        train_set, test_set = FashionMNIST("train"), FashionMNIST("test")
        model = train_fmnist_cnn(train_set, args.quick)
        task, classes, source = "classification", 10, "Fashion-MNIST CNN trained here for one epoch"
    model = model.eval().cpu()
    batch = 40  # divides 1000 and 10000 test images (and the quick 240): one compiled shape
    if args.quick:
        test_set = Subset(test_set, range(240))
    example = torch.stack([torch.as_tensor(test_set[i][0]).float() for i in range(batch)])
    calibration = calibration_images(train_set, 64)
    paths: dict = {}
    paths["bf16 autocast (eager)"] = _autocast(model)
    folded, _ = fold_batchnorm(model, example[:1])
    bf16 = torch.compile(CastInputs(copy.deepcopy(folded).to(torch.bfloat16), torch.bfloat16), dynamic=False)
    with torch.inference_mode(), inductor_options(["freezing"]):
        bf16(example)
    paths["bf16 weights compile freezing"] = bf16
    paths["int8 pt2e x86"] = quantize_x86(model, example, calibration)[0]
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, example[:1], Path(tmp) / "fp32.onnx")
        quantize_onnx(Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", calibration)
        paths["onnxruntime fp32"] = onnx_session(Path(tmp) / "fp32.onnx", args.threads)
        paths["onnxruntime int8"] = onnx_session(Path(tmp) / "int8.onnx", args.threads)
    if task == "segmentation":
        for method in ("refine", "nearest", "bf16_logits"):
            paths[f"labels {method} (fp32 model)"] = _one_hot(SegmentationLabels(model, method), classes)
    accuracy = compare_accuracy(model, paths, test_set, lambda: get_task(task).accuracy_meter(classes),
                                batch_size=batch)
    return {"source": source, "task": task, "calibration_images": len(calibration), **accuracy}


def _autocast(model):
    def run(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)
    return run


def _one_hot(labeller, classes: int):
    """Labels (N, H, W) as one-hot scores (N, K, H, W): what an accuracy meter's arg-max reads back."""
    def run(x):
        return F.one_hot(labeller(x), classes).permute(0, 3, 1, 2).float()
    return run


def train_fmnist_cnn(train_set, quick: bool) -> torch.nn.Module:
    """The registry's `cnn` after one epoch of Adam on Fashion-MNIST (enough for ~0.88-0.90 accuracy)."""
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm
    torch.manual_seed(0)
    model = create_model("cnn")
    data = Subset(train_set, range(4096)) if quick else train_set
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for x, y in tqdm(DataLoader(data, batch_size=128, shuffle=True), desc="train cnn", leave=False):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def markdown(result: dict) -> str:
    peaks = result["matmul_peaks"]
    status = " (PARTIAL: not all models measured yet)" if result.get("partial") else ""
    status += " (--quick smoke run: few rounds, small peaks)" if result.get("quick") else ""
    peak_text = "; ".join(
        f"{p}: {peaks[p]['gflops']:.1f} GFLOP/s (best of sizes {', '.join(map(str, peaks[p]['sizes']))} x "
        f"{peaks[p]['repeats']} repeats, twice; best at n={peaks[p]['n']}; {peaks[p]['method']})"
        if peaks[p].get("gflops") else f"{p}: not measurable ({peaks[p].get('error')})" for p in peaks)
    lines = [f"# Inference speed on {result['device_name']} ({result['threads']} threads){status}", "",
             f"CPU features: {'AMX' if result['amx'] else 'no AMX'} (AVX-512{' with AVX512-BF16' if result['avx512_bf16'] else ''}); "
             f"torch {result['torch_version']}. No GPU was lent to this run: the CUDA paths stay unrun.", "",
             f"FLOPs: {FLOP_CONVENTION}; FLOPs of the fp32 model for every precision. Matrix-multiply peaks "
             f"measured here: {peak_text}. '% of peak' is of the peak of the precision that ran. Ratio = "
             "latency / fp32 eager latency of the same model in the same interleaved rounds (< 1 is faster). "
             "int8 rows here are calibrated on a random image (speed only; accuracy below). Label rows time "
             "model + labels at full resolution (the model's random weights give more class boundaries "
             "than a trained model's, so `refine` does more work here than it would in use).", "",
             "| model | input | GFLOPs | precision | config | median ms | p90 ms | FPS | ratio to fp32 eager | "
             "GFLOP/s | % of peak | notes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        shape = "x".join(map(str, r["input_shape"]))
        if "error" in r:
            lines.append(f"| {r['model']} | {shape} | {r['flops'] / 1e9:.3g} | {r['precision']} | {r['config']} | "
                         f"failed | | | | | | {r['error']} |")
            continue
        notes = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["notes"].items())
        frac = r.get("fraction_of_peak")
        lines.append(f"| {r['model']} | {shape} | {r['flops'] / 1e9:.3g} | {r['precision']} | {r['config']} | "
                     f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['fps']:.2f} | {r['ratio_to_fp32_eager']:.3f} | "
                     f"{r['achieved_gflops']:.1f} | {'' if frac is None else f'{100 * frac:.1f}'} | {notes} |")
    for acc in result.get("accuracy", []):
        paths = [k[:-len("_drop_points")] for k in acc if k.endswith("_drop_points")]
        lines += ["", f"## Low precision and label paths: {acc['metric']} change on {acc['source']}", "",
                  f"{acc['metric']} on {acc['images']} test images (whole scenes, one scale, no flip); int8 "
                  f"calibrated on {acc['calibration_images']} training images. Drop = 100 x (fp32 - path).", "",
                  "| path | " + acc["metric"] + " | drop (points) |", "| --- | --- | --- |",
                  f"| PyTorch fp32 | {acc['pytorch_fp32']:.4f} | |"]
        lines += [f"| {p} | {acc[p]:.4f} | {acc[p + '_drop_points']:.2f} |" for p in paths]
    if result.get("targets"):
        lines += ["", "## Targets (DESIGN.md; stated for 2 CPU cores with AMX)", ""]
        lines += [f"- {t}" for t in result["targets"]]
    return "\n".join(lines) + "\n"


def targets(result: dict) -> list[str]:
    """The issue's targets against this run's SwiftNet rows, said plainly."""
    rows = [r for r in result["rows"] if r["model"] == "swiftnet_rn18" and "error" not in r
            and not r["config"].startswith("labels")]
    if not rows or result["quick"]:
        return []
    amx = "" if result["amx"] else " (this CPU has no AMX, on which the target is stated)"
    out = []
    bf16 = [r for r in rows if r["precision"] == "bf16" and r.get("fraction_of_peak") is not None]
    if bf16:
        best = max(bf16, key=lambda r: r["fraction_of_peak"])
        out.append(f"bf16 >= 50% of the bf16 peak: best {100 * best['fraction_of_peak']:.1f}% ({best['config']}, "
                   f"{best['median_ms']:.0f} ms, {best['fps']:.2f} FPS): "
                   f"{'met' if best['fraction_of_peak'] >= 0.5 else 'not met'}{amx}")
    int8 = [r for r in rows if r["precision"] == "int8"]
    if int8:
        best = max(int8, key=lambda r: r["fps"])
        drops = {k: v for a in result.get("accuracy", []) for k, v in a.items() if k.endswith("_drop_points")}
        key = "int8 pt2e x86_drop_points" if "pt2e" in best["config"] else "onnxruntime int8_drop_points"
        drop = drops.get(key)
        out.append(f">= 10 FPS in int8 with < 0.5 point mIoU drop: best {best['fps']:.2f} FPS ({best['config']}), "
                   f"drop {'not measured' if drop is None else f'{drop:.2f} points'}: "
                   f"{'met' if best['fps'] >= 10 and drop is not None and drop < 0.5 else 'not met'}{amx}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="SwiftNet at 256x512, few runs, small peaks: a smoke test")
    p.add_argument("--device", default="cpu", choices=("cpu",), help="CPU only (the CUDA paths are in pixelwise bench)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=None, help="timed rounds (default 10, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3, quick 1)")
    p.add_argument("--models", nargs="*", default=None, help="subset of the models")
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile and pt2e int8")
    p.add_argument("--no-accuracy", action="store_true", help="leave out the accuracy section")
    p.add_argument("--no-train", action="store_true", help="leave out the training-step rows")
    p.add_argument("--skip", nargs="*", default=[], metavar="TEXT",
                   help="leave out the configurations whose label contains TEXT (e.g. max-autotune)")
    p.add_argument("--seg-size", default=None, metavar="HxW", help="SwiftNet's input (default 1024x2048, quick 256x512)")
    p.add_argument("--fs-run", default=None, help="a trained FashionScenes SwiftNet run folder for the mIoU change")
    p.add_argument("--accuracy-only", action="store_true",
                   help="only the accuracy section, added to an existing OUT/speed.json")
    p.add_argument("--prepare-limit", type=float, default=300, metavar="SECONDS",
                   help="longest preparation (compilation, quantization) of one configuration before it is "
                        "reported as failed (0: no limit)")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    args.runs = args.runs or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.time()
    if args.accuracy_only:
        result = json.loads((Path(args.out) / "speed.json").read_text())
        with num_threads(args.threads):
            entry = precision_accuracy(args)
        result["accuracy"] = [a for a in result.get("accuracy", []) if a["task"] != entry["task"]] + [entry]
        result["targets"] = targets(result)
        _write(result, Path(args.out))
        return
    sizes = (256, 512) if args.quick else (1024, 2048, 3072, 4096)
    with num_threads(args.threads):
        peaks = {p: [matmul_peak(device, p, sizes=sizes, repeats=3)] for p in PEAK_PRECISIONS}
        rows, accuracy, trained = [], [], args.no_train

        def training_rows() -> list[dict]:
            nonlocal trained
            print(f"training steps at {time.time() - started:.0f} s", flush=True)
            trained = True
            return bench_training(args)

        for i, (name, kwargs, shape) in enumerate(model_list(args.quick, args.seg_size)):
            if args.models and name not in args.models:
                continue
            if name in OTHER_SEGMENTERS and not trained:  # the training rows before the slowest models
                rows += training_rows()
            print(f"{name} {shape} at {time.time() - started:.0f} s", flush=True)
            rows += bench_model(name, kwargs, shape, device, args)
            if i == 0 and not args.no_accuracy:
                _write(_summary(rows, peaks, device, args, partial=True), Path(args.out))  # before the long part
                print(f"accuracy section at {time.time() - started:.0f} s", flush=True)
                accuracy = [precision_accuracy(args)]
            partial = _summary(rows, peaks, device, args, partial=True)
            _write({**partial, "accuracy": accuracy, "targets": targets(partial | {"accuracy": accuracy})},
                   Path(args.out))  # survives an interruption
        if not accuracy and not args.no_accuracy:
            accuracy = [precision_accuracy(args)]
        if not trained:
            rows += training_rows()
        for p in PEAK_PRECISIONS:
            peaks[p].append(matmul_peak(device, p, sizes=sizes, repeats=3))
        result = _summary(rows, peaks, device, args, partial=False)
        result["accuracy"] = accuracy
    result["targets"] = targets(result)
    result["seconds"] = time.time() - started
    _write(result, Path(args.out))


def _summary(rows: list[dict], peaks: dict[str, list[dict]], device: torch.device, args, partial: bool) -> dict:
    best = {}
    for p, measured in peaks.items():  # the best of the measurements: the honest (lower) fractions
        ok = [m for m in measured if m.get("gflops")]
        best[p] = max(ok, key=lambda m: m["gflops"]) if ok else measured[-1]
    for r in rows:
        if "achieved_gflops" in r:
            peak = best.get(r["precision"], {}).get("gflops")
            r["fraction_of_peak"] = r["achieved_gflops"] / peak if peak else None
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return {"device": device.type, "device_name": device_name(device), "threads": args.threads,
            "quick": args.quick, "partial": partial, "flop_convention": FLOP_CONVENTION,
            "amx": "amx_tile" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "matmul_peaks": best, "matmul_peak_measurements": peaks, "baseline": BASELINE, "rows": rows,
            "torch_version": torch.__version__, "accuracy": []}


def _write(result: dict, out: Path) -> None:
    write_json(out / "speed.json", result)
    (out / "speed.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
