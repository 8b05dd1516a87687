"""The demo's quick mode end to end: every step runs and the report shows what it should."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(400)
def test_demo_quick_writes_report(fake_fmnist, tmp_path):
    out = tmp_path / "report"
    env = dict(os.environ, PIXELWISE_DATA=str(fake_fmnist), OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-m", "pixelwise.cli", "demo", "--quick", "--quiet", "--out", str(out),
                        "--json", str(tmp_path / "demo.json")], env=env, capture_output=True, text=True,
                       timeout=380, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "demo.json").read_text())
    top1 = {p["photo"]: p["top5"][0]["class"] for p in s["photos"]}
    assert top1["chelsea"] in ("tiger cat", "tabby", "Egyptian cat")
    assert top1["coffee"] in ("espresso", "cup", "coffee mug")
    flipped = [f for f in s["fgsm"]["per_photo"] if f["eps"] is not None]
    assert flipped and all(f["adv_class"] != f["clean_class"] for f in flipped)
    assert 0 <= s["evaluation"]["miou"] <= 1 and 0 <= s["evaluation"]["outlier_head_ap"] <= 1
    html = (out / "index.html").read_text()
    for f in ["fgsm.png", "evaluation/precision_recall.png", "scenes/scene_0.png", "photos/chelsea.png"]:
        assert (out / f).stat().st_size > 500, f
        assert f in html
    assert "<table>" in html and top1["chelsea"] in html
