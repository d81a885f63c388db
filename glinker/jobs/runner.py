"""``glinker link``, local engine: stream the input in batches through one pipeline, crash-safe.

Memory holds one batch at a time; the KB of a kb_dir is memory-mapped. Each batch's output lines
(and rejects) are appended and fsynced, then the checkpoint is replaced (see :mod:`.checkpoint`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError
from ..locks import exclusive
from ..models.quantize import native_bfloat16
from .checkpoint import (
    COUNTS,
    VERSION,
    BatchFile,
    check_fingerprint,
    check_output,
    checkpoint_error,
    checkpoint_path,
    input_fingerprint,
    read_checkpoint,
    write_checkpoint,
)
from .pipeline import Linker, kb_fingerprint, load_pipeline, sha256_json
from .reader import Batch, InputOptions, check_options, iter_batches, iter_items, open_input

STDIO = "-"  # --input - reads stdin, --output - writes stdout


def is_stdio(path: str | Path | None) -> bool:
    return path is not None and str(path) == STDIO


@dataclass
class LinkJob:
    """Everything ``glinker link`` was asked to do."""

    config: str | Path
    kb: str | Path
    input: str | Path
    output: str | Path
    reader: InputOptions = field(default_factory=InputOptions)
    batch_size: int = 64
    rejects: str | Path | None = None
    limit: int | None = None
    candidates: int = 0
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def check(self) -> None:
        check_options(self.reader)
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.candidates < 0:
            raise InputError(f"--candidates must be 0 or more, got {self.candidates}")
        if self.limit is not None and self.limit < 0:
            raise InputError(f"--limit must be 0 or more, got {self.limit}")
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other")
        if self.resume and self.streams:
            raise InputError("--resume needs files for --input and --output: a job on stdin or stdout has no "
                             "checkpoint")
        self.check_paths()

    @property
    def streams(self) -> bool:
        """Reads stdin or writes stdout (``-``): streamed, without a checkpoint."""
        return is_stdio(self.input) or is_stdio(self.output)

    def check_paths(self) -> None:
        """The input is a file; the output and rejects are files (existing or not) in existing folders."""
        if is_stdio(self.rejects):
            raise InputError("--rejects must be a file, not -")
        if not is_stdio(self.input) and not Path(self.input).is_file():
            raise InputError(f"--input {self.input}: not found or not a file")
        named = [(option, Path(path)) for option, path in (("--output", self.output), ("--rejects", self.rejects))
                 if path is not None and not is_stdio(path)]
        for option, path in named:
            if path.is_dir():
                raise InputError(f"{option} {path} is a folder; give a file name")
            if not path.parent.is_dir():
                raise InputError(f"{option} {path}: the folder {path.parent} does not exist")
        paths = [path.resolve() for _, path in [("--input", Path(self.input)), *named] if not is_stdio(path)]
        if len(set(paths)) != len(paths):
            raise InputError("--input, --output and --rejects must be different files")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the output's lock (it covers the checkpoint) and the rejects file's for the whole run."""
        with ExitStack() as stack:
            for path in (self.output, self.rejects):
                if path is not None and not is_stdio(path):
                    stack.enter_context(exclusive(path, what="glinker link"))
            yield

    def fingerprint(self) -> dict[str, Any]:
        """What decides the output bytes; a resumed job must match it exactly."""
        pipeline = load_pipeline(self.config, self.device).to_dict()
        options = {
            "format": self.reader.format, "text_field": self.reader.text_field, "id_field": self.reader.id_field,
            "batch_size": self.batch_size, "candidates": self.candidates,
            "max_text_chars": self.reader.max_text_chars,
            "rejects": None if self.rejects is None else str(self.rejects),
        }
        if any(node.get("config", {}).get("quantize") == "int8" for node in pipeline["nodes"]):
            # the layers int8 keeps out run in bfloat16 on some CPUs only: another CPU, other bytes
            options["int8_bfloat16"] = native_bfloat16()
        return {"config": sha256_json(pipeline), "kb": kb_fingerprint(self.kb),
                "input": input_fingerprint(self.input), "options": options}


def fresh_state(fingerprint: dict[str, Any]) -> dict[str, Any]:
    return {"version": VERSION, "fingerprint": fingerprint, "input_line": 0, "input_offset": 0, "output_bytes": 0,
            "rejects_bytes": 0, "counts": dict.fromkeys(COUNTS, 0), "layer_seconds": {}, "done": False}


