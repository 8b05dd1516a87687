"""`pixelwise bench` and `pixelwise export`: thin layers over pixelwise.bench, asking the run's task for
its example input and its accuracy metric."""
from __future__ import annotations

import argparse
from pathlib import Path

from pixelwise.cli.common import json_output
from pixelwise.errors import PixelwiseError


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' -> (1024, 2048); '224' -> (224, 224)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise PixelwiseError(f"--size {text!r}: give HxW in pixels, e.g. 1024x2048 or 224")
    return (parts[0], parts[-1])


def load_model(name_or_run: str, num_classes: int | None = None):
    """(the module to run in eval mode, its Task, run config or None) for a registered model name or a run
    folder: the model as its task exports it (`Task.export_module`).

    A model name gets the first registered task of its kind (classification, segmentation, ...)."""
    from pixelwise.models import create_model, model_task
    from pixelwise.tasks import get_task, list_tasks, load_run, task_of_run
    if Path(name_or_run).is_dir():
        model, config = load_run(name_or_run)
        task = task_of_run(config)
        return task.export_module(model).eval(), task, config
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = create_model(name_or_run, **kwargs).eval()
    kind = model_task(name_or_run)
    tasks = [get_task(t) for t in list_tasks() if get_task(t).model_kind == kind]
    task = min(tasks, key=lambda t: t.priority)
    return task.export_module(model).eval(), task, None


def default_input(model_name: str, task, config: dict | None, size: str | None,
                  channels: int | None) -> tuple[int, int, int]:
    """(C, H, W): the run's input where known, else the model's registered input size (1024x2048, the
    efficiency protocol's, for segmenters); --size and --channels override."""
    return task.example_input(config, model_name, parse_size(size) if size else None, channels)


def cmd_bench(args) -> int:
    from pixelwise.bench.benchmark import benchmark, format_result
    model, task, config = load_model(args.model, args.num_classes)
    c, h, w = default_input(config["model"] if config else args.model, task, config, args.size, args.channels)
    if args.batch < 1:
        raise PixelwiseError(f"--batch {args.batch}: give a positive batch size")
    result = benchmark(model, (args.batch, c, h, w), name=args.model, device=args.device,
                       precision=args.precision, mode=args.mode, optimizations=args.optimize,
                       threads=args.threads, warmup=args.warmup, runs=args.runs, int8_backend=args.int8_backend)
    print(format_result(result))
    json_output(args, result)
    return 0


def cmd_export(args) -> int:
    import torch

    from pixelwise.bench.export import export_onnx, onnx_parity, onnx_session, time_onnx
    from pixelwise.bench.measure import time_callable
    from pixelwise.bench.benchmark import num_threads
    model, task, config = load_model(args.model, args.num_classes)
    c, h, w = default_input(config["model"] if config else args.model, task, config, args.size, args.channels)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.check, c, h, w, generator=generator)
    onnx_path = Path(args.onnx)
    result: dict = {"model": args.model, "task": task.name, "input_shape": [1, c, h, w]}
    with num_threads(args.threads):
        result["export"] = export_onnx(model, images[:1], onnx_path)
        session = onnx_session(onnx_path, args.threads)
        result["parity"] = onnx_parity(model, session, images)
        with torch.inference_mode():
            torch_ms = time_callable(lambda: model(images[:1]), runs=args.runs)["median_ms"]
        ort_ms = time_onnx(session, images[:1], runs=args.runs)["median_ms"]
        result["latency_ms"] = {"pytorch_fp32": torch_ms, "onnxruntime_fp32": ort_ms}
        print(f"wrote {onnx_path} ({result['export']['exporter']} exporter); parity on {args.check} random "
              f"images: " + ", ".join(f"{k} max rel diff {v['max_rel_diff']:.2e}, arg-max agreement "
                                      f"{v['argmax_agreement']:.4f}" for k, v in result["parity"]["outputs"].items()))
        print(f"latency (batch 1, median): PyTorch {torch_ms:.2f} ms, onnxruntime {ort_ms:.2f} ms")
        if not result["parity"]["ok"]:
            print(f"warning: ONNX outputs differ from PyTorch by more than {result['parity']['rtol']:g} (relative)")
        if args.int8:
            result["int8"] = _export_int8(args, model, task, config, onnx_path, images, (c, h, w))
    json_output(args, result)
    return 0


