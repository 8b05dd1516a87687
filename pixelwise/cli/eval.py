"""`pixelwise eval RUN`: metrics of a trained run on its dataset, with tables and figures."""
from __future__ import annotations

from pixelwise.cli.common import add_device_option, add_tta_options, image_limit, json_output


def cmd_eval(args) -> int:
    from pixelwise.tasks import evaluate_run
    result = evaluate_run(args.checkpoint, split=args.split, data_dir=args.data_dir, out_dir=args.out,
                          progress=not args.quiet, scales=args.scales, flip=args.flip, limit=args.limit,
                          device=args.device)
    print(result["text"])
    json_output(args, result["metrics"])
    return 0


def add_commands(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a trained run on its dataset")
    e.add_argument("checkpoint", help="run folder written by `pixelwise train`")
    e.add_argument("--split", default="test")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--out", default=None, help="folder for tables and figures (default RUN/eval)")
    e.add_argument("--limit", type=image_limit, default=None, metavar="N|all",
                   help="evaluate the first N images of the split, or all (default: the run's data.test_limit)")
    add_device_option(e)
    add_tta_options(e)
    e.set_defaults(func=cmd_eval)
