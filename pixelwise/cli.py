"""The `pixelwise` command: a thin layer over the Python API.

Every command prints for people and, with --json PATH, writes the same results for programs.
Bad input ends with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from pixelwise.errors import PixelwiseError


def json_output(args, obj: dict) -> None:
    """Write a command's results to --json PATH when given (commands in other modules call this too)."""
    if getattr(args, "json", None):
        from pixelwise.engine.checkpoint import write_json
        write_json(args.json, obj)


def cmd_train(args) -> int:
    from pixelwise.config import load_config
    from pixelwise.engine.train import train
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.root={args.data_dir}")
    cfg = load_config(args.config, overrides)
    summary = train(cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.quiet)
    test = summary.get("test", {})
    print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']} in "
          f"{summary['train_seconds']:.1f} s; run folder {summary['run_dir']}"
          + (f"; test top-1 {test['top1']:.4f}, top-5 {test['top5']:.4f}" if "top1" in test else "")
          + (f"; test mIoU {test['miou']:.4f}, pixel accuracy {test['pixel_accuracy']:.4f}" if "miou" in test else "")
          + (f"; outliers AP {test['ap']:.4f}, AUROC {test['auroc']:.4f}, FPR95 {test['fpr95']:.4f}"
             if "fpr95" in test else ""))
    json_output(args, summary)
    return 0 if summary["status"] == "finished" else 130


def image_limit(text: str) -> int | str:
    """argparse type of --limit: a positive image count or 'all'."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of images or 'all', got {text!r}")
    return value


def cmd_eval(args) -> int:
    from pixelwise.predict import evaluate_run
    result = evaluate_run(args.checkpoint, split=args.split, data_dir=args.data_dir,
                          out_dir=args.out, progress=not args.quiet, scales=args.scales, flip=args.flip,
                          limit=args.limit)
    print(result["text"])
    json_output(args, result["metrics"])
    return 0


def cmd_predict(args) -> int:
    from pixelwise.predict import predict_images
    if not args.checkpoint and not args.model:
        raise PixelwiseError("predict: give --checkpoint RUN_FOLDER or --model NAME")
    results = predict_images(args.images, checkpoint=args.checkpoint, model=args.model,
                             topk=args.topk, out_dir=args.out, scales=args.scales, flip=args.flip)
    for r in results:
        print(r["image"])
        for c in r.get("top", []):
            print(f"  {c['probability']:7.2%}  {c['class']}")
        for k, v in r.get("files", {}).items():
            print(f"  {k}: {v}")
    json_output(args, {"predictions": results})
    return 0


# Modules that add their own commands with `add_commands(subparsers)`; they import heavy things lazily.
COMMAND_MODULES = ("pixelwise.attacks.cli", "pixelwise.bench.cli", "pixelwise.demo")


def add_tta_options(parser: argparse.ArgumentParser) -> None:
    """Test-time augmentation of segmenters; unset, a run uses its config's data.eval_scales/eval_flip."""
    parser.add_argument("--scales", type=float, nargs="+", default=None, metavar="S",
                        help="segmentation: average over the image resized by these factors, e.g. 0.75 1 1.25")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="segmentation: also average over the left-right mirrored image")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pixelwise", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", help="YAML run config (see configs/)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=0.1 epochs=3")
    t.add_argument("--resume", action="store_true", help="continue from RUN/last.ckpt")
    t.add_argument("--stop-after", type=int, default=None, help="stop after N steps, saving a checkpoint")
    t.add_argument("--data-dir", default=None, help="where the dataset files are")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a trained run on its dataset")
    e.add_argument("checkpoint", help="run folder written by `pixelwise train`")
    e.add_argument("--split", default="test")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--out", default=None, help="folder for tables and figures (default RUN/eval)")
    e.add_argument("--limit", type=image_limit, default=None, metavar="N|all",
                   help="evaluate the first N images of the split, or all (default: the run's data.test_limit)")
    add_tta_options(e)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("predict", help="classify (or segment) image files")
    r.add_argument("images", nargs="+", help="image files")
    r.add_argument("--checkpoint", default=None, help="run folder written by `pixelwise train`")
    r.add_argument("--model", default=None, help="a pretrained model name, e.g. efficientnet_lite0")
    r.add_argument("--topk", type=int, default=5)
    r.add_argument("--out", default="predictions", help="folder for overlays (segmentation)")
    add_tta_options(r)
    r.set_defaults(func=cmd_predict)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    for s in sub.choices.values():
        s.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
        s.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (`train CFG --json s.json epochs=3`).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except PixelwiseError as e:
        print(f"pixelwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixelwise {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