def prepare_state(job: LinkJob) -> dict[str, Any]:
    """The state to start from: fresh, or the checkpoint of an interrupted run (checked against the job)."""
    fingerprint = job.fingerprint()
    ckpt = checkpoint_path(job.output)
    existing = [p for p in (Path(job.output), ckpt, job.rejects and Path(job.rejects)) if p and p.exists()]
    if job.resume and ckpt.exists():
        state = read_checkpoint(ckpt)
        check_fingerprint(ckpt, state["fingerprint"], fingerprint)
        check_output(ckpt, Path(job.output), "output_bytes", state)
        check_output(ckpt, job.rejects and Path(job.rejects), "rejects_bytes", state)
        return state
    if job.resume and Path(job.output).exists():
        raise InputError(f"cannot resume: {job.output} exists but has no checkpoint {ckpt}; "
                         "rerun with --overwrite to start over")
    if existing and not job.overwrite:
        raise InputError(f"{existing[0]} already exists; pass --resume to continue an interrupted job "
                         "or --overwrite to start over")
    return fresh_state(fingerprint)


def open_at(job: LinkJob, state: dict[str, Any]) -> tuple[BinaryIO, BinaryIO]:
    """The input positioned at ``state["input_offset"]``, which must end a line (or the file).

    For a finished job, the rest of the input must hold no document (blank JSONL lines only).
    """
    ckpt, offset = checkpoint_path(job.output), state["input_offset"]
    stream, raw = open_input(job.input)
    try:
        if offset:
            stream.seek(offset - 1)
            last = stream.read(1)
            if not last:
                raise checkpoint_error(ckpt, f"'input_offset' {offset} is past the end of {job.input}")
            if last != b"\n" and stream.peek(1)[:1]:
                raise checkpoint_error(ckpt, f"'input_offset' {offset} is not the end of a line of {job.input}")
        if state["done"] and any(item is not None for item, _, _ in iter_items(stream, job.reader, state["input_line"], offset)):
            raise checkpoint_error(ckpt, f"'done' is true, but {job.input} goes on after line {state['input_line']}")
    except BaseException:
        stream.close()
        raw.close()
        raise
    return stream, raw


