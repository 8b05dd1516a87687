"""Inference speed of SwiftNet-RN18 (1024x2048, 19 classes, batch 1) and the classifiers.

Every optimization's latency is a ratio to plain fp32 eager (eval mode, torch.no_grad) measured in the
same run, with all configurations of a model timed in interleaved rounds so that a changing load on a
shared machine affects them alike. Achieved GFLOP/s (multiply-add = 2 FLOPs, FLOPs of the fp32 model)
are compared with the device's fp32 matrix-multiply peak measured here (best of several 2048^3
products, before and after the model timings). The int8 section quantizes a trained model (a
FashionScenes SwiftNet run when given, otherwise a Fashion-MNIST CNN trained here for one epoch) and
reports its accuracy/mIoU drop and its speed against fp32.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/speed.py [--quick] [--fs-run runs/...]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pixelwise.bench.benchmark import num_threads
from pixelwise.bench.export import export_onnx, onnx_parity, onnx_session, run_onnx
from pixelwise.bench.measure import (FLOP_CONVENTION, count_flops, count_parameters, device_name, matmul_peak,
                                     time_interleaved)
from pixelwise.bench.optimize import inference_step
from pixelwise.bench.quantize import calibration_images, compare_accuracy, quantize_onnx
from pixelwise.files import write_json
from pixelwise.models import create_model

BASELINE = "fp32 eager"
# name -> (switches, precision); the last two rows run under onnxruntime instead
TORCH_CONFIGS = {
    BASELINE: ([], "fp32"),
    "inference_mode": (["inference_mode"], "fp32"),
    "channels_last": (["channels_last"], "fp32"),
    "fold_bn": (["fold_bn"], "fp32"),
    "inference_mode+channels_last+fold_bn": (["inference_mode", "channels_last", "fold_bn"], "fp32"),
    "compile": (["inference_mode", "compile"], "fp32"),
    "compile+channels_last+fold_bn": (["inference_mode", "channels_last", "fold_bn", "compile"], "fp32"),
    "bf16 autocast+channels_last+fold_bn": (["inference_mode", "channels_last", "fold_bn"], "bf16"),
}
CUDA_ONLY = {"fp16 autocast+channels_last": (["inference_mode", "channels_last"], "fp16")}
ORT_CONFIGS = ("onnxruntime fp32", "onnxruntime int8")
ONE_THREAD = "fp32 eager, 1 thread"
COMPILE_CONFIGS = ("compile", "compile+channels_last+fold_bn")


def model_list(quick: bool) -> list[tuple[str, dict, tuple[int, int, int, int]]]:
    """(registry name, kwargs, input shape) of the models in the table."""
    seg = (1, 3, 256, 512) if quick else (1, 3, 1024, 2048)
    # the long SwiftNet run last, so that a shared lock's short window still yields the rest
    return [("linear", {}, (64, 1, 28, 28)),
            ("cnn", {}, (64, 1, 28, 28)),
            ("resnet_small", {}, (64, 1, 28, 28)),
            ("efficientnet_lite0", {"pretrained": False}, (1, 3, 224, 224)),
            ("swiftnet_rn18", {"num_classes": 19}, seg)]


def bench_model(name: str, kwargs: dict, shape, device: torch.device, args, peak_gflops: float) -> list[dict]:
    """One row per configuration of one model; failures (e.g. torch.compile) become rows with an error."""
    model = create_model(name, **kwargs).eval().to(device)
    inputs = torch.rand(*shape, generator=torch.Generator().manual_seed(0)).to(device)
    flops = count_flops(model, inputs)["flops"]
    configs = dict(TORCH_CONFIGS, **(CUDA_ONLY if device.type == "cuda" else {}))
    if args.no_compile:
        for label in COMPILE_CONFIGS:
            configs.pop(label)
    steps, notes, rows = {}, {}, []
    for label, (switches, precision) in configs.items():
        print(f"  preparing {label}", flush=True)
        try:
            steps[label], notes[label] = inference_step(model, inputs, switches, precision)
        except Exception as e:  # torch.compile can fail on a machine without a working compiler
            rows.append({"config": label, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
    if BASELINE in steps and args.threads > 1 and device.type == "cpu":
        steps[ONE_THREAD] = _one_thread(steps[BASELINE], args.threads)
    tmp = tempfile.TemporaryDirectory()
    if device.type == "cpu":
        steps.update(_ort_steps(model, inputs, Path(tmp.name), args.threads, notes))
    timings = time_interleaved(steps, device, warmup=args.warmup, runs=args.runs, progress=True)
    tmp.cleanup()
    base = timings[BASELINE]["median_ms"]
    for label, t in timings.items():
        gflops = flops / (t["median_ms"] / 1e3) / 1e9
        rows.append({"config": label, "median_ms": t["median_ms"], "p90_ms": t["p90_ms"],
                     "ratio_to_fp32_eager": t["median_ms"] / base, "achieved_gflops": gflops,
                     "fraction_of_peak": gflops / peak_gflops, "notes": notes.get(label, {}), "times_ms": t["times_ms"]})
    order = list(configs) + [ONE_THREAD] + list(ORT_CONFIGS)
    rows.sort(key=lambda r: order.index(r["config"]))
    return [{"model": name, "input_shape": list(shape), "params": count_parameters(model), "flops": flops, **r}
            for r in rows]


def _one_thread(step, threads: int):
    """The baseline on one thread: on a shared, oversubscribed machine OpenMP's barriers between two
    threads can cost more than the second thread brings; this row shows whether they do."""
    def run():
        torch.set_num_threads(1)
        try:
            return step()
        finally:
            torch.set_num_threads(threads)
    return run


def _ort_steps(model, inputs, folder: Path, threads: int, notes: dict) -> dict:
    """onnxruntime fp32 and int8 (calibrated on random images: right speed, not right accuracy)."""
    exported = export_onnx(model.cpu(), inputs[:1].cpu(), folder / "fp32.onnx")
    fp32 = onnx_session(folder / "fp32.onnx", threads)
    parity = onnx_parity(model, fp32, inputs[:1].cpu())
    # one image: the scales do not change the speed, and calibration keeps every activation in memory
    calibration = torch.rand(1, *inputs.shape[1:], generator=torch.Generator().manual_seed(1))
    quantize_onnx(folder / "fp32.onnx", folder / "int8.onnx", calibration, batch_size=1)
    int8 = onnx_session(folder / "int8.onnx", threads)
    notes["onnxruntime fp32"] = {"exporter": exported["exporter"], "parity_max_rel_diff":
                                 max(v["max_rel_diff"] for v in parity["outputs"].values())}
    notes["onnxruntime int8"] = {"calibration": "1 random image (timing only)"}
    feed = {fp32.get_inputs()[0].name: inputs.cpu().numpy()}
    return {"onnxruntime fp32": lambda: fp32.run(None, feed), "onnxruntime int8": lambda: int8.run(None, feed)}


def int8_accuracy(args) -> dict:
    """Accuracy/mIoU drop and speed of int8 against fp32 on a trained model's test set."""
    from torch.utils.data import Subset

    from pixelwise.tasks import get_task

    if args.fs_run:
        from pixelwise.data.scenes import FashionScenes
        from pixelwise.tasks import load_run
        model, config = load_run(args.fs_run)
        data = config["train_config"]["data"]
        # whole scenes without the training augmentation (the ONNX input size is fixed to the canvas)
        train_set = FashionScenes("train", root=data.get("root"), size=data["canvas_size"], n=256)
        test_set = FashionScenes("test", root=data.get("root"), size=data["canvas_size"])
        task, classes, source = "segmentation", len(config["classes"]), f"FashionScenes run {args.fs_run}"
    else:
        from pixelwise.data.fashion_mnist import FashionMNIST
        train_set, test_set = FashionMNIST("train"), FashionMNIST("test")
        model = train_fmnist_cnn(train_set, args.quick)
        task, classes, source = "classification", 10, "Fashion-MNIST CNN trained here for one epoch"
    if args.quick:
        test_set = Subset(test_set, range(256))
    example = torch.as_tensor(test_set[0][0]).float().unsqueeze(0)
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, example, Path(tmp) / "fp32.onnx")
        quantize_onnx(Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", calibration_images(train_set, 64))
        fp32, int8 = onnx_session(Path(tmp) / "fp32.onnx", args.threads), onnx_session(Path(tmp) / "int8.onnx", args.threads)
        accuracy = compare_accuracy(model, {"onnxruntime_fp32": fp32, "onnxruntime_int8": int8}, test_set,
                                    lambda: get_task(task).accuracy_meter(classes), batch_size=32)
        batch = example.expand(1 if task == "segmentation" else 64, *example.shape[1:]).contiguous()
        step, _ = inference_step(model, batch, [])
        timing = time_interleaved({"pytorch fp32 eager": step, "onnxruntime fp32": lambda: run_onnx(fp32, batch),
                                   "onnxruntime int8": lambda: run_onnx(int8, batch)}, "cpu", args.warmup, args.runs)
    return {"source": source, "task": task, "calibration_images": 64, **accuracy,
            "input_shape": list(batch.shape), "latency_ms": {k: v["median_ms"] for k, v in timing.items()}}


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


def markdown(result: dict) -> str:
    peak = result["matmul_peak_gflops"]
    status = " (PARTIAL: not all models measured yet)" if result.get("partial") else ""
    status += " (--quick smoke run: SwiftNet at 256x512, 3 rounds)" if result.get("quick") else ""
    lines = [f"# Inference speed on {result['device_name']} ({result['threads']} threads){status}", "",
             f"FLOPs: {FLOP_CONVENTION}. Matrix-multiply peak measured here: {peak:.1f} GFLOP/s fp32 "
             f"(best of {len(result['matmul_peaks'])} measurements: "
             + ", ".join(f"{p['gflops']:.1f}" for p in result["matmul_peaks"]) + "). "
             "Ratio = latency / fp32 eager latency of the same model in the same interleaved rounds "
             "(< 1 is faster). onnxruntime int8 here is calibrated on random images (speed only).", "",
             "| model | input | GFLOPs | config | median ms | p90 ms | ratio to fp32 eager | GFLOP/s | % of peak | notes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        shape = "x".join(map(str, r["input_shape"]))
        if "error" in r:
            lines.append(f"| {r['model']} | {shape} | {r['flops'] / 1e9:.3g} | {r['config']} | failed | | | | | {r['error']} |")
            continue
        notes = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["notes"].items())
        lines.append(f"| {r['model']} | {shape} | {r['flops'] / 1e9:.3g} | {r['config']} | {r['median_ms']:.2f} | "
                     f"{r['p90_ms']:.2f} | {r['ratio_to_fp32_eager']:.3f} | {r['achieved_gflops']:.1f} | "
                     f"{100 * r['fraction_of_peak']:.1f} | {notes} |")
    for acc in result.get("int8_accuracy", []):
        lat = acc["latency_ms"]
        lines += ["", f"## int8 static quantization: {acc['source']}", "",
                  f"{acc['metric']} on {acc['images']} test images, calibrated on {acc['calibration_images']} "
                  f"training images (onnxruntime QDQ, per-channel int8 weights, uint8 activations, MinMax):", "",
                  "| | PyTorch fp32 | onnxruntime fp32 | onnxruntime int8 | int8 drop (points) |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {acc['metric']} | {acc['pytorch_fp32']:.4f} | {acc['onnxruntime_fp32']:.4f} | "
                  f"{acc['onnxruntime_int8']:.4f} | {acc['onnxruntime_int8_drop_points']:.2f} |",
                  f"| latency ms, input {'x'.join(map(str, acc['input_shape']))} | {lat['pytorch fp32 eager']:.2f} | "
                  f"{lat['onnxruntime fp32']:.2f} | {lat['onnxruntime int8']:.2f} | |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="SwiftNet at 256x512, few runs: a smoke test")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=None, help="timed rounds (default 10, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3, quick 1)")
    p.add_argument("--models", nargs="*", default=None, help="subset of the models")
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    p.add_argument("--no-accuracy", action="store_true", help="leave out the int8 accuracy section")
    p.add_argument("--fs-run", default=None, help="a trained FashionScenes SwiftNet run folder for the mIoU drop")
    p.add_argument("--accuracy-only", action="store_true",
                   help="only the int8 accuracy section, added to an existing OUT/speed.json")
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
            entry = int8_accuracy(args)
        result["int8_accuracy"] = [a for a in result.get("int8_accuracy", []) if a["task"] != entry["task"]] + [entry]
        _write(result, Path(args.out))
        return
    with num_threads(args.threads):
        peaks = [matmul_peak(device)]
        rows, accuracy = [], []
        for name, kwargs, shape in model_list(args.quick):
            if args.models and name not in args.models:
                continue
            if name == "swiftnet_rn18" and not args.no_accuracy:  # before the long SwiftNet timings
                accuracy = [int8_accuracy(args)]
            print(f"{name} {shape}", flush=True)
            rows += bench_model(name, kwargs, shape, device, args, peaks[0]["gflops"])
            partial = _summary(rows, peaks, device, args, partial=True)
            _write({**partial, "int8_accuracy": accuracy}, Path(args.out))  # survives an interruption
        peaks.append(matmul_peak(device))
        result = _summary(rows, peaks, device, args, partial=False)
        if not accuracy and not args.no_accuracy:
            accuracy = [int8_accuracy(args)]
        result["int8_accuracy"] = accuracy
    result["seconds"] = time.time() - started
    _write(result, Path(args.out))


def _summary(rows: list[dict], peaks: list[dict], device: torch.device, args, partial: bool) -> dict:
    best = max(p["gflops"] for p in peaks)
    for r in rows:  # against the best measured peak: the honest (lower) fraction
        if "achieved_gflops" in r:
            r["fraction_of_peak"] = r["achieved_gflops"] / best
    return {"device": device.type, "device_name": device_name(device), "threads": args.threads,
            "quick": args.quick, "partial": partial, "flop_convention": FLOP_CONVENTION,
            "matmul_peak_gflops": best, "matmul_peaks": peaks, "baseline": BASELINE, "rows": rows,
            "torch_version": torch.__version__, "int8_accuracy": []}


def _write(result: dict, out: Path) -> None:
    write_json(out / "speed.json", result)
    (out / "speed.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
