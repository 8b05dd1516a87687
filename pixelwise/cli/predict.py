"""`pixelwise predict IMAGE... --checkpoint RUN | --model NAME`: what a run (or a pretrained model) sees."""
from __future__ import annotations

from pixelwise.cli.common import add_device_option, add_tta_options, json_output


def cmd_predict(args) -> int:
    from pixelwise.errors import PixelwiseError
    from pixelwise.tasks import predict_images
    if not args.checkpoint and not args.model:
        raise PixelwiseError("predict: give --checkpoint RUN_FOLDER or --model NAME")
    results = predict_images(args.images, checkpoint=args.checkpoint, model=args.model, topk=args.topk,
                             out_dir=args.out, scales=args.scales, flip=args.flip, device=args.device)
    for r in results:
        print(r["image"])
        for c in r.get("top", []):
            print(f"  {c['probability']:7.2%}  {c['class']}")
        for k, v in r.get("files", {}).items():
            print(f"  {k}: {v}")
    json_output(args, {"predictions": results})
    return 0


def add_commands(sub) -> None:
    r = sub.add_parser("predict", help="what a trained run sees in image files: classes, segments, boxes, disparity, ...")
    r.add_argument("images", nargs="+", help="image files")
    r.add_argument("--checkpoint", default=None, help="run folder written by `pixelwise train`")
    r.add_argument("--model", default=None, help="a pretrained model name, e.g. efficientnet_lite0")
    r.add_argument("--topk", type=int, default=5)
    r.add_argument("--out", default="predictions", help="folder for the pictures (overlays, boxes, disparity maps)")
    add_device_option(r)
    add_tta_options(r)
    r.set_defaults(func=cmd_predict)
