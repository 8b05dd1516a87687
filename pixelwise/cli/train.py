"""`pixelwise train CONFIG [key=value ...]`: train a run, resumable."""
from __future__ import annotations

from pixelwise.cli.common import json_output


def cmd_train(args) -> int:
    from pixelwise.tasks import get_task, load_task_config, train
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.root={args.data_dir}")
    cfg = load_task_config(args.config, overrides)
    summary = train(cfg, resume=args.resume, stop_after=args.stop_after, progress=not args.quiet,
                    overwrite=args.overwrite)
    test = summary.get("test")
    print(f"{summary['status']} at step {summary['step']}/{summary['total_steps']} in "
          f"{summary['train_seconds']:.1f} s; run folder {summary['run_dir']}"
          + (f"; test {get_task(cfg.task).describe(test)}" if test else "")
          + (" (on the training images: no held-out split)" if summary.get("test_is_train") else ""))
    json_output(args, summary)
    return 0 if summary["status"] == "finished" else 130


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", help="YAML run config (see configs/)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=0.1 epochs=3")
    t.add_argument("--resume", action="store_true", help="continue from RUN/last.ckpt")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in the run folder")
    t.add_argument("--stop-after", type=int, default=None, help="stop after N steps, saving a checkpoint")
    t.add_argument("--data-dir", default=None, help="where the dataset files are")
    t.set_defaults(func=cmd_train)
