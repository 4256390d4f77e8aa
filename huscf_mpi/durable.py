"""Writes that survive a crash: fsync a file or folder, and write-then-rename (no h5py, no torch:
clients use it for their checkpoint files, rank 0 for the result file)."""
from __future__ import annotations

import os
from pathlib import Path


def fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to stable storage; best effort (some file systems refuse,
    e.g. cannot open folders; a rename is still atomic there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write) -> int:
    """Call ``write(file)`` on ``<path>.tmp``, fsync it, rename it to ``path`` and fsync the folder;
    returns the file's size in bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync(path.parent)
    return path.stat().st_size
