"""Shared helpers for benchmarks: the shared data sets and a cached MEDIC kb_dir."""

from __future__ import annotations

import gzip
import os
import resource
import sys
from pathlib import Path

import orjson

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MEDIC = SHARED / "medic" / "kb.jsonl.gz"
BC5CDR = SHARED / "bc5cdr_disease" / "docs.jsonl.gz"
CACHE = ROOT / "benchmarks" / "cache"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def require_shared_data() -> None:
    if not (MEDIC.exists() and BC5CDR.exists()):
        print(f"skipped: shared data not found under {SHARED}", file=sys.stderr)
        sys.exit(0)


def bc5cdr_docs(split: str = "test") -> list[dict]:
    with gzip.open(BC5CDR, "rb") as handle:
        docs = [orjson.loads(line) for line in handle if line.strip()]
    return [d for d in docs if split in (None, "all") or d["split"] == split]


def medic_kb_dir(template: str = "{label}: {description}", encoder: str = MINILM, name: str = "medic-minilm") -> Path:
    """The MEDIC KB embedded with ``encoder`` (names and entities), built once and cached as ``name``."""
    from glinker.kb.build import build_kb_dir

    out = CACHE / name
    if not (out / "manifest.json").exists():
        print(f"building {out} (embeds ~78k names once; cached for later runs)", file=sys.stderr)
        build_kb_dir(MEDIC, out, encoder, template=template, progress=True)
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_parts_mib() -> dict[str, int]:
    """The resident memory now, split into anonymous (the process's own) and file-backed pages (memory-
    mapped files: page cache the kernel can take back), from /proc/self/status (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {f"{key.lower()}_mib": int(fields[key].split()[0]) // 1024 for key in ("RssAnon", "RssFile") if key in fields}
