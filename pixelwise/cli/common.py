"""Options and output that several commands share."""
from __future__ import annotations

import argparse


def json_output(args, obj: dict) -> None:
    """Write a command's results to --json PATH when given."""
    if getattr(args, "json", None):
        from pixelwise.files import write_json
        write_json(args.json, obj)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the model runs (default auto: a GPU when there is one)")


def add_tta_options(parser: argparse.ArgumentParser) -> None:
    """Test-time augmentation of segmenters; unset, a run uses its config's data.eval_scales/eval_flip."""
    parser.add_argument("--scales", type=float, nargs="+", default=None, metavar="S",
                        help="segmentation: average over the image resized by these factors, e.g. 0.75 1 1.25")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="segmentation: also average over the left-right mirrored image")


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
