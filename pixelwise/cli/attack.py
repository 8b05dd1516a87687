"""`pixelwise attack`: robustness of a trained run, or flipping a pretrained model on image files."""
from __future__ import annotations


from pixelwise.cli.common import add_device_option, json_output
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


def cmd_attack(args) -> int:
    from pixelwise.attacks.flip import attack_images
    from pixelwise.tasks import attack_run
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
                        progress=not args.quiet, device=args.device)
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
    add_device_option(a)
    a.set_defaults(func=cmd_attack)
