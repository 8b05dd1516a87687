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


def prerequisite_overrides(config: Path, out: Path) -> list[str]:
    """A config whose model starts from another run (model_kwargs.pretrained: runs/NAME, with
    configs/NAME.yaml here, e.g. F2F over its frozen segmenter): that config's short run is trained first,
    beside `out`, and the model_kwargs point at it."""
    import yaml
    kwargs = dict(yaml.safe_load(config.read_text()).get("model_kwargs") or {})
    source = kwargs.get("pretrained")
    if not (isinstance(source, str) and source.startswith("runs/")
            and (ROOT / "configs" / f"{Path(source).name}.yaml").is_file()):
        return []
    first = out.parent / f"{out.name}_needs_{Path(source).name}"
    run_one(ROOT / "configs" / f"{Path(source).name}.yaml", first)
    kwargs["pretrained"] = str(first)
    return [f"model_kwargs={yaml.safe_dump(kwargs, default_flow_style=True).strip()}"]


def run_one(config: Path, out: Path) -> dict:
    import pixelwise
    from pixelwise.config import load_config
    if (Path(pixelwise.__file__).parent / "tasks").is_dir():   # after the tasks refactor
        from pixelwise.tasks import evaluate_run, load_task_config as load, train
    else:
        from pixelwise.engine.train import train
        from pixelwise.predict import evaluate_run
        load = load_config
    cfg = load(config, short_overrides(config, out) + prerequisite_overrides(config, out))
    summary = train(cfg, progress=False)
    evaluated = evaluate_run(out, progress=False, limit=8)["metrics"]
    keep = {k: v for k, v in evaluated.items() if isinstance(v, (int, float)) and k not in ("n",)}
    return {"weights": weights_digest(out / "model.safetensors"), "step": summary["step"],
            "test": {k: v for k, v in summary["test"].items() if isinstance(v, (int, float))},
            "eval": keep}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--compare", default=None, help="JSON of another commit: report every difference")
    p.add_argument("--configs", nargs="*", default=None, help="config files (default: configs/*.yaml)")
    args = p.parse_args()
    torch.set_num_threads(1)
    configs = [Path(c) for c in args.configs] if args.configs else sorted((ROOT / "configs").glob("*.yaml"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            results[config.name] = run_one(config, Path(tmp) / config.stem)
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
