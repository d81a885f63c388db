"""Crash-safe output of a bulk job: whole batches, fsynced, then an atomically replaced checkpoint.

The checkpoint (``OUTPUT.ckpt``, JSON) records how far the input was consumed, how many bytes of the
output and rejects files are complete, the running counts, and a fingerprint of everything that
decides the output bytes (config, KB, input, options). It is written only after the batch it covers
is on disk, so after any crash the files hold at least what the checkpoint says; ``--resume`` cuts
them back to that length and continues from the recorded input position.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError

VERSION = 1
HEAD_BYTES = 1 << 20
FINGERPRINT_PARTS = {
    "config": "the pipeline config",
    "kb": "the knowledge base",
    "input": "the input file",
    "options": "the job options",
}


def checkpoint_path(output: str | Path) -> Path:
    return Path(f"{output}.ckpt")


def input_fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and hash of the first MiB: enough to notice a replaced or edited input."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    return {"bytes": os.path.getsize(path), "head_sha256": hashlib.sha256(head).hexdigest()}


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: unreadable checkpoint ({exc}); rerun with --overwrite to start over") from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise InputError(f"{path}: not a glinker checkpoint of version {VERSION}; rerun with --overwrite to start over")
    return state


def check_fingerprint(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume when anything that decides the output differs, naming what changed."""
    changed = [name for name in FINGERPRINT_PARTS if saved.get(name) != current.get(name)]
    if not changed:
        return
    details = []
    for name in changed:
        if name == "options":
            old, new = saved.get(name) or {}, current[name]
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            details.append("options " + ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys))
        else:
            details.append(FINGERPRINT_PARTS[name])
    raise InputError(
        f"cannot resume from {path}: {'; '.join(details)} changed since the checkpoint was written; "
        "resume with the same config, KB, input and options, or start over with --overwrite"
    )


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` atomically: write a temporary file, fsync it, rename it, fsync the directory."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BatchFile:
    """An output file written in whole batches; a ``.gz`` path gets one gzip member per batch.

    Gzip members are compressed with a fixed timestamp, so the bytes are deterministic and a file
    cut back to a batch boundary is still a valid gzip stream.
    """

    def __init__(self, path: str | Path, keep_bytes: int = 0):
        self.path = Path(path)
        self.compress = self.path.name.endswith(".gz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_bytes:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size < keep_bytes:
                raise InputError(f"{self.path}: {size} bytes, but the checkpoint recorded {keep_bytes}; "
                                 "the file was truncated or replaced; start over with --overwrite")
            self.handle = open(self.path, "r+b")  # noqa: SIM115 - closed in close()
            self.handle.truncate(keep_bytes)
            self.handle.seek(keep_bytes)
        else:
            self.handle = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self.size = keep_bytes

    def write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"".join(lines)
        if self.compress:
            data = gzip.compress(data, compresslevel=6, mtime=0)
        self.handle.write(data)
        self.size += len(data)

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()
