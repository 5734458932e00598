"""Crash-safe output files: whole-file writes through a temp file + ``os.replace``, whole-line JSONL appends,
new time-stamped run folders and atomically replaced symlinks.

A run killed at any moment leaves either the old or the new version of a results file (never half of one)
and a metrics JSONL whose lines are all complete; :func:`trim_jsonl` cleans one up before a resumed run
appends to it again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically: a temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``json.dumps(obj)`` written atomically (see :func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` + newline with one ``O_APPEND`` write, so readers and crashes never see half a line."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it in one go; the loop only guards against a short write
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def trim_jsonl(path: str | Path, keep: Callable[[dict], bool]) -> int:
    """Rewrite a JSONL file (atomically) without the records ``keep`` rejects and without broken lines.

    A line that is not a complete JSON object (e.g. the tail of a run killed mid-write) is dropped too.
    Returns the number of lines dropped; a missing file is left missing (0).
    """
    path = Path(path)
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            ok = line.endswith("\n") and isinstance(record, dict) and keep(record)
        except json.JSONDecodeError:
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(kept))
    return dropped


def new_run_dir(root: Path) -> Path:
    """``root/<YYYYmmdd-HHMMSS>`` (with a suffix if that exists already), created."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def link_latest(target: Path, link: Path) -> Path:
    """Point ``link`` at ``target`` (atomically, made where ``link``'s folder does not exist yet): e.g. the warm
    start just used, so commands can name it without its hash."""
    link.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone uses a shipped warm start: no cache yet
    tmp = link.with_name(link.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link
