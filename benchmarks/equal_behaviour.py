"""Short runs of every config in configs/ at a fixed seed: weight hashes and metrics, to compare commits.

A refactor that must not change behaviour is checked by running this on the commit before it and on
the commit after it (each in its own checkout, the same machine and threads) and comparing the JSON:
    git worktree add /tmp/before HEAD~N && (cd /tmp/before && PYTHONPATH=. python benchmarks/equal_behaviour.py --out /tmp/before.json)
    python benchmarks/equal_behaviour.py --out /tmp/after.json --compare /tmp/before.json
Each run trains 3 steps on 48 images (64 px scenes for the segmentation configs), evaluates on 8 and
evaluates the run folder again through the `pixelwise eval` API.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]


def weights_digest(path: Path) -> str:
    """sha256 over the tensors of a safetensors file, by sorted key (independent of the file layout)."""
    h = hashlib.sha256()
    for key, tensor in sorted(load_file(str(path)).items()):
        h.update(key.encode())
        h.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def short_overrides(config: Path, out: Path) -> list[str]:
    text = config.read_text()
    scenes = "fashion_scenes" in text or "fs_ood" in text
    return [f"out_dir={out}", "max_steps=3", "data.train_limit=48", "data.test_limit=8", "batch_size=8",
            "eval_batch_size=8", "threads=1", "checkpoint_every=2", "seed=0"] + (
        ["data.canvas_size=64", "data.crop_size=64"] if scenes else [])


def prerequisite_overrides(config: Path, folder: Path, done: dict) -> list[str]:
    """A config whose model starts from another run (model_kwargs.pretrained: runs/NAME, with
    configs/NAME.yaml here, e.g. F2F over its frozen segmenter): that config's short run (made once, in
    `folder`) comes first, and the model_kwargs point at it."""
    import yaml
    kwargs = dict(yaml.safe_load(config.read_text()).get("model_kwargs") or {})
    source = kwargs.get("pretrained")
    needed = ROOT / "configs" / f"{Path(str(source)).name}.yaml"
    if not (isinstance(source, str) and source.startswith("runs/") and needed.is_file()):
        return []
    run_one(needed, folder, done)
    kwargs["pretrained"] = str(folder / needed.stem)
    return [f"model_kwargs={yaml.safe_dump(kwargs, default_flow_style=True).strip()}"]


def run_one(config: Path, folder: Path, done: dict) -> dict:
    """The short run of `config` in folder/<its stem>, made once: `done` keeps each config's result."""
    if config.name in done:
        return done[config.name]
    out = folder / config.stem
    import pixelwise
    from pixelwise.config import load_config
    if (Path(pixelwise.__file__).parent / "tasks").is_dir():   # after the tasks refactor
        from pixelwise.tasks import evaluate_run, load_task_config as load, train
    else:
        from pixelwise.engine.train import train
        from pixelwise.predict import evaluate_run
        load = load_config
    cfg = load(config, short_overrides(config, out) + prerequisite_overrides(config, folder, done))
    summary = train(cfg, progress=False)
    evaluated = evaluate_run(out, progress=False, limit=8)["metrics"]
    keep = {k: v for k, v in evaluated.items() if isinstance(v, (int, float)) and k not in ("n",)}
    done[config.name] = {"weights": weights_digest(out / "model.safetensors"), "step": summary["step"],
                         "test": {k: v for k, v in summary["test"].items() if isinstance(v, (int, float))},
                         "eval": keep}
    return done[config.name]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--compare", default=None, help="JSON of another commit: report every difference")
    p.add_argument("--configs", nargs="*", default=None, help="config files (default: configs/*.yaml)")
    args = p.parse_args()
    torch.set_num_threads(1)
    configs = [Path(c) for c in args.configs] if args.configs else sorted((ROOT / "configs").glob("*.yaml"))
    results, done = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            results[config.name] = run_one(config, Path(tmp), done)
            print(config.name, results[config.name]["weights"][:16], results[config.name]["test"], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        diffs = [name for name in results if results[name] != before.get(name)]
        for name in diffs:
            print(f"DIFFERENT {name}:\n  before {before.get(name)}\n  after  {results[name]}")
        print(f"{len(results) - len(diffs)} of {len(results)} configs bit-identical (weights and metrics)")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
