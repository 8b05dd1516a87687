"""`pixelwise demo`: the whole system on the default data, written as a report (pixelwise.demo)."""
from __future__ import annotations

from pathlib import Path

from pixelwise.cli.common import json_output


def cmd_demo(args) -> int:
    from pixelwise.demo import run_demo
    summary = run_demo(Path(args.out), quick=args.quick, progress=not args.quiet)
    print(f"report: {summary['report']} (open it in a browser); markdown: {summary['markdown']}")
    json_output(args, summary)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("demo", help="run the whole system on the default data and write a report")
    p.add_argument("--out", default="demo_report", help="report folder (default demo_report)")
    p.add_argument("--quick", action="store_true", help="tiny training run: a smoke test of the demo")
    p.set_defaults(func=cmd_demo)
