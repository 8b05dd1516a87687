"""Files written whole or not at all: every layer writes its JSON and checkpoints through these."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pixelwise.errors import PixelwiseError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> None:
    """Call `write(tmp_path)`, fsync, then rename over `path`: a crash leaves the old file whole.

    The file gets the permissions a plain open() would give it (0666 less the umask), not the 0600 of
    temporary files, so run folders shared with others stay readable."""
    path = Path(path)
    if path.is_dir():
        raise PixelwiseError(f"{path}: is a folder; give the path of a file to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise PixelwiseError(f"{path.parent}: is a file, not a folder to write {path.name} into")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def append_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Append one JSON object per line to `path` and flush it to disk (a training log survives a crash)."""
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Replace `path` by one JSON object per line, atomically (see atomic_write)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r, default=str) + "\n" for r in rows)))


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSON-lines file; a last line cut off by a crash is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
