"""No module imports from a layer above its own (DESIGN.md): commands > tasks > engine/attacks/bench >
models/data/metrics/viz > utilities. Every import counts, also those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pixelwise

PACKAGE = Path(pixelwise.__file__).parent
LAYERS = {
    "errors": 0, "files": 0, "config": 0, "labels": 0,
    "models": 1, "data": 1, "metrics": 1, "viz": 1, "__init__": 1,
    "engine": 2, "attacks": 2, "bench": 2, "outliers": 2, "tracking": 2,
    "tasks": 3,
    "demo": 4,
    "cli": 5,
}


def part_of(module: str) -> str:
    """'pixelwise.engine.train' -> 'engine'; 'pixelwise' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported pixelwise module) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "pixelwise":
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pixelwise"]
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        here = part_of(module)
        if here not in LAYERS:
            bad.append(f"{path}: package part {here!r} has no layer in tests/test_layers.py")
            continue
        for line, target in imports(path):
            there = part_of(target)
            if there not in LAYERS:
                bad.append(f"{path}:{line} imports {target}, which has no layer")
            elif LAYERS[there] > LAYERS[here] or (there == "cli" and here != "cli"):
                bad.append(f"{path}:{line}: {here} (layer {LAYERS[here]}) imports {target} (layer {LAYERS[there]})")
    return bad


def test_no_module_imports_from_a_layer_above():
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    (tmp_path / "pixelwise" / "models").mkdir(parents=True)
    (tmp_path / "pixelwise" / "models" / "x.py").write_text("def f():\n    from pixelwise.tasks import train\n")
    (tmp_path / "pixelwise" / "engine").mkdir()
    (tmp_path / "pixelwise" / "engine" / "y.py").write_text("from pixelwise.cli import main\n")
    found = violations(tmp_path / "pixelwise")
    assert len(found) == 2, found
    assert "engine (layer 2) imports pixelwise.cli" in found[0] and "models (layer 1) imports pixelwise.tasks" in found[1]


@pytest.mark.parametrize("part", sorted({p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}))
def test_every_package_part_has_a_layer(part):
    assert part in LAYERS, f"pixelwise.{part}: add it to LAYERS in tests/test_layers.py (DESIGN.md's order)"
