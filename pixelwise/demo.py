"""`pixelwise demo`: the whole system on the default data, written to a report folder a person opens.

1. classify real photos (scikit-image's samples) with the ImageNet-pretrained EfficientNet-Lite0;
2. flip one with FGSM at the smallest budget that works, drawn like the lecture's panda slide;
3. train a SwiftNet (pretrained EfficientNet-Lite0 backbone) with an outlier head on FashionScenes,
   negatives pasted in (Bevandic et al.);
4. evaluate inlier mIoU and outlier AP on FS-OOD, with overlays and heat maps of test scenes;
5. write report/index.html and report/README.md with every table and picture.
"""
from __future__ import annotations

import html
import sys
import time
from pathlib import Path

# Real photos that ship with scikit-image: name -> what a person sees in them.
PHOTOS = {"chelsea": "a tabby cat", "coffee": "a cup of coffee", "astronaut": "an astronaut",
          "rocket": "a rocket on its launch pad"}
FGSM_BUDGETS = (0.25 / 255, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255)


def _step(name: str, timings: dict):
    print(f"[demo] {name}", file=sys.stderr, flush=True)
    timings[name] = time.perf_counter()


def classify_photos(out: Path) -> tuple[list[dict], dict]:
    """Top-5 ImageNet classes of the sample photos, and the model for the attack."""
    import skimage.data
    import torch
    from PIL import Image

    from pixelwise.models.pretrained import load_pretrained_classifier
    from pixelwise.tasks.classification import classify
    model, classes, preprocess = load_pretrained_classifier("efficientnet_lite0")
    rows, batch = [], []
    for name, what in PHOTOS.items():
        path = out / "photos" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path)
        from pixelwise.data.folders import read_image
        batch.append(preprocess(read_image(path, "RGB")))
        rows.append({"photo": name, "shows": what, "file": f"photos/{name}.png"})
    images = torch.stack(batch)
    for row, top in zip(rows, classify(model, images, classes, topk=5)):
        row["top5"] = top
    return rows, {"model": model, "classes": classes, "images": images}


def flip_with_fgsm(out: Path, model, classes, images) -> dict:
    """The smallest FGSM budget of FGSM_BUDGETS that changes each photo's prediction; figure for the first."""
    from pixelwise.attacks.flip import smallest_flipping_eps
    from pixelwise.attacks.figures import adversarial_example_figure
    flips = smallest_flipping_eps(model, images, FGSM_BUDGETS, attack="fgsm")
    first = next((i for i, f in enumerate(flips) if f["eps"] is not None), 0)
    eps = flips[first]["eps"] or FGSM_BUDGETS[-1]
    figure = adversarial_example_figure(model, images[first], classes, eps, out / "fgsm.png",
                                        title="FGSM against the ImageNet-pretrained EfficientNet-Lite0")
    for f in flips:
        f["clean_class"] = classes[f["clean_class"]]
        f["adv_class"] = classes[f["adv_class"]] if f["adv_class"] is not None else None
    return {"per_photo": [dict(photo=n, **f) for n, f in zip(PHOTOS, flips)], "figure": "fgsm.png",
            "shown": list(PHOTOS)[first], "eps": eps, "panels": figure}


def train_segmenter(out: Path, quick: bool, progress: bool) -> dict:
    """SwiftNet (EfficientNet-Lite0 backbone) with an outlier head on FashionScenes, photo crops as negatives
    (the recipe of configs/swiftnet_lite0_fs_ood.yaml, shorter)."""
    from pixelwise.config import load_config
    from pixelwise.tasks import train
    size = ["data.train_limit=64", "data.test_limit=16", "epochs=1", "data.canvas_size=64",
            "data.crop_size=64"] if quick else ["data.train_limit=2000", "data.test_limit=1000", "epochs=3"]
    cfg = load_config(None, [
        # The ImageNet-pretrained EfficientNet-Lite0 backbone: the only pretrained weights available
        # offline, and knowledge transfer is what makes a few minutes of CPU training enough.
        "name=demo_swiftnet_outliers", "model=swiftnet", "model_kwargs={backbone: efficientnet_lite0, pretrained: true}",
        "data.name=fs_ood", "data.augment=scale_crop_flip",
        "data.scale_range=[0.8, 1.25]", "outliers.mode=two_heads", "outliers.negatives=photos",
        "outliers.paste_prob=0.5", "optim.name=adam", "optim.lr=8e-4", "optim.backbone_lr_mult=0.5",
        "optim.weight_decay=1e-4", "schedule.name=cosine", "schedule.warmup_steps=50", "precision=fp32",
        "channels_last=true",
        "batch_size=16", "eval_batch_size=50", "eval_every_epoch=false", "threads=2",
        f"out_dir={out / 'segmentation_run'}", *size])
    return train(cfg, progress=progress, overwrite=True)


