"""The `pixelwise` command: one module per command, each thin over the Python API.

Every command prints for people and, with --json PATH, writes the same results for programs.
Bad input ends with one line on stderr and exit status 2. Nothing else in pixelwise imports this package.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from pixelwise.errors import PixelwiseError

# Each module adds its commands with `add_commands(subparsers)`; heavy imports stay inside functions.
COMMAND_MODULES = ("train", "eval", "predict", "attack", "bench", "demo", "stereo", "track")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pixelwise", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(f"pixelwise.cli.{module}").add_commands(sub)
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
