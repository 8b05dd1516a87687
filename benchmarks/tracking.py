"""FS-Track, measured: SORT against motion + appearance (and ByteTrack-style matching) on the 100 FS-Video
test sequences, with ground-truth boxes (association alone) and with a learned detector.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/tracking.py           # full protocol
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/tracking.py --quick   # smoke run

1. Trains the appearance embedding (configs/embedding_fs_video.yaml: a narrow ResNet on 32 x 32 crops of
   the garment identities of train sequences 0-539, CosFace) for as many steps as fit `--budget`
   seconds here (the median step of a probe run), and measures its retrieval rank-1 / mAP on the test
   identities. `--embedding RUN` uses a trained run instead.
2. Detections: ground-truth boxes (score 1) and, when `--detector RUN` (default runs/bench_detection, the
   detection issue's benchmark run) exists, the detector's boxes on every frame (scores >= 0.1,
   class-agnostic NMS at IoU 0.8 against its per-class duplicates: pixelwise.tasks.tracking.usable).
3. Tunes each tracker on `--tune` TRAIN sequences from 540 on (never the test ones, nor those the
   embedding learned from): SORT (IoU + Kalman, appearance weight 0) over the IoU gate, max_age,
   min_hits and the score threshold; motion + appearance from SORT's best over the appearance weight,
   its re-identification gate and max_age; ByteTrack over the score thresholds. The best HOTA wins,
   separately for ground-truth boxes and learned detections. A ceiling row replaces the embedding
   by oracle identity features (one-hot of the ground-truth track a detection overlaps), tuned alike.
4. Scores the tuned trackers on the 100 test sequences: HOTA, DetA, AssA, IDF1, MOTA, ID switches
   (TrackEval's definitions, pixelwise.metrics.tracking), ID switches on the crossing sequences (those
   with twins), association frames per second (detections and features given) and end-to-end frames
   per second (detector + embedding + association, 2 threads).

Writes results/tracking.{md,json} and results/tracking_crossing.{gif,png} (one crossing sequence, SORT
against motion + appearance).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.bench.measure import device_name  # noqa: E402
from pixelwise.config import load_config  # noqa: E402
from pixelwise.data.fs_identities import twin_tracks  # noqa: E402
from pixelwise.data.fs_video import FSVideo, frame_targets  # noqa: E402
from pixelwise.data.mot import mot_frame_boxes, sequence_to_mot  # noqa: E402
from pixelwise.files import write_json  # noqa: E402
from pixelwise.metrics.tracking import tracking_metrics  # noqa: E402
from pixelwise.tasks import load_run, train  # noqa: E402
from pixelwise.tasks.tracking import associate, detect, embed_detections, usable  # noqa: E402
from pixelwise.tracking.tracker import TrackerConfig, iou_xyxy  # noqa: E402
from budget import PROBE_STEPS, steps_within  # noqa: E402  (benchmarks/budget.py)

BUDGET = 300
MIN_SCORE = 0.1             # the lowest detection score any tuned tracker sees (ByteTrack's low stage)
EMBEDDING_SEQUENCES = 540   # the embedding learns from train sequences 0-539; trackers are tuned on 540-599
TARGET_POINTS = 5.0
KEYS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")
ORACLE = "motion + oracle identity features (ceiling)"


def train_embedding(quick: bool, budget: float) -> tuple[Path, dict]:
    config = ROOT / "configs" / "embedding_fs_video.yaml"
    run_dir = ROOT / "runs" / ("bench_embedding" + ("_quick" if quick else ""))
    overrides = [f"out_dir={run_dir}", "eval_every_epoch=false", f"data.train_limit={EMBEDDING_SEQUENCES}"]
    if quick:
        overrides += ["data.train_limit=20", "data.test_limit=5", "max_steps=5", "batch_size=32"]   # the last wins
    probe = None
    if not quick and budget:
        steps, per_step = steps_within(config, [*overrides, f"out_dir={run_dir}_probe", "data.test_limit=1"], budget)
        overrides.append(f"max_steps={steps}")
        probe = {"steps": PROBE_STEPS, "median_seconds_per_step": per_step, "steps_within_budget": steps}
        print(json.dumps({"probe": probe}), flush=True)
    summary = train(load_config(config, overrides), progress=sys.stderr.isatty(), overwrite=True)
    return run_dir, {"run": str(run_dir.relative_to(ROOT)), "steps": summary["step"], "precision": summary["precision"],
                     "train_seconds": summary["train_seconds"], "probe": probe,
                     "rank1": summary["test"]["rank1"], "mAP": summary["test"]["mAP"],
                     "queries": summary["test"]["queries"], "gallery": summary["test"]["gallery"]}


def ground_truth_detections(item: dict) -> list[dict]:
    out = []
    for t in range(len(item["images"])):
        g = frame_targets(item, t)
        out.append({"boxes": g["boxes"].double().numpy(), "scores": np.ones(len(g["boxes"])),
                    "labels": g["labels"].numpy()})
    return out


def prepare(dataset: FSVideo, indices: range, detector, embedder, crop_size: int) -> list[dict]:
    """Per sequence: ground truth rows, crossing flag, and for 'gt' / 'learned' detections their features
    and the seconds the detector and embedding took."""
    out = []
    for i in indices:
        item = dataset[i]
        a = dataset.arrays
        seq = {"gt": sequence_to_mot(item), "crossing": bool(twin_tracks(a["labels"][i], a["boxes"][i],
                                                                          a["visibility"][i])), "sources": {}}
        sources = {"gt": (ground_truth_detections(item), 0.0)}
        if detector is not None:
            tick = time.perf_counter()
            found = usable(detect(detector, item["images"]), MIN_SCORE)
            sources["learned"] = (found, time.perf_counter() - tick)
        for name, (dets, det_seconds) in sources.items():
            tick = time.perf_counter()
            feats = embed_detections(embedder, item["images"], dets, crop_size)
            seq["sources"][name] = {"detections": dets, "features": feats, "detect_seconds": det_seconds,
                                    "embed_seconds": time.perf_counter() - tick}
        out.append(seq)
    return out


def evaluate(sequences: list[dict], source: str, config: TrackerConfig) -> dict:
    preds, seconds = [], 0.0
    for s in sequences:
        d = s["sources"][source]
        tick = time.perf_counter()
        preds.append(associate(d["detections"], config, d["features"] if config.appearance_weight > 0 else None))
        seconds += time.perf_counter() - tick
    m = tracking_metrics([s["gt"] for s in sequences], preds)
    crossing = [k for k, s in enumerate(sequences) if s["crossing"]]
    mc = tracking_metrics([sequences[k]["gt"] for k in crossing], [preds[k] for k in crossing]) if crossing else {}
    frames = sum(len(s["sources"][source]["detections"]) for s in sequences)
    model_seconds = sum(s["sources"][source]["detect_seconds"] + (s["sources"][source]["embed_seconds"]
                        if config.appearance_weight > 0 else 0) for s in sequences)
    return {**{k: float(m[k]) for k in KEYS}, "IDSW_crossing": float(mc.get("IDSW", 0)),
            "crossing_sequences": len(crossing), "association_fps": frames / max(seconds, 1e-9),
            "fps": frames / max(seconds + model_seconds, 1e-9), "preds": preds}


def best_of(sequences: list[dict], source: str, configs: list[TrackerConfig]) -> tuple[TrackerConfig, float]:
    scored = [(evaluate(sequences, source, c)["HOTA"], -k) for k, c in enumerate(configs)]
    hota, k = max(scored)
    return configs[-k], hota


def tune(sequences: list[dict], source: str, byte: bool,
         sort: tuple[TrackerConfig, float] | None = None) -> dict[str, tuple[TrackerConfig, float]]:
    """The best HOTA settings on `sequences` of SORT (IoU gate, max_age, min_hits, score threshold), then of motion +
    appearance from SORT's best (appearance weight, re-identification gate and cosine bound, max_age),
    then of ByteTrack's score thresholds on top of that. `sort`: SORT's tuned settings, when known."""
    scores = (0.2, 0.3, 0.5) if source == "learned" else (0.5,)   # ground-truth boxes all score 1
    grid = [TrackerConfig(iou_gate=g, max_age=a, min_hits=h, high_score=s, low_score=s)
            for g, a, h, s in itertools.product((0.1, 0.2, 0.3), (3, 10, 20), (1, 3), scores)]
    best = {"SORT": sort or best_of(sequences, source, grid)}
    base = best["SORT"][0]
    appearance = [replace(base, appearance_weight=w, reid_gate=r, max_cosine=c, max_age=a)
                  for w, r, c, a in itertools.product((0.15, 0.3, 0.6), (0.0, 5.99, 30.0, 100.0), (0.3, 0.5),
                                                      sorted({base.max_age, 2 * base.max_age}))
                  if r > 0 or c == 0.3]
    best["motion + appearance"] = best_of(sequences, source, appearance)
    if byte:
        base = best["motion + appearance"][0]
        configs = [replace(base, high_score=hs, low_score=ls)
                   for hs, ls in itertools.product((0.3, 0.4, 0.5), (0.1, 0.2))]
        best["motion + appearance + ByteTrack"] = best_of(sequences, source, configs)
    for name, (config, hota) in best.items():
        print(f"tuned {name} on {source}: HOTA {hota:.4f} with {asdict(config)}", flush=True)
    return best


def with_oracle_features(sequences: list[dict], source: str) -> None:
    """Add source + '_oracle': its detections with perfect identity features, a one-hot vector of the
    ground-truth track a detection overlaps by IoU >= 0.5 (random unit vectors for the others): the
    ceiling of what any appearance embedding can add to this association (it even tells twins apart)."""
    rng = np.random.default_rng(0)
    for s in sequences:
        d = s["sources"][source]
        features = []
        for t, found in enumerate(d["detections"]):
            ids, gt_boxes = mot_frame_boxes(s["gt"], t + 1)
            f = rng.normal(0, 1, (len(found["boxes"]), 16))
            f[:, :6] *= 0.01   # ids 1-6 are the first six dimensions
            if len(gt_boxes) and len(found["boxes"]):
                iou = iou_xyxy(found["boxes"], gt_boxes)
                hit = iou.max(1) >= 0.5
                f[hit] = np.eye(16)[ids[iou[hit].argmax(1)] - 1]
            features.append(f / np.linalg.norm(f, axis=1, keepdims=True))
        s["sources"][source + "_oracle"] = {**d, "features": features, "embed_seconds": 0.0}


def write_crossing_pictures(dataset: FSVideo, test: list[dict], rows: dict, out: Path, source: str,
                            stem: str = "tracking") -> dict:
    """GIF and strip of the first crossing sequence where SORT and motion + appearance differ most."""
    from pixelwise.viz.tracks import draw_tracks, strip, write_video
    crossing = [k for k, s in enumerate(test) if s["crossing"]]
    if not crossing:
        return {}
    names = ["SORT", "motion + appearance"]

    def idsw(k, name):
        return tracking_metrics(test[k]["gt"], rows[name][k])["IDSW"]
    k = max(crossing, key=lambda k: (idsw(k, names[0]) - idsw(k, names[1]), -k))
    frames = dataset[k]["images"]
    panels = {}
    for name in names:
        r = rows[name][k]
        panels[name] = [draw_tracks(f, *mot_frame_boxes(r, t + 1)[::-1], 2) for t, f in enumerate(frames)]
    side_by_side = [np.concatenate([a, np.full((a.shape[0], 4, 3), 255, np.uint8), b], 1)
                    for a, b in zip(panels[names[0]], panels[names[1]])]
    gif = write_video(side_by_side, out / f"{stem}_crossing.gif", fps=5)
    from PIL import Image
    picked = list(range(0, len(frames), 3))
    png = out / f"{stem}_crossing.png"
    Image.fromarray(np.concatenate([strip([panels[n][t] for t in picked]) for n in names], 0)).save(png)
    return {"sequence": k, "source": source, "gif": gif.name, "png": png.name,
            "rows": "top: SORT, bottom: motion + appearance, every 3rd frame"}


def table(results: dict) -> list[str]:
    lines = ["| detections | tracker | HOTA | DetA | AssA | IDF1 | MOTA | IDSW | IDSW on crossings | assoc. FPS | "
             "end-to-end FPS |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for source, trackers in results.items():
        for name, m in trackers.items():
            percent = " | ".join(f"{100 * m[k]:.1f}" for k in ("HOTA", "DetA", "AssA", "IDF1", "MOTA"))
            lines.append(f"| {source} | {name} | {percent} | {m['IDSW']:.0f} | {m['IDSW_crossing']:.0f} | "
                         f"{m['association_fps']:.0f} | {m['fps']:.0f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few sequences and steps: a smoke run")
    p.add_argument("--budget", type=float, default=BUDGET, help="seconds of embedding training (0: config's epochs)")
    p.add_argument("--embedding", default=None, help="a trained embedding run instead of training one")
    p.add_argument("--detector", default=str(ROOT / "runs" / "bench_detection"))
    p.add_argument("--tune", type=int, default=60, help="train sequences the trackers are tuned on")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    started = time.perf_counter()
    if args.embedding:
        emb_dir = Path(args.embedding)
        trained = json.loads((emb_dir / "summary.json").read_text())
        emb = {"run": args.embedding, "steps": trained["step"], "precision": trained["precision"],
               "train_seconds": trained["train_seconds"],
               **{k: trained["test"][k] for k in ("rank1", "mAP", "queries", "gallery")}}
    else:
        emb_dir, emb = train_embedding(args.quick, args.budget)
    embedder, emb_config = load_run(emb_dir)
    crop_size = int(emb_config["train_config"]["data"]["crop_size"])
    detector, det_info = None, None
    if (Path(args.detector) / "model.safetensors").is_file():
        detector, det_config = load_run(args.detector)
        # Its AP is in results/detection.md: the run's own summary scores only its data.test_limit images.
        det_info = {"run": str(Path(args.detector).resolve().relative_to(ROOT)) if Path(args.detector).resolve()
                    .is_relative_to(ROOT) else args.detector, "model": det_config["model"],
                    "steps": json.loads((Path(args.detector) / "summary.json").read_text())["step"]}
    else:
        print(f"no detector run at {args.detector}: ground-truth boxes only", flush=True)
    n_test, n_tune = (6, 6) if args.quick else (100, min(args.tune, 600 - EMBEDDING_SEQUENCES))
    tune_range = range(EMBEDDING_SEQUENCES, EMBEDDING_SEQUENCES + n_tune)
    test_set, train_set = FSVideo("test"), FSVideo("train")
    tune_seqs = prepare(train_set, tune_range, detector, embedder, crop_size)
    test_seqs = prepare(test_set, range(n_test), detector, embedder, crop_size)
    sources = ["gt"] + (["learned"] if detector is not None else [])
    results, settings, rows = {}, {}, {}
    for seqs in (tune_seqs, test_seqs):   # the ceiling of appearance, with the headline detections
        with_oracle_features(seqs, sources[-1])
    for source in sources:
        best = tune(tune_seqs, source, byte=source == "learned")
        if source == sources[-1]:
            best[ORACLE] = tune(tune_seqs, source + "_oracle", byte=False, sort=best["SORT"])["motion + appearance"]
        label = "ground-truth boxes" if source == "gt" else "learned detections"
        results[label], settings[label] = {}, {}
        rows[source] = {}
        for name, (config, train_hota) in best.items():
            m = evaluate(test_seqs, source + "_oracle" if name == ORACLE else source, config)
            rows[source][name] = m.pop("preds")
            results[label][name] = m
            settings[label][name] = {**asdict(config), "train_HOTA": train_hota}
            print(f"{label}, {name}: " + ", ".join(f"{k} {m[k]:.4f}" for k in KEYS), flush=True)
    stem = "tracking_quick" if args.quick else "tracking"
    pictures = write_crossing_pictures(test_set, test_seqs, rows[sources[-1]], out, sources[-1], stem)
    headline = results["learned detections" if detector is not None else "ground-truth boxes"]
    gain = {k: 100 * (headline["motion + appearance"][k] - headline["SORT"][k]) for k in ("HOTA", "IDF1")}
    report = {"device": device_name("cpu"), "threads": 2, "embedding": emb, "detector": det_info,
              "test_sequences": n_test, "tune_sequences": [tune_range.start, tune_range.stop - 1],
              "results": results, "settings": settings, "gain_points": gain,
              "target": f">= {TARGET_POINTS:g} HOTA and IDF1 points over SORT with learned detections",
              "target_met": detector is not None and min(gain.values()) >= TARGET_POINTS, "pictures": pictures,
              "seconds": time.perf_counter() - started, "quick": args.quick}
    write_json(out / f"{stem}.json", report)
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)


def markdown(r: dict) -> str:
    emb, det, gain = r["embedding"], r["detector"], r["gain_points"]
    ap = f"COCO AP {det['ap']:.3f} ({det['ap_source']})" if det and "ap" in det else "its AP: results/detection.md"
    detector = f"{det['run']} ({det['model']}, {det['steps']} training steps; {ap})" if det \
        else "none (ground-truth boxes only)"
    lines = [f"# FS-Track{' (quick)' if r['quick'] else ''}", "",
             f"{r['test_sequences']} FS-Video test sequences; trackers tuned on train sequences "
             f"{r['tune_sequences'][0]}-{r['tune_sequences'][1]}; CPU: {r['device']}, {r['threads']} threads.",
             f"Embedding: {emb['steps']} steps ({emb['precision']}, {emb['train_seconds']:.0f} s of training), "
             f"retrieval rank-1 {emb['rank1']:.3f}, mAP {emb['mAP']:.3f} ({emb['queries']} test identities, "
             f"gallery of {emb['gallery']} crops).", f"Detector: {detector}.", "", *table(r["results"]), "",
             f"Motion + appearance minus SORT ({'learned detections' if det else 'ground-truth boxes'}): "
             f"HOTA {gain['HOTA']:+.1f}, IDF1 {gain['IDF1']:+.1f} points; target {r['target']}: "
             f"{'met' if r['target_met'] else 'not met'}.", "",
             "FPS: association alone (detections and features given), and end to end (detector, embedding of "
             "the detections, association).", "", "Tuned settings (on train sequences):", ""]
    lines += [f"- {label}, {name}: `{json.dumps(s)}`" for label, d in r["settings"].items() for name, s in d.items()]
    if r["pictures"]:
        p = r["pictures"]
        lines += ["", f"![crossing]({p['png']}) ({p['rows']}; test sequence {p['sequence']}, {p['source']} boxes; "
                  f"animated: {p['gif']})"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
