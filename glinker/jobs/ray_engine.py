"""``glinker link --engine ray``: the same job on a Ray cluster (``pip install -e ".[ray]"``).

The input is read as a Ray Dataset whose rows are *shards*: runs of whole batches, cut exactly where
the local engine cuts its batches. A pool of actors (each loads the pipeline and memory-maps the
KB once) links a shard batch by batch and writes ``OUTPUT.shards/part-NNNNNN.jsonl`` (plus its
rejects and a small ``.json`` of counts, written last). The driver then concatenates the parts in
input order into OUTPUT, so the bytes equal those of the local engine. With ``--resume``, shards
already finished by an interrupted run are kept and not linked again.

On a cluster, the config, the KB and the input must be readable, and OUTPUT's directory writable,
at the same paths on every node (a shared filesystem).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import ray

from ..atomic import replace_bytes, replace_file
from ..errors import InputError
from ..models.batching import WORKERS_ENV
from .checkpoint import COUNTS, BatchFile, checkpoint_path, write_checkpoint
from .pipeline import Linker
from .reader import open_input
from .runner import (
    LinkJob,
    add_layer_seconds,
    finished,
    fresh_state,
    iter_job_batches,
    open_at,
    prepare_state,
    started_from,
    summary,
)

# passed on to the actors, when set here
ACTOR_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "HF_HOME", WORKERS_ENV)


def shard_dir(output: str | Path) -> Path:
    return Path(f"{output}.shards")


def part_path(directory: Path, block: int, suffix: str) -> Path:
    return directory / f"part-{block:06d}{suffix}"


class ShardSource(ray.data.Datasource):
    """The input as rows ``{block, final, end_line, end_offset, batches}``, one row per shard.

    ``batches`` is the JSON of the shard's batches, each ``{"docs": [[id, text]...], "rejects": [...]}``;
    one read task streams the file, so line numbers and batch boundaries are those of the local engine.
    """

    def __init__(self, job: LinkJob, batches_per_shard: int):
        super().__init__()
        self.job = job
        self.batches_per_shard = batches_per_shard

    def estimate_inmemory_data_size(self) -> int:
        return os.path.getsize(self.job.input)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        from ray.data.block import BlockMetadata
        from ray.data.datasource import ReadTask

        meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=[str(self.job.input)])
        return [ReadTask(self._read, meta)]

    def _read(self):
        stream, raw = open_input(self.job.input)
        try:
            shard: list[dict[str, Any]] = []
            block = 0
            batches = iter_job_batches(self.job, stream, 0, 0, self.job.limit)
            batch = next(batches, None)
            while batch is not None:
                shard.append({"docs": [[d.id, d.text] for d in batch.docs],
                              "rejects": [orjson.loads(r.to_json()) for r in batch.rejects]})
                following = next(batches, None)
                if len(shard) == self.batches_per_shard or following is None:
                    yield pa.table({
                        "block": [block], "final": [following is None], "end_line": [batch.end_line],
                        "end_offset": [batch.end_offset], "batches": pa.array([orjson.dumps(shard)], pa.large_binary()),
                    })
                    shard, block = [], block + 1
                batch = following
        finally:
            stream.close()
            raw.close()


class ShardLinker:
    """A Ray actor: loads the pipeline once, then links shard after shard into part files."""

    def __init__(self, job: LinkJob, resume: bool):
        self.job = job
        self.parts = shard_dir(job.output)
        self.resume = resume
        self.linker = Linker(job.config, job.kb, device=job.device, candidates=job.candidates,
                             max_text_chars=job.reader.max_text_chars)

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = [self._shard(row) for row in table.to_pylist()]
        return pa.table({"stats": [orjson.dumps(r) for r in rows]})

    def _shard(self, row: dict[str, Any]) -> dict[str, Any]:
        block = row["block"]
        done = part_path(self.parts, block, ".json")
        if self.resume and done.exists():
            return {**orjson.loads(done.read_bytes()), "reused": True}
        stats: dict[str, Any] = {**dict.fromkeys(COUNTS, 0), "layer_seconds": {}, "block": block, "final": row["final"],
                                 "end_line": row["end_line"], "end_offset": row["end_offset"]}
        tmp_out = part_path(self.parts, block, ".out.tmp")
        tmp_rej = part_path(self.parts, block, ".rejects.tmp")
        out = BatchFile(tmp_out)
        rejects = BatchFile(tmp_rej) if self.job.rejects else None
        for batch in orjson.loads(row["batches"]):
            result = self.linker.link([d[0] for d in batch["docs"]], [d[1] for d in batch["docs"]])
            out.write(result.lines)
            if rejects is not None:
                rejects.write([orjson.dumps(r) + b"\n" for r in batch["rejects"]])
            stats["docs"] += len(batch["docs"])
            stats["rejected"] += len(batch["rejects"])
            stats["mentions"] += result.mentions
            stats["linked"] += result.linked
            add_layer_seconds(stats["layer_seconds"], result.timings)
        for handle, name in ((out, ".out"), (rejects, ".rejects")):
            if handle is not None:
                handle.sync()
                handle.close()
                os.replace(handle.path, part_path(self.parts, block, name))
        replace_bytes(done, orjson.dumps(stats))
        return stats


def _concatenate(parts: list[Path], target: Path) -> int:
    """Copy ``parts`` in order into ``target`` (atomically, fsynced); returns its size."""

    def copy(tmp: str) -> None:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)

    replace_file(target, copy, durable=True)
    return target.stat().st_size


def _prepare_shards(job: LinkJob, stamp_data: dict[str, Any]) -> Path:
    """The shard directory: kept from an interrupted run with ``--resume``, else new."""
    parts = shard_dir(job.output)
    stamp = parts / "job.json"
    if job.resume and parts.exists():
        if stamp.exists() and orjson.loads(stamp.read_bytes()) == stamp_data:
            return parts
        raise InputError(f"cannot resume from {parts}: it was made by a job with another config, KB, input "
                         "or options (or is not a shard directory); start over with --overwrite")
    if not job.resume:
        existing = [p for p in (Path(job.output), checkpoint_path(job.output), parts) if p.exists()]
        if existing and not job.overwrite:
            raise InputError(f"{existing[0]} already exists; pass --resume to continue an interrupted job "
                             "or --overwrite to start over")
        shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    stamp.write_bytes(orjson.dumps(stamp_data))
    return parts


def run_ray(job: LinkJob, address: str | None = None, num_workers: int = 2, gpus_per_worker: float = 0.0,
            shard_docs: int = 10_000, merge: bool = True) -> dict[str, Any]:
    """Run ``job`` on Ray, holding its output's lock; returns the summary (as the local engine's, plus the
    shard count)."""
    started = time.perf_counter()
    job.check()
    if job.streams:
        raise InputError("--engine ray needs files for --input and --output, not -")
    if num_workers < 1:
        raise InputError(f"--num-workers must be at least 1, got {num_workers}")
    if shard_docs < 1:
        raise InputError(f"--shard-docs must be at least 1, got {shard_docs}")
    if gpus_per_worker and job.device is None:
        job.device = "cuda"
    with job.locked():
        if job.resume and checkpoint_path(job.output).exists():
            return _finished_run(job, started)
        return _run_shards(job, address, num_workers, gpus_per_worker, shard_docs, merge, started)


def init_ray(address: str | None) -> None:
    """Join ``address`` (None: start a local Ray) unless Ray is up, passing the actors this environment."""
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in ACTOR_ENV if k in os.environ}
        env.setdefault(WORKERS_ENV, "1")  # an actor holds one CPU: one model batch at a time
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)


def _finished_run(job: LinkJob, started: float) -> dict[str, Any]:
    """The summary of a job whose checkpoint says it is done (Ray does not resume a local run)."""
    state = prepare_state(job)
    if not state["done"]:
        raise InputError(f"{checkpoint_path(job.output)} is the checkpoint of an interrupted local run; "
                         "resume it with --engine local")
    stream, raw = open_at(job, state)
    stream.close()
    raw.close()
    return {**summary(job, state, started, started_from(state)), "shards": 0}


def _run_shards(job: LinkJob, address: str | None, num_workers: int, gpus_per_worker: float, shard_docs: int,
                merge: bool, started: float) -> dict[str, Any]:
    """Link the input shard by shard on a pool of actors, then merge the parts in input order."""
    fingerprint = job.fingerprint()
    batches_per_shard = math.ceil(shard_docs / job.batch_size)
    parts = _prepare_shards(job, {**fingerprint, "batches_per_shard": batches_per_shard})
    init_ray(address)
    ray.data.DataContext.get_current().enable_progress_bars = job.progress
    source = ShardSource(job, batches_per_shard)
    # the read task only parses lines: it takes no CPU slot, so it never waits behind the actors
    linked = ray.data.read_datasource(source, num_cpus=0).map_batches(
        ShardLinker, fn_constructor_kwargs={"job": job, "resume": job.resume}, batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=num_workers), num_gpus=gpus_per_worker or None,
    )
    shards = sorted((orjson.loads(row["stats"]) for row in linked.iter_rows()), key=lambda s: s["block"])
    if [s["block"] for s in shards] != list(range(len(shards))) or (shards and not shards[-1]["final"]):
        raise InputError(f"{parts}: the shards do not cover the input in order; rerun with --overwrite")
    state, before = fresh_state(fingerprint), started_from(fresh_state(fingerprint))
    for s in shards:
        for key in COUNTS:
            state["counts"][key] += s[key]
            before["counts"][key] += s[key] if s.get("reused") else 0
        add_layer_seconds(state["layer_seconds"], s["layer_seconds"])
    if shards:
        state["input_line"], state["input_offset"] = shards[-1]["end_line"], shards[-1]["end_offset"]
    state["done"] = finished(job, state)
    if merge:
        state["output_bytes"] = _concatenate([part_path(parts, s["block"], ".out") for s in shards], Path(job.output))
        if job.rejects:
            state["rejects_bytes"] = _concatenate([part_path(parts, s["block"], ".rejects") for s in shards],
                                                  Path(job.rejects))
        write_checkpoint(checkpoint_path(job.output), state)
        shutil.rmtree(parts)
    result = summary(job, state, started, before)
    result["shards"] = len(shards)
    return result
