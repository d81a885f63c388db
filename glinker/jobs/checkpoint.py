"""Crash-safe output of a bulk job: whole batches, fsynced, then an atomically replaced checkpoint.

The checkpoint (``OUTPUT.ckpt``, JSON) records how far the input was consumed, how many bytes of the
output and rejects files are complete, the running counts, and a fingerprint of everything that
decides the output bytes (config, KB, input, options). It is written only after the batch it covers
is on disk, so after any crash the files hold at least what the checkpoint says; ``--resume`` cuts
them back to that length and continues from the recorded input position.

A checkpoint is trusted only after it is checked: its own SHA-256 (``checksum``), its schema, and
its positions against the real files (the output and rejects at least that long and cut at a line
boundary, the input position at the end of a line; see ``runner.open_at``). Anything else is one
:class:`~glinker.errors.InputError` naming the checkpoint and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from ..atomic import replace_bytes
from ..errors import InputError

VERSION = 2
HEAD_BYTES = 1 << 20
COUNTS = ("docs", "mentions", "linked", "rejected")
POSITIONS = ("input_line", "input_offset", "output_bytes", "rejects_bytes")
GZIP_MAGIC = b"\x1f\x8b"
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


def checkpoint_error(path: Path, reason: str) -> InputError:
    return InputError(f"{path}: {reason}; the checkpoint or its output was edited, damaged or replaced, "
                      "so the job cannot resume from it; rerun with --overwrite to start over")


def checksum(state: dict[str, Any]) -> str:
    """SHA-256 of the state's canonical JSON, without its own ``checksum`` key."""
    body = {k: v for k, v in state.items() if k != "checksum"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, checked for its version, its checksum and its schema."""
    try:
        state = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise checkpoint_error(path, f"not JSON ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the checkpoint: {exc.strerror}") from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise InputError(f"{path}: not a glinker checkpoint of version {VERSION}; rerun with --overwrite to start over")
    if state.get("checksum") != checksum(state):
        raise checkpoint_error(path, "its checksum does not match its content")
    problem = schema_problem(state)
    if problem:
        raise checkpoint_error(path, problem)
    return state


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")


def schema_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's keys, types and the ranges they imply (None if nothing)."""
    for key in POSITIONS:
        if not _count(state.get(key)):
            return f"{key!r} must be an integer of 0 or more, got {state.get(key)!r}"
    counts, fingerprint, seconds = state.get("counts"), state.get("fingerprint"), state.get("layer_seconds")
    if not isinstance(counts, dict) or set(counts) != set(COUNTS) or not all(map(_count, counts.values())):
        return f"'counts' must map {', '.join(COUNTS)} to integers of 0 or more, got {counts!r}"
    if not isinstance(fingerprint, dict) or not set(FINGERPRINT_PARTS) <= set(fingerprint):
        return f"'fingerprint' must be an object with keys {', '.join(FINGERPRINT_PARTS)}, got {fingerprint!r}"
    if not isinstance(seconds, dict) or not all(map(_seconds, seconds.values())):
        return f"'layer_seconds' must map node ids to seconds, got {seconds!r}"
    if not isinstance(state.get("done"), bool):
        return f"'done' must be true or false, got {state.get('done')!r}"
    if counts["docs"] + counts["rejected"] > state["input_line"] or state["input_line"] > state["input_offset"]:
        return (f"{counts['docs']} documents and {counts['rejected']} rejected lines do not fit in input line "
                f"{state['input_line']} at byte {state['input_offset']}")
    if counts["linked"] > counts["mentions"]:
        return f"{counts['linked']} linked mentions out of {counts['mentions']}"
    if (counts["docs"] > 0) != (state["output_bytes"] > 0):
        return f"{counts['docs']} documents but {state['output_bytes']} output bytes"
    if state["rejects_bytes"] and not counts["rejected"]:
        return f"no rejected lines but {state['rejects_bytes']} rejects bytes"
    return None


def check_output(path: Path, output: Path | None, key: str, state: dict[str, Any]) -> None:
    """``output`` holds at least the ``state[key]`` bytes the checkpoint records, ending at a line boundary."""
    size = state[key]
    if output is None:
        if size:
            raise checkpoint_error(path, f"{key!r} is {size}, but the job writes no such file")
        return
    actual = output.stat().st_size if output.is_file() else 0
    if actual < size:
        raise checkpoint_error(path, f"{output} has {actual} bytes, but {key!r} says {size}")
    if size == 0:
        return
    with open(output, "rb") as handle:
        handle.seek(size - 1)
        around = handle.read(3)
    # gzip: a member (one batch) starts right after, or nothing, or the start of a torn member
    whole = GZIP_MAGIC.startswith(around[1:]) if output.name.endswith(".gz") else around[:1] == b"\n"
    if not whole:
        raise checkpoint_error(path, f"{key!r} {size} is not the end of a whole line of {output}")


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
    """Replace ``path`` atomically and durably (fsynced, see glinker.atomic)."""
    signed = {**state, "checksum": checksum(state)}
    replace_bytes(path, orjson.dumps(signed, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS), durable=True)


class BatchFile:
    """An output file written in whole batches; a ``.gz`` path gets one gzip member per batch.

    Gzip members are compressed with a fixed timestamp, so the bytes are deterministic and a file
    cut back to a batch boundary is still a valid gzip stream.
    """

    def __init__(self, path: str | Path, keep_bytes: int = 0):
        self.path = Path(path)
        self.compress = self.path.name.endswith(".gz")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_bytes:  # checked against the file by check_output
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
