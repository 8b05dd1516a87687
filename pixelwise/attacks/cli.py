"""`pixelwise attack`: robustness of a trained run, or flipping a pretrained model on image files.

This module is imported whenever the `pixelwise` command starts, so heavy imports stay inside functions.
"""
from __future__ import annotations

from pathlib import Path

from pixelwise.errors import PixelwiseError

DEFAULT_EPS = "0,1/255,2/255,4/255,8/255,16/255"


def parse_eps_list(text: str) -> list[float]:
    """'0,0.5/255,0.1' -> [0.0, 0.00196..., 0.1]: budgets in pixel units of [0, 1] images."""
    out = []
    for part in text.split(","):
        num, _, den = part.strip().partition("/")
        try:
            eps = float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            raise PixelwiseError(f"--eps: {part.strip()!r} is not a number or fraction; "
                                 "write e.g. --eps 0,1/255,2/255,0.1") from None
        if not 0 <= eps <= 1:
            raise PixelwiseError(f"--eps: {part.strip()!r} is outside [0, 1] (images are in [0, 1])")
        out.append(eps)
    return out


def attack_run(run: str | Path, attack: str = "pgd", norm: str = "linf", eps_list: list[float] = (0.0,),
               steps: int = 10, alpha: float | None = None, random_start: bool = False,
               limit: int | None = None, batch_size: int = 256, data_dir: str | None = None,
               out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Robustness of a trained run on its test split: table (JSON, Markdown) and curve in out_dir."""
    import torch

    from pixelwise.attacks.robustness import plot_robustness_curve, robustness_curve, robustness_table
    from pixelwise.config import DataConfig
    from pixelwise.data import build_dataset
    from pixelwise.engine.checkpoint import write_json
    from pixelwise.predict import load_run
    model, config = load_run(run)
    data = DataConfig.model_validate(config["train_config"]["data"])
    if data_dir:
        data.root = data_dir
    dataset = build_dataset(data, "test")
    rows = robustness_curve(model, dataset, len(config["classes"]), eps_list, attack=attack, norm=norm,
                            steps=steps, alpha=alpha, random_start=random_start, batch_size=batch_size,
                            limit=limit, device=torch.device("cpu"), progress=progress)
    out = Path(out_dir or Path(run) / "attack")
    name = f"{attack}_{norm}"
    table = robustness_table(rows)
    write_json(out / f"robustness_{name}.json", {"run": str(run), "rows": rows})
    (out / f"robustness_{name}.md").write_text(table)
    figure = plot_robustness_curve({f"{attack} {norm}": rows}, out / f"robustness_{name}.png",
                                   title=f"{Path(run).name}: {attack} ({norm})")
    return {"run": str(run), "rows": rows, "table": table, "files": [str(out / f"robustness_{name}.json"),
            str(out / f"robustness_{name}.md"), str(figure)]}


def attack_images(images: list[str], model: str, attack: str = "fgsm", norm: str = "linf",
                  eps_list: list[float] = (1 / 255,), steps: int = 10, target: str | None = None,
                  out_dir: str | Path = "adversarial") -> list[dict]:
    """Per image file, the smallest eps of eps_list that changes a pretrained model's prediction.

    target: a class name or index to reach (targeted attack). Untargeted FGSM also draws the panda
    slide of each image at its flipping eps (or the largest eps) into out_dir.
    """
    import torch

    from pixelwise.attacks.flip import smallest_flipping_eps
    from pixelwise.data.folders import read_image
    from pixelwise.models.pretrained import load_pretrained_classifier
    from pixelwise.viz.adversarial import adversarial_example_figure
    net, classes, preprocess = load_pretrained_classifier(model)
    net.eval()
    target_index = None if target is None else _class_index(target, classes)
    batch = torch.stack([preprocess(read_image(p, "RGB")) for p in images])
    results = smallest_flipping_eps(net, batch, eps_list, attack=attack, norm=norm, steps=steps,
                                    target=target_index)
    out = []
    for path, x, r in zip(images, batch, results):
        row = {"image": str(path), "clean": classes[r["clean_class"]], "clean_confidence": r["clean_confidence"],
               "eps": r["eps"], "adversarial": None if r["adv_class"] is None else classes[r["adv_class"]],
               "adversarial_confidence": r["adv_confidence"]}
        if attack == "fgsm" and target_index is None and norm == "linf":
            eps = r["eps"] or max(eps_list)
            fig = adversarial_example_figure(net, x, classes, eps, Path(out_dir) / f"{Path(path).stem}_fgsm.png",
                                             title=f"{Path(path).name}, FGSM")
            row["figure"] = fig["figure"]
        out.append(row)
    return out


def _class_index(target: str, classes: list[str]) -> int:
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    matches = [i for i, c in enumerate(classes) if c.lower() == target.lower()]
    if not matches:
        raise PixelwiseError(f"--target: {target!r} is neither a class name nor an index below {len(classes)}")
    return matches[0]


def cmd_attack(args) -> int:
    from pixelwise.cli import json_output
    eps_list = parse_eps_list(args.eps)
    if args.model:
        results = attack_images(args.inputs, args.model, attack=args.attack, norm=args.norm, eps_list=eps_list,
                                steps=args.steps, target=args.target, out_dir=args.out or "adversarial")
        for r in results:
            flip = (f"flips at eps {r['eps']:.4g} ({r['eps'] * 255:.3g}/255) to {r['adversarial']} "
                    f"({r['adversarial_confidence']:.1%})" if r["eps"] is not None else "does not flip")
            print(f"{r['image']}: {r['clean']} ({r['clean_confidence']:.1%}) {flip}"
                  + (f"; figure {r['figure']}" if "figure" in r else ""))
        json_output(args, {"model": args.model, "attack": args.attack, "norm": args.norm, "images": results})
        return 0
    if len(args.inputs) != 1:
        raise PixelwiseError("attack: give one run folder, or --model NAME followed by image files")
    result = attack_run(args.inputs[0], attack=args.attack, norm=args.norm, eps_list=eps_list, steps=args.steps,
                        alpha=args.alpha, random_start=args.random_start, limit=args.limit,
                        batch_size=args.batch_size, data_dir=args.data_dir, out_dir=args.out,
                        progress=not args.quiet)
    print(result["table"], end="")
    print("files: " + ", ".join(result["files"]))
    json_output(args, {k: v for k, v in result.items() if k != "table"})
    return 0


def add_commands(subparsers) -> None:
    """Add `pixelwise attack` to the `pixelwise` parser."""
    a = subparsers.add_parser(
        "attack", help="adversarial robustness of a trained run, or flip a pretrained model on images",
        description="pixelwise attack RUN [--attack pgd --eps 0,0.05,0.1]  |  "
                    "pixelwise attack --model efficientnet_lite0 IMAGE... [--eps 1/255,2/255]")
    a.add_argument("inputs", nargs="+", metavar="RUN_OR_IMAGE",
                   help="a run folder written by `pixelwise train`, or image files with --model")
    a.add_argument("--model", default=None, help="a pretrained model name (then the inputs are image files)")
    a.add_argument("--attack", choices=("fgsm", "pgd"), default="pgd")
    a.add_argument("--norm", choices=("linf", "l2"), default="linf")
    a.add_argument("--eps", default=DEFAULT_EPS, help=f"comma-separated budgets in [0, 1] (default {DEFAULT_EPS})")
    a.add_argument("--steps", type=int, default=10, help="PGD steps")
    a.add_argument("--alpha", type=float, default=None, help="PGD step size (default 2.5 eps / steps)")
    a.add_argument("--random-start", action="store_true", help="PGD from a random point of the ball")
    a.add_argument("--target", default=None, help="with --model: class name or index to reach (targeted)")
    a.add_argument("--limit", type=int, default=None, help="attack only the first N test items")
    a.add_argument("--batch-size", type=int, default=256)
    a.add_argument("--data-dir", default=None, help="where the run's dataset files are")
    a.add_argument("--out", default=None, help="folder for tables and figures (default RUN/attack or ./adversarial)")
    a.set_defaults(func=cmd_attack)
