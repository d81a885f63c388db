"""The pipeline of a bulk job: load it once, run it on a batch, turn its records into output lines.

Both engines (local and Ray) and ``glinker eval`` / ``glinker render`` go through :class:`Linker`,
so the same batch gives the same bytes wherever it runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..dag import INPUT_SOURCE, DAGExecutor, DAGPipeline
from ..errors import ConfigError, KnowledgeBaseError
from ..inputs import DEFAULT_MAX_TEXT_CHARS
from ..registry import processor_info

SCORE_DIGITS = 4
VOLATILE_MANIFEST_KEYS = ("created_at", "build_seconds", "glinker_version")


def load_pipeline(config: str | Path | dict, device: str | None = None) -> DAGPipeline:
    """A validated pipeline; ``device`` (cpu, cuda, cuda:1 ...) replaces the device of every node."""
    pipeline = config if isinstance(config, DAGPipeline) else (
        DAGPipeline.from_yaml(config) if isinstance(config, (str, Path)) else DAGPipeline(config))
    if device is None:
        return pipeline
    data = pipeline.to_dict()
    for node in data["nodes"]:
        cfg = node.setdefault("config", {})
        if "device" in processor_info(node["processor"], node["id"]).config_model.model_fields:
            cfg["device"] = device
        if isinstance(cfg.get("embeddings"), dict):
            cfg["embeddings"]["device"] = device
    return DAGPipeline(data)


def linking_only(pipeline: DAGPipeline) -> DAGPipeline:
    """The same pipeline without its L1 nodes: mentions come from ``$input.entities`` instead.

    Every input that read an L1 output now reads ``$input`` field ``entities``; a pipeline that has
    no L1 node is returned unchanged.
    """
    data = pipeline.to_dict()
    l1 = {n["id"]: n["output"]["key"] for n in data["nodes"] if n["processor"].startswith("l1_")}
    if not l1:
        return pipeline
    nodes = []
    for node in data["nodes"]:
        if node["id"] in l1:
            continue
        node["requires"] = [r for r in node.get("requires", []) if r not in l1]
        for spec in node.get("inputs", {}).values():
            if spec["source"] in l1.values():
                spec["source"], spec["fields"] = INPUT_SOURCE, "entities"
        nodes.append(node)
    data["nodes"] = nodes
    return DAGPipeline(data)


def output_key(pipeline: DAGPipeline, processor: str) -> str | None:
    """Output key of the last node running ``processor`` (None if there is none)."""
    keys = [n.output.key for n in pipeline.nodes if n.processor == processor]
    return keys[-1] if keys else None


def sha256_json(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def kb_fingerprint(kb: str | Path) -> str:
    """Identity of a KB: its manifest (with file checksums) for a kb_dir, the file's hash for JSONL."""
    path = Path(kb)
    if path.is_dir():
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise KnowledgeBaseError(f"{path}: not a kb_dir (no manifest.json); build one with `glinker kb build`")
        manifest = orjson.loads(manifest_path.read_bytes())
        return sha256_json({k: v for k, v in manifest.items() if k not in VOLATILE_MANIFEST_KEYS})
    if not path.is_file():
        raise KnowledgeBaseError(f"KB not found: {path} (expected a kb_dir or an entity .jsonl/.jsonl.gz file)")
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class BatchResult:
    """Output lines of one batch and what they contain."""

    lines: list[bytes]
    mentions: int = 0
    linked: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _score(value: float | None) -> float | None:
    return None if value is None else round(float(value), SCORE_DIGITS)


class Linker:
    """A pipeline loaded once with its KB; turns batches of texts into output records."""

    def __init__(self, config: str | Path | dict | DAGPipeline, kb: str | Path, device: str | None = None,
                 candidates: int = 0, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS):
        self.pipeline = load_pipeline(config, device)
        self.l0_key = output_key(self.pipeline, "l0_aggregator")
        self.l2_key = output_key(self.pipeline, "l2_chain")
        if self.l0_key is None:
            raise ConfigError("a bulk job needs a pipeline with an l0_aggregator node (it gives the records)")
        if candidates and self.l2_key is None:
            raise ConfigError("--candidates needs a pipeline with an l2_chain node")
        self.candidates = candidates
        self.executor = DAGExecutor(self.pipeline, max_text_chars=max_text_chars)
        self.executor.load_entities(kb)

    def run(self, texts: list[str], entities: list[list[dict]] | None = None):
        """Execute the pipeline on a batch; returns the context."""
        data: dict[str, Any] = {"texts": texts}
        if entities is not None:
            data["entities"] = entities
        return self.executor.execute(data)

    def link(self, ids: list[Any], texts: list[str]) -> BatchResult:
        """One output line per text, in order. Texts that are empty or blank skip the pipeline."""
        todo = [i for i, text in enumerate(texts) if text.strip()]
        per_text: list[list[dict]] = [[] for _ in texts]
        result = BatchResult([])
        if todo:
            context = self.run([texts[i] for i in todo])
            result.timings = context.timings()
            records = context.get(self.l0_key).entities
            groups = context.get(self.l2_key).candidates if self.candidates else [None] * len(todo)
            for i, recs, group in zip(todo, records, groups, strict=True):
                per_text[i] = self._entities(recs, group)
        for entities in per_text:
            result.mentions += len(entities)
            result.linked += sum(e["entity_id"] is not None for e in entities)
        result.lines = [orjson.dumps({"id": doc_id, "entities": entities}) + b"\n"
                        for doc_id, entities in zip(ids, per_text, strict=True)]
        return result

    def _entities(self, records, groups) -> list[dict]:
        by_span = {(g.mention.start, g.mention.end): g.candidates for g in groups} if groups is not None else None
        out = []
        for r in records:
            link = r.linked_entity if r.is_linked else None
            entity = {
                "start": r.mention_start, "end": r.mention_end, "text": r.mention_text, "label": r.label,
                "entity_id": link.entity_id if link else None,
                "entity_label": link.label if link else None,
                "score": _score(link.score) if link else None,
            }
            if by_span is not None:
                entity["candidates"] = [
                    {"entity_id": c.entity_id, "label": c.label, "score": _score(c.score)}
                    for c in by_span.get((r.mention_start, r.mention_end), [])[: self.candidates]
                ]
            out.append(entity)
        return out
