"""Files replaced whole: a reader, or a run that resumes after a crash, finds the old file or the new
one, never part of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_file(path: Path, write: Callable[[str], object], durable: bool = False) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then renamed to ``path``. ``durable``: the file
    and then its folder are fsynced, so that the new file also outlives a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def replace_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """``path`` replaced by ``data`` (see replace_file)."""
    replace_file(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
