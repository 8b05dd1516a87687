"""`pixelwise track FRAMES_DIR_or_VIDEO --detector RUN [--embedding RUN] --out DIR`: tracks as MOTChallenge
text and a GIF or MP4 with coloured boxes and ids."""
from __future__ import annotations

from pixelwise.cli.common import add_device_option, json_output


def cmd_track(args) -> int:
    from pixelwise.tasks.tracking import track_files
    from pixelwise.tracking.tracker import TrackerConfig
    weight = args.appearance_weight if args.appearance_weight is not None else (0.6 if args.embedding else 0.0)
    config = TrackerConfig(appearance_weight=weight, iou_gate=args.iou_gate, min_hits=args.min_hits,
                           max_age=args.max_age or (40 if args.embedding else 20), high_score=args.score,
                           low_score=args.low_score if args.byte else args.score,
                           reid_gate=args.reid_gate if args.embedding else 0.0, max_cosine=args.max_cosine)
    summary = track_files(args.source, args.detector, args.out, embedding=args.embedding, config=config,
                          video=args.video, nms_iou=args.nms_iou if args.nms_iou < 1 else None, device=args.device)
    fps = f", {summary['fps']:.1f} frames/s" if summary["fps"] else ""
    print(f"{summary['frames']} frames, {summary['tracks']} tracks, {summary['boxes']} boxes{fps}")
    for k, v in summary["files"].items():
        print(f"  {k}: {v}")
    json_output(args, summary)
    return 0


def add_commands(sub) -> None:
    # Defaults: the settings benchmarks/tracking.py tuned on FS-Video train sequences with learned detections
    # (results/tracking.md).
    r = sub.add_parser("track", help="track objects through a folder of frames or a video")
    r.add_argument("source", help="a folder of frames (sorted by file name) or a video file")
    r.add_argument("--detector", required=True, help="run folder of a detection run")
    r.add_argument("--embedding", default=None, help="run folder of an embedding run (appearance); without it: SORT")
    r.add_argument("--out", default="tracks", help="folder for tracks.txt, tracks.gif/mp4 and tracks.json")
    r.add_argument("--video", choices=("gif", "mp4"), default="gif")
    r.add_argument("--appearance-weight", type=float, default=None,
                   help="weight of the embedding distance in the cost (default 0.6 with --embedding, else 0)")
    r.add_argument("--iou-gate", type=float, default=0.2, help="pairs overlapping less never match (IoU)")
    r.add_argument("--reid-gate", type=float, default=100.0,
                   help="with --embedding: squared Mahalanobis gate (centres) of look-alike pairs that overlap "
                        "less (0: off)")
    r.add_argument("--max-cosine", type=float, default=0.5, help="cosine distance of pairs the --reid-gate admits")
    r.add_argument("--min-hits", type=int, default=1, help="matches before a track is reported")
    r.add_argument("--max-age", type=int, default=None,
                   help="frames a track survives without a match (default 40 with --embedding, else 20)")
    r.add_argument("--score", type=float, default=0.3, help="detections scoring this start and extend tracks")
    r.add_argument("--byte", action="store_true",
                   help="ByteTrack: also match detections scoring --low-score to --score to tracks left over")
    r.add_argument("--low-score", type=float, default=0.2)
    r.add_argument("--nms-iou", type=float, default=0.8,
                   help="drop a detection overlapping a higher-scored one this much (duplicates; 1: keep all)")
    add_device_option(r)
    r.set_defaults(func=cmd_track)
