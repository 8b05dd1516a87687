"""Smoke tests: every experiment's --quick mode runs and writes its table and figures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "memorization": ["memorization.md", "memorization.json", "train_accuracy.png", "test_accuracy.png"],
    "shallow_vs_deep": ["shallow_vs_deep.md", "shallow_vs_deep.json", "accuracy.png"],
    "context": ["context.md", "context.json", "examples.png"],
    "domain_shift": ["domain_shift.md", "domain_shift.json", "miou.png"],
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(CASES))
def test_experiment_quick(name, fake_fmnist, tmp_path):
    out = tmp_path / name
    env = dict(os.environ, PIXELWISE_DATA=str(fake_fmnist), OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--quick", "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in CASES[name]:
        assert (out / f).stat().st_size > 100, f
    rows = json.loads((out / f"{name}.json").read_text())["rows"]
    assert rows and all(isinstance(r, dict) for r in rows)
    assert "|" in r.stdout
