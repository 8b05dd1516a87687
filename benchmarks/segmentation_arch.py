"""Segmentation architectures, measured: parameters and FLOPs at 1024x2048 next to the SwiftNet paper,
and peak training memory with and without gradient checkpointing.

    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation_arch.py          # full
    flock /tmp/pixelwise-bench.lock .venv/bin/python benchmarks/segmentation_arch.py --quick  # smoke run

FLOPs come from torch.utils.flop_counter.FlopCounterMode on the meta device (shapes only, no compute);
it counts a multiply-add as 2 FLOPs (convolutions and matrix products only; BN, ReLU, pooling and
interpolation are not counted), so GMACs = GFLOPs / 2. Orsic et al. (CVPR 2019, Table 1) report
SwiftNet-RN18 at 104.0 "GFLOPs", which matches our multiply-add count: the paper's unit is GMACs.

Peak training memory is one forward + backward pass (cross-entropy, train mode) in a fresh process per
setting: torch.cuda.max_memory_allocated where CUDA exists, else the growth of the process's peak
resident set size (resource.getrusage ru_maxrss) over its value just before the step, with glibc's
mmap threshold fixed so that freed tensors leave the resident set at once.
Writes results/segmentation_arch.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pixelwise.models import create_model  # noqa: E402
from pixelwise.models.checkpointing import set_grad_checkpointing  # noqa: E402

# Orsic et al., CVPR 2019, Table 1 (Cityscapes, 1024x2048): parameters, "GFLOPs" = multiply-adds.
PAPER = {"swiftnet_rn18": (11.8e6, 104.0e9)}
ARCH_MODELS = ["swiftnet_rn18", "swiftnet_pyramid_rn18", "ldn121"]
MEMORY_MODELS = ["swiftnet_rn18", "ldn121"]


def count(name: str, size: tuple[int, int], num_classes: int = 19) -> dict:
    """Parameters and FLOPs of `name` on one image of `size` (H, W), eval mode, shapes only."""
    model = create_model(name, num_classes=num_classes).eval()
    params = sum(p.numel() for p in model.parameters())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    model = model.to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, *size, device="meta"))
    flops = counter.get_total_flops()
    row = {"model": name, "input": f"1x3x{size[0]}x{size[1]}", "classes": num_classes, "params": params,
           "backbone_params": backbone, "gflops": flops / 1e9, "gmacs": flops / 2e9}
    if name in PAPER:
        p, macs = PAPER[name]
        row.update(paper_params=p, paper_gmacs=macs / 1e9, params_dev=params / p - 1,
                   gmacs_dev=flops / 2 / macs - 1)
    return row


def measure_step(name: str, checkpointing: bool, batch: int, size: tuple[int, int]) -> dict:
    """One training step in this process: peak memory growth (MiB) and wall time (s)."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = create_model(name, num_classes=19).to(device).train()
    set_grad_checkpointing(model, checkpointing)
    x = torch.rand(batch, 3, *size, device=device)
    y = torch.randint(0, 19, (batch, *size), device=device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    F.cross_entropy(model(x), y).backward()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"model": name, "checkpointing": checkpointing, "input": f"{batch}x3x{size[0]}x{size[1]}",
            "peak_mib": (peak - base) / 2**20, "step_s": time.perf_counter() - start,
            "method": "cuda max_memory_allocated" if cuda else "ru_maxrss growth"}


def measure_in_subprocess(name: str, checkpointing: bool, batch: int, size: tuple[int, int]) -> dict:
    # A fresh process, so that one setting's peak cannot hide another's.
    cmd = [sys.executable, __file__, "--measure", name, str(int(checkpointing)), str(batch), *map(str, size)]
    # A fixed mmap threshold makes glibc return every large freed block to the system at once (the
    # default threshold adapts upwards and keeps freed blocks mapped), so resident size tracks live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_tables(arch: list[dict], memory: list[dict], out: Path, quick: bool) -> str:
    lines = ["Parameters and FLOPs, eval mode, 19 classes, 1x3x1024x2048 "
             "(FlopCounterMode: 1 multiply-add = 2 FLOPs; the paper's GFLOPs are multiply-adds).", "",
             "| model | params (M) | paper params (M) | GFLOPs (2/MAC) | GMACs | paper GMACs "
             "| dev. params | dev. MACs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in arch:
        paper = "paper_params" in r
        cells = [r["model"], f"{r['params'] / 1e6:.2f}", f"{r['paper_params'] / 1e6:.1f}" if paper else "–",
                 f"{r['gflops']:.1f}", f"{r['gmacs']:.1f}", f"{r['paper_gmacs']:.1f}" if paper else "–",
                 f"{r['params_dev']:+.2%}" if paper else "–", f"{r['gmacs_dev']:+.2%}" if paper else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Peak training memory, one forward + backward, {memory[0]['method']}, 2 CPU threads"
              + (" (quick)" if quick else "") + ".", "",
              "| model | input | checkpointing | peak (MiB) | ratio to plain | step (s) | time ratio |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    plain = {r["model"]: r for r in memory if not r["checkpointing"]}
    for r in memory:
        p = plain[r["model"]]
        lines.append(f"| {r['model']} | {r['input']} | {'on' if r['checkpointing'] else 'off'} | "
                     f"{r['peak_mib']:.0f} | {r['peak_mib'] / p['peak_mib']:.2f} | {r['step_s']:.1f} | "
                     f"{r['step_s'] / p['step_s']:.2f} |")
    table = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation_arch.md").write_text("# Segmentation architectures\n\n" + table)
    (out / "segmentation_arch.json").write_text(json.dumps(
        {"quick": quick, "torch": torch.__version__, "threads": 2,
         "flop_counter": "FlopCounterMode, multiply-add = 2 FLOPs", "architecture": arch, "memory": memory},
        indent=2) + "\n")
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small memory-benchmark inputs (smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--measure", nargs=5, metavar=("MODEL", "CKPT", "N", "H", "W"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        name, ckpt, n, h, w = args.measure
        print(json.dumps(measure_step(name, bool(int(ckpt)), int(n), (int(h), int(w)))))
        return
    torch.set_num_threads(2)
    arch = [count(name, (1024, 2048)) for name in tqdm(ARCH_MODELS, desc="params/FLOPs")]
    batch, size = (1, (256, 512)) if args.quick else (2, (512, 1024))
    settings = [(m, c) for m in MEMORY_MODELS for c in (False, True)]
    memory = [measure_in_subprocess(m, c, batch, size) for m, c in tqdm(settings, desc="memory")]
    print(write_tables(arch, memory, args.out, args.quick))


if __name__ == "__main__":
    main()
