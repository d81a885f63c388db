"""The pipeline of a bulk job: load it once, run it on a batch, turn its records into output lines.

Both engines (local and Ray) and ``glinker eval`` / ``glinker render`` go through :class:`Linker`,
so the same batch gives the same bytes wherever it runs.
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from ..dag import INPUT_SOURCE, DAGExecutor, DAGPipeline
from ..errors import ConfigError, KnowledgeBaseError
from ..inputs import DEFAULT_MAX_TEXT_CHARS
from ..registry import processors_with_output
from ..types import L0Output, L1Output, L2Output, Relation, RelationEnd

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
        _set_device(node.setdefault("config", {}), pipeline.contracts[node["id"]].config, device)
    return DAGPipeline(data)


def _set_device(config: dict, model: type[BaseModel], device: str) -> None:
    """Set ``device`` wherever ``model`` has one: at the top and in the sub-configs ``config`` holds."""
    for name, info in model.model_fields.items():
        if name == "device":
            config["device"] = device
        elif isinstance(config.get(name), dict):
            options = typing.get_args(info.annotation) or (info.annotation,)
            sub = next((t for t in options if isinstance(t, type) and issubclass(t, BaseModel)), None)
            if sub is not None:
                _set_device(config[name], sub, device)


def linking_only(pipeline: DAGPipeline) -> DAGPipeline:
    """The same pipeline without its L1 nodes: mentions come from ``$input.entities`` instead.

    Every input that read an L1 output now reads ``$input`` field ``entities``; a pipeline that has
    no L1 node is returned unchanged.
    """
    data = pipeline.to_dict()
    l1 = {n.id: n.output.key for n in pipeline.nodes_with_output(L1Output)}
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


def output_key(pipeline: DAGPipeline, output: type) -> str | None:
    """Output key of the last node whose output is ``output`` (None if there is none)."""
    nodes = pipeline.nodes_with_output(output)
    return nodes[-1].output.key if nodes else None


def _processor(output: type) -> str:
    return " or ".join(processors_with_output(output))


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


def output_record(doc_id: Any, entities: list[dict], relations: list[dict] | None = None) -> dict[str, Any]:
    """One document's output: a line of ``glinker link``, a result of ``glinker serve``; ``relations``
    only from a pipeline with a relations layer."""
    record = {"id": doc_id, "entities": entities}
    if relations is not None:
        record["relations"] = relations
    return record


def relation_record(relation: Relation) -> dict[str, Any]:
    """A relation as ``glinker link`` writes it: head and tail mentions with their links, label, score."""
    def end(e: RelationEnd) -> dict[str, Any]:
        return {"start": e.start, "end": e.end, "text": e.text, "entity_id": e.entity_id}

    return {"head": end(relation.head), "relation": relation.relation, "tail": end(relation.tail),
            "score": _score(relation.score)}


def _score(value: float | None) -> float | None:
    return None if value is None else round(float(value), SCORE_DIGITS)


class Linker:
    """A pipeline loaded once with its KB; turns batches of texts into output records."""

    def __init__(self, config: str | Path | dict | DAGPipeline, kb: str | Path, device: str | None = None,
                 candidates: int = 0, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS):
        self.pipeline = load_pipeline(config, device)
        self.l0_key = output_key(self.pipeline, L0Output)
        self.l2_key = output_key(self.pipeline, L2Output)
        if self.l0_key is None:
            raise ConfigError(f"a bulk job needs a pipeline with a {_processor(L0Output)} node (it gives the records)")
        if candidates and self.l2_key is None:
            raise ConfigError(f"--candidates needs a pipeline with a {_processor(L2Output)} node")
        self.candidates = candidates
        # whether the records node reads relations (an l5_relex node): then every line has "relations"
        self.has_relations = any("relations" in n.inputs for n in self.pipeline.nodes if n.output.key == self.l0_key)
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
        per_text, relations, timings = self.outputs(texts)
        result = BatchResult([], timings=timings)
        for entities in per_text:
            result.mentions += len(entities)
            result.linked += sum(e["entity_id"] is not None for e in entities)
        result.lines = [orjson.dumps(output_record(doc_id, entities, rels)) + b"\n"
                        for doc_id, entities, rels in zip(ids, per_text, relations, strict=True)]
        return result

    def records(self, texts: list[str], entities: list[list[dict]] | None = None,
                candidates: list[int] | None = None) -> tuple[list[list[dict]], dict[str, float]]:
        """The output entities of each text and the batch's layer timings; blank texts skip the pipeline.
        ``entities``: given mentions per text; ``candidates``: K per text (default: the linker's K)."""
        per_text, _, timings = self.outputs(texts, entities, candidates)
        return per_text, timings

    def outputs(self, texts: list[str], entities: list[list[dict]] | None = None, candidates: list[int] | None = None
                ) -> tuple[list[list[dict]], list[list[dict] | None], dict[str, float]]:
        """As :meth:`records`, with the relations of each text too (None without a relations layer)."""
        todo = [i for i, text in enumerate(texts) if text.strip()]
        per_text: list[list[dict]] = [[] for _ in texts]
        relations: list[list[dict] | None] = [[] if self.has_relations else None for _ in texts]
        if not todo:
            return per_text, relations, {}
        context = self.run([texts[i] for i in todo], None if entities is None else [entities[i] for i in todo])
        ks = candidates or [self.candidates] * len(texts)
        l0 = context.get(self.l0_key)
        groups = context.get(self.l2_key).candidates if self.l2_key else [None] * len(todo)
        for i, recs, group in zip(todo, l0.entities, groups, strict=True):
            per_text[i] = self._entities(recs, group if ks[i] else None, ks[i])
        if l0.relations is not None:
            for i, rels in zip(todo, l0.relations, strict=True):
                relations[i] = [relation_record(r) for r in rels]
        return per_text, relations, context.timings()

    def _entities(self, records, groups, k: int) -> list[dict]:
        """Output entities of one text; with ``groups`` (its L2 output), each with its first ``k`` candidates."""
        out = []
        for r in records:
            link = r.linked_entity if r.is_linked else None
            entity = {
                "start": r.mention_start, "end": r.mention_end, "text": r.mention_text, "label": r.label,
                "entity_id": link.entity_id if link else None,
                "entity_label": link.label if link else None,
                "score": _score(link.score) if link else None,
            }
            if groups is not None:
                candidates = groups[r.mention_index].candidates if r.mention_index is not None else []
                entity["candidates"] = [
                    {"entity_id": c.entity_id, "label": c.label, "score": _score(c.score)}
                    for c in candidates[:k]
                ]
            out.append(entity)
        return out