class Progress:
    """tqdm over input bytes (so the ETA is known; not for stdin), with docs/s and mentions/s."""

    def __init__(self, total: int | None, initial: int, enabled: bool):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                        disable=not enabled, mininterval=0.5 if tty else 30, dynamic_ncols=True, desc="linking")
        self.started = time.perf_counter()

    def update(self, position: int, docs: int, mentions: int) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"docs={docs} {docs / elapsed:.1f} docs/s {mentions / elapsed:.1f} mentions/s",
                                 refresh=False)
        self.bar.update(position - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def iter_job_batches(job: LinkJob, stream, start_line: int, start_offset: int, limit: int | None) -> Iterator[Batch]:
    return iter_batches(stream, job.reader, job.batch_size, start_line, start_offset, limit)


def add_layer_seconds(total: dict[str, float], timings: dict[str, float]) -> None:
    for node, seconds in timings.items():
        total[node] = total.get(node, 0.0) + seconds


def add_batch(state: dict[str, Any], batch: Batch, mentions: int, linked: int, timings: dict[str, float]) -> None:
    counts = state["counts"]
    counts["docs"] += len(batch.items) - len(batch.rejects)
    counts["rejected"] += len(batch.rejects)
    counts["mentions"] += mentions
    counts["linked"] += linked
    add_layer_seconds(state["layer_seconds"], timings)
    state["input_line"], state["input_offset"] = batch.end_line, batch.end_offset


def finished(job: LinkJob, state: dict[str, Any]) -> bool:
    """True unless the job stopped at ``--limit`` (a later run may then go on)."""
    return job.limit is None or state["counts"]["docs"] + state["counts"]["rejected"] < job.limit


def summary(job: LinkJob, state: dict[str, Any], started: float, before: dict[str, Any],
            load_seconds: float | None = None) -> dict[str, Any]:
    """Counts (and ``layer_seconds``) over the whole output, the job's total; ``this_run`` the counts this
    run added; ``seconds`` (and ``load_seconds``, the pipeline load) this run's. ``before`` is the state
    this run started from."""
    seconds = time.perf_counter() - started
    counts = state["counts"]
    return {
        "output": str(job.output), **counts, "input_lines": state["input_line"],
        "resumed_from_line": before["input_line"],
        "this_run": {key: counts[key] - before["counts"][key] for key in COUNTS},
        "seconds": round(seconds, 3), "load_seconds": None if load_seconds is None else round(load_seconds, 3),
        "layer_seconds": {k: round(v, 3) for k, v in state["layer_seconds"].items()},
        "done": state["done"],
    }


def started_from(state: dict[str, Any]) -> dict[str, Any]:
    """What ``summary`` needs of the state a run starts from."""
    return {"input_line": state["input_line"], "counts": dict(state["counts"])}


def run_local(job: LinkJob) -> dict[str, Any]:
    """Run (or resume) ``job`` in this process, holding its output's lock; returns the summary."""
    started = time.perf_counter()
    job.check()
    with job.locked():
        if job.streams:
            return link_stream(job, started)
        state = prepare_state(job)
        stream, raw = open_at(job, state)
        try:
            if state["done"]:
                return summary(job, state, started, started_from(state))
            ckpt = checkpoint_path(job.output)
            return link_rest(job, state, stream, raw, started, save=lambda s: write_checkpoint(ckpt, s))
        finally:
            stream.close()
            raw.close()


def link_stream(job: LinkJob, started: float) -> dict[str, Any]:
    """A job on stdin or stdout: no checkpoint; an existing output or rejects file needs --overwrite."""
    existing = [p for p in (job.output, job.rejects) if p is not None and not is_stdio(p) and Path(p).exists()]
    if existing and not job.overwrite:
        raise InputError(f"{existing[0]} already exists; pass --overwrite to replace it")
    if not is_stdio(job.input):
        stream, raw = open_input(job.input)
        with stream, raw:
            return link_rest(job, fresh_state({}), stream, raw, started, save=lambda state: None)
    return link_rest(job, fresh_state({}), sys.stdin.buffer, sys.stdin.buffer, started, save=lambda state: None)


class StdoutFile:
    """Standard output as the output of a job: whole batches, flushed after each."""

    size = 0

    def write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        sys.stdout.buffer.write(data)
        self.size += len(data)

    def sync(self) -> None:
        sys.stdout.buffer.flush()

    def close(self) -> None:
        self.sync()


def link_rest(job: LinkJob, state: dict[str, Any], stream: BinaryIO, raw: BinaryIO, started: float,
              save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Link the input from where ``stream`` stands, batch by batch, ``save``-ing the state after each."""
    before = started_from(state)
    loading = time.perf_counter()
    linker = Linker(job.config, job.kb, device=job.device, candidates=job.candidates,
                    max_text_chars=job.reader.max_text_chars)
    load_seconds = time.perf_counter() - loading
    save(state)
    out = StdoutFile() if is_stdio(job.output) else BatchFile(job.output, state["output_bytes"])
    rejects = BatchFile(job.rejects, state["rejects_bytes"]) if job.rejects else None
    try:
        counts = state["counts"]
        limit = None if job.limit is None else max(job.limit - counts["docs"] - counts["rejected"], 0)
        seekable = raw.seekable()
        progress = Progress(os.fstat(raw.fileno()).st_size if seekable else None, raw.tell() if seekable else 0,
                            job.progress)
        for batch in iter_job_batches(job, stream, state["input_line"], state["input_offset"], limit):
            docs = batch.docs
            result = linker.link([d.id for d in docs], [d.text for d in docs])
            out.write(result.lines)
            out.sync()
            if rejects is not None:
                rejects.write([r.to_json() for r in batch.rejects])
                rejects.sync()
            add_batch(state, batch, result.mentions, result.linked, result.timings)
            state["output_bytes"] = out.size
            state["rejects_bytes"] = rejects.size if rejects is not None else 0
            save(state)
            progress.update(raw.tell() if seekable else batch.end_offset,
                            counts["docs"] - before["counts"]["docs"], counts["mentions"] - before["counts"]["mentions"])
        progress.close()
    finally:
        out.close()
        if rejects is not None:
            rejects.close()
    state["done"] = finished(job, state)
    save(state)
    return summary(job, state, started, before, load_seconds)