def _export_int8(args, model, task: str, config: dict | None, onnx_path: Path, images, chw) -> dict:
    import torch

    from pixelwise.bench.export import onnx_session, time_onnx
    from pixelwise.bench.quantize import calibration_images, compare_accuracy, quantize_onnx
    int8_path = onnx_path.with_name(onnx_path.stem + ".int8.onnx")
    train_set = test_set = None
    if config is not None:
        from pixelwise.tasks import run_config
        train_set, test_set = task.datasets(run_config(config))
    if train_set is not None:
        calibration = calibration_images(train_set, args.calibration)
        source = f"{len(calibration)} training images of the run"
    else:
        calibration = torch.rand(args.calibration, *chw, generator=torch.Generator().manual_seed(1))
        source = f"{args.calibration} random images (no dataset: pass a run folder to calibrate on data)"
    info = quantize_onnx(onnx_path, int8_path, calibration)
    session = onnx_session(int8_path, args.threads)
    info["calibration_source"] = source
    info["latency_ms"] = time_onnx(session, images[:1], runs=args.runs)["median_ms"]
    print(f"wrote {int8_path} (int8 QDQ, calibrated on {source}); onnxruntime int8 latency "
          f"{info['latency_ms']:.2f} ms")
    if test_set is not None:
        from torch.utils.data import Subset
        subset = Subset(test_set, range(min(args.eval_images, len(test_set))))
        acc = compare_accuracy(model, {"int8": session}, subset, lambda: task.accuracy_meter(len(config["classes"])),
                               progress=not args.quiet)
        info["accuracy"] = acc
        print(f"{acc['metric']} on {acc['images']} test images: fp32 {acc['pytorch_fp32']:.4f}, "
              f"int8 {acc['int8']:.4f} (drop {acc['int8_drop_points']:.2f} points)")
    return info


def add_commands(subparsers) -> None:
    """Add `bench` and `export` to the `pixelwise` parser."""
    from pixelwise.bench.optimize import OPTIMIZATIONS
    b = subparsers.add_parser("bench", help="parameters, FLOPs, latency, memory and GFLOP/s of a model")
    b.add_argument("model", help="registered model name (e.g. swiftnet_rn18, cnn) or a run folder")
    _input_arguments(b)
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    b.add_argument("--precision", choices=("fp32", "bf16", "fp16", "int8"), default="fp32",
                   help="bf16/fp16: autocast (or --optimize cast_weights); int8: static quantization (CPU, eval)")
    b.add_argument("--int8-backend", choices=("onnxruntime", "pt2e"), default="onnxruntime",
                   help="int8 through onnxruntime QDQ or PT2 export quantization compiled by inductor")
    b.add_argument("--mode", choices=("eval", "train"), default="eval",
                   help="eval: one forward pass; train: forward + backward + SGD step")
    b.add_argument("--optimize", nargs="*", default=[], metavar="NAME",
                   help=f"any of: {', '.join(OPTIMIZATIONS)}")
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--runs", type=int, default=10)
    b.set_defaults(func=cmd_bench)

    e = subparsers.add_parser("export", help="ONNX export with a parity check, optionally 8-bit quantized")
    e.add_argument("model", help="registered model name or a run folder written by `pixelwise train`")
    e.add_argument("--onnx", required=True, metavar="PATH", help="ONNX file to write (int8: PATH stem + .int8.onnx)")
    _input_arguments(e)
    e.add_argument("--int8", action="store_true", help="also write a statically quantized int8 model")
    e.add_argument("--calibration", type=int, default=32, metavar="N", help="calibration images for --int8")
    e.add_argument("--eval-images", type=int, default=1000, metavar="N",
                   help="test images for the int8 accuracy drop (run folders only)")
    e.add_argument("--check", type=int, default=2, metavar="N", help="random images for the parity check")
    e.add_argument("--runs", type=int, default=10)
    e.set_defaults(func=cmd_export)


def _input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default=None, metavar="HxW",
                   help="input size (default: 28x28 or 224x224 for classifiers, 1024x2048 for segmenters)")
    p.add_argument("--channels", type=int, default=None, help="input channels (default: the model's first layer)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of a named model (default: its own)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's setting)")
