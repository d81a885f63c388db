"""One writer per output: an exclusive lock on a sidecar file ``PATH.lock`` holding the owner's pid.

``glinker link`` holds it on its output (which covers the checkpoint beside it), ``glinker kb build``
on its kb_dir, ``glinker train`` on its output folder. A second job on the same path fails at once
with :class:`LockedError` naming the pid that holds it. The lock is ``fcntl.flock``: the kernel
drops it when the holder exits, however it exits, so a killed job never blocks the next one. The
lock file is removed when the lock is released (a stale one left by a killed job is reused).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError


class LockedError(InputError):
    """Another process holds the lock on an output."""


def lock_path(path: str | Path) -> Path:
    """``PATH.lock`` beside ``path`` (``kb_dir/`` gives ``kb_dir.lock``, not a file inside it)."""
    path = Path(path)
    return path.with_name(f"{path.name}.lock")


@contextmanager
def exclusive(path: str | Path, what: str = "a glinker job") -> Iterator[Path]:
    """Hold the lock on ``path`` (a file or folder, existing or not) for the ``with`` block.

    ``what`` names this job (e.g. ``"glinker link"``) in the error another process gets. Raises
    :class:`LockedError` at once if another process holds the lock, :class:`InputError` if the lock
    file cannot be created (a missing or read-only folder). Yields the lock file's path.
    """
    lock = lock_path(path)
    fd = _acquire(path, lock)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # still locked: a process waiting on this file retries on a new one
        os.close(fd)


def _acquire(path: str | Path, lock: Path) -> int:
    """A descriptor of ``lock``, exclusively locked, whose file is still the one at that path."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create the lock file {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
            os.close(fd)
            pid, _, what = holder.partition(" ")
            owner = f"{what or 'another job'} (pid {pid})" if pid.isdigit() else "another job"
            raise LockedError(f"{path} is in use by {owner}, which holds {lock}; wait for it to finish "
                              "or stop it") from None
        if _same_file(fd, lock):
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: try the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