def draw_test_scenes(out: Path, run_dir: Path, n: int = 4) -> list[dict]:
    """Image, ground truth, prediction and outlier heat map of the first FS-OOD test scenes."""
    import numpy as np
    import torch

    from pixelwise.models.outputs import logits_of
    from pixelwise.outliers.scores import outlier_probability, run_outlier_mode
    from pixelwise.tasks import get_task, load_run, run_config
    from pixelwise.viz.heatmaps import heatmap
    from pixelwise.viz.overlays import overlay, palette_for, save_png
    model, config = load_run(run_dir)
    cfg = run_config(config)
    dataset = get_task(cfg.task).dataset(cfg.data, "test")
    palette, mode, rows = palette_for(config["classes"]), run_outlier_mode(config), []
    for i in range(min(n, len(dataset))):
        image, mask, outliers = dataset[i]
        with torch.inference_mode():
            output = model(image[None])
        logits = logits_of(output)
        pred = logits.argmax(1)[0]
        truth = torch.where(outliers == 1, 255, mask)
        panels = [np.asarray(image.expand(3, -1, -1).permute(1, 2, 0).mul(255).round().byte()),
                  overlay(image, truth, palette), overlay(image, pred, palette),
                  heatmap(image, outlier_probability(output, mode)[0])]
        strip = np.concatenate(panels, axis=1)
        zoom = max(1, 256 // strip.shape[0])  # small scenes are enlarged (nearest) so a person can see them
        save_png(strip.repeat(zoom, 0).repeat(zoom, 1), out / "scenes" / f"scene_{i}.png")
        rows.append({"file": f"scenes/scene_{i}.png", "outlier_pixels": int((outliers == 1).sum())})
    return rows


def run_demo(out: str | Path = "demo_report", quick: bool = False, progress: bool = True) -> dict:
    """Run every step and write out/index.html, out/README.md and out/summary.json; returns the summary."""
    import torch

    from pixelwise.files import write_json
    from pixelwise.tasks import evaluate_run
    torch.set_num_threads(2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    _step("classify real photos with the pretrained EfficientNet-Lite0", timings)
    photos, net = classify_photos(out)
    _step("flip a prediction with FGSM", timings)
    fgsm = flip_with_fgsm(out, net["model"], net["classes"], net["images"])
    _step("train SwiftNet (pretrained EfficientNet-Lite0) with an outlier head on FashionScenes", timings)
    run = train_segmenter(out, quick, progress)
    _step("evaluate mIoU and outlier AP on FS-OOD", timings)
    evaluation = evaluate_run(out / "segmentation_run", split="test", out_dir=out / "evaluation", progress=progress)
    scenes = draw_test_scenes(out, out / "segmentation_run")
    seconds = time.perf_counter() - started
    summary = {"photos": photos, "fgsm": fgsm, "training": {k: run[k] for k in ("status", "step", "train_seconds")},
               "evaluation": evaluation["metrics"], "scenes": scenes, "seconds": seconds, "quick": quick,
               "report": str(out / "index.html"), "markdown": str(out / "README.md")}
    write_json(out / "summary.json", summary)
    write_report(out, summary)
    return summary


def _metric_rows(evaluation: dict) -> list[tuple[str, float, float, float]]:
    """(score name, AP, AUROC, FPR95) for each outlier score the evaluation reports."""
    names = [k[:-3] for k in evaluation if k.endswith("_ap")]
    return [(n, evaluation[f"{n}_ap"], evaluation[f"{n}_auroc"], evaluation[f"{n}_fpr95"]) for n in names]


def write_report(out: Path, s: dict) -> None:
    """The report as Markdown (README.md) and HTML (index.html) over the same content."""
    ev = s["evaluation"]
    md = ["# pixelwise demo", "",
          f"Ran in {s['seconds'] / 60:.1f} minutes{' (quick mode)' if s['quick'] else ''}.", "",
          "## 1. Real photos, ImageNet-pretrained EfficientNet-Lite0", "",
          "| photo | shows | top-1 | top-5 |", "| --- | --- | --- | --- |"]
    for p in s["photos"]:
        top = p["top5"]
        md.append(f"| ![]({p['file']}) | {p['shows']} | {top[0]['class']} ({top[0]['probability']:.1%}) | "
                  + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in top[1:]) + " |")
    f = s["fgsm"]
    md += ["", "## 2. An adversarial example (FGSM)", "",
           f"Image, sign of the gradient, adversarial image at eps = {f['eps'] * 255:g}/255 ({f['shown']}):", "",
           f"![FGSM]({f['figure']})", "", "| photo | clean | smallest flipping eps | adversarial |",
           "| --- | --- | --- | --- |"]
    for r in f["per_photo"]:
        eps = f"{r['eps'] * 255:g}/255" if r["eps"] is not None else f"> {FGSM_BUDGETS[-1] * 255:g}/255"
        md.append(f"| {r['photo']} | {r['clean_class']} ({r['clean_confidence']:.1%}) | {eps} | "
                  f"{r['adv_class'] or '-'}" + (f" ({r['adv_confidence']:.1%})" if r["adv_confidence"] else "") + " |")
    md += ["", "## 3. Segmentation with outlier detection (SwiftNet, pretrained EfficientNet-Lite0, FS-OOD)", "",
           f"Trained {s['training']['step']} steps in {s['training']['train_seconds'] / 60:.1f} minutes. "
           f"Inlier mIoU **{ev.get('miou', float('nan')):.4f}**, pixel accuracy {ev.get('pixel_accuracy', float('nan')):.4f}.",
           "", "| outlier score | AP | AUROC | FPR95 |", "| --- | --- | --- | --- |"]
    md += [f"| {n} | {ap:.4f} | {au:.4f} | {fpr:.4f} |" for n, ap, au, fpr in _metric_rows(ev)]
    md += ["", "Precision-recall curves: ![PR](evaluation/precision_recall.png)", "",
           "Test scenes — image, ground truth (outliers black), prediction, outlier probability:", ""]
    md += [f"![scene]({r['file']})" for r in s["scenes"]]
    (out / "README.md").write_text("\n".join(md) + "\n")
    (out / "index.html").write_text(_markdown_to_html("\n".join(md)))


def _markdown_to_html(md: str) -> str:
    """Enough Markdown for this report: headings, paragraphs, tables, images, bold."""
    import re
    body, in_table = [], False

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            tag = "th" if not in_table else "td"
            body.append(("<table>" if not in_table else "") + "<tr>" +
                        "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
            in_table = True
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}"
             "td img{max-width:160px}p img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>pixelwise demo</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")

