"""`pixelwise stereo LEFT RIGHT (--checkpoint RUN | --method sgbm) [--focal F --baseline B] --out DIR`:
disparity (and depth) of a rectified pair of image files."""
from __future__ import annotations

from pixelwise.cli.common import add_device_option, json_output


def cmd_stereo(args) -> int:
    from pixelwise.tasks.stereo import reconstruct_pair
    result = reconstruct_pair(args.left, args.right, args.out, checkpoint=args.checkpoint, method=args.method,
                              focal=args.focal, baseline=args.baseline, num_disparities=args.num_disparities,
                              block_size=args.block_size, device=args.device)
    d = result["disparity_px"]
    how = f"SGBM, {result['density']:.1%} of pixels matched" if "density" in result else result["checkpoint"]
    print(f"{result['left']} + {result['right']} ({result['size'][1]}x{result['size'][0]} px, {how}): disparity "
          f"{d['min']:.2f}-{d['max']:.2f} px (median {d['median']:.2f}) in {result['seconds']:.2f} s")
    for k, v in result["files"].items():
        print(f"  {k}: {v}")
    json_output(args, result)
    return 0


def add_commands(sub) -> None:
    r = sub.add_parser("stereo", help="disparity and depth of a rectified stereo pair")
    r.add_argument("left", help="left view (image file)")
    r.add_argument("right", help="right view, rectified to the left one (same size and channels)")
    how = r.add_mutually_exclusive_group(required=True)
    how.add_argument("--checkpoint", default=None, help="run folder of a trained stereo model")
    how.add_argument("--method", choices=("sgbm",), default=None, help="sgbm: OpenCV's semi-global matching")
    r.add_argument("--focal", type=float, default=None, help="focal length in px (with --baseline: depth)")
    r.add_argument("--baseline", type=float, default=None, help="camera baseline in m (with --focal: depth)")
    r.add_argument("--num-disparities", type=int, default=48,
                   help="sgbm: search range in px, a multiple of 16 (default 48)")
    r.add_argument("--block-size", type=int, default=5, help="sgbm: odd matching window side in px (default 5)")
    r.add_argument("--out", default="stereo", help="folder for the maps (default ./stereo)")
    add_device_option(r)
    r.set_defaults(func=cmd_stereo)
