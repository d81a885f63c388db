"""The pipeline engine: DAGPipeline (a validated config), PipeContext (outputs of a run), DAGExecutor.

A config is validated completely before any model loads: unknown processors and keys, missing
inputs or sources, inputs wired to a source of the wrong type (checked against the layers' declared
contracts, see :mod:`glinker.contract`), duplicate ids and cycles are :class:`ConfigError`s naming
the node and key. Nodes run in topological order (networkx); inside a node the whole batch of texts
is processed at once, and the texts carry the per-text facts layers share (:class:`~glinker.text.TextBatch`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import orjson
import yaml
from pydantic import BaseModel, ValidationError

from .config import COMPAT_INPUTS, InputSpec, NodeSpec, PipelineSpec
from .contract import LayerContract, LayerSetup, describe_type, field_type, optional
from .errors import ConfigError, InputError
from .inputs import DEFAULT_MAX_TEXT_CHARS, ExecuteInput, validate_mentions, validate_texts
from .kb import KnowledgeBase, LoadReport
from .registry import contract, load_layer
from .templates import parse_template
from .text import TextBatch
from .untrusted import load_yaml, size_problem

INPUT_SOURCE = "$input"
# texts per run through the pipeline inside one execute call (README, "What a run returns")
DEFAULT_CHUNK_TEXTS = 256


def _pydantic_problems(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        where = f"{prefix}.{loc}" if loc else prefix
        parts.append(f"key {where!r}: {err['msg']}")
    return "; ".join(parts)


class DAGPipeline:
    """A validated pipeline config: nodes, their processor configs, and the execution order."""

    def __init__(self, spec: PipelineSpec | Mapping[str, Any]):
        if not isinstance(spec, PipelineSpec):
            spec = self._parse(spec)
        self.spec = spec
        self.contracts: dict[str, LayerContract] = {}
        self.node_configs: dict[str, BaseModel] = {}
        self.graph = nx.DiGraph()
        self.order: list[str] = []
        self._validate()

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _parse(data: Any) -> PipelineSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"a pipeline config must be a mapping, got {type(data).__name__}")
        problem = size_problem(data)
        if problem:
            raise ConfigError(problem)
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            raise ConfigError("a pipeline config needs a non-empty list 'nodes'")
        try:
            return PipelineSpec.model_validate(dict(data))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = list(err["loc"])
                where = "pipeline"
                if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
                    node = nodes[loc[1]]
                    node_id = node.get("id", f"#{loc[1]}") if isinstance(node, Mapping) else f"#{loc[1]}"
                    where = f"node {node_id!r}"
                    loc = loc[2:]
                key = ".".join(str(p) for p in loc)
                problems.append(f"{where}: key {key!r}: {err['msg']}")
            raise ConfigError("; ".join(problems)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> DAGPipeline:
        path = Path(path)
        data = load_yaml(path, "pipeline config")
        try:
            return cls(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(by_alias=True, exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @property
    def nodes(self) -> list[NodeSpec]:
        return self.spec.nodes

    def node(self, node_id: str) -> NodeSpec:
        return next(n for n in self.spec.nodes if n.id == node_id)

    def nodes_with_output(self, output: type) -> list[NodeSpec]:
        """The nodes whose processor outputs ``output`` (e.g. ``L0Output``), in config order."""
        return [n for n in self.spec.nodes if self.contracts[n.id].output is output]

    # ------------------------------------------------------------------ validation

    def _validate(self) -> None:
        producers: dict[str, str] = {}
        for node in self.spec.nodes:
            self._add_node(node, producers)
        for node in self.spec.nodes:
            self._connect(node, producers)
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise ConfigError(f"the pipeline has a cycle: {path}")
        position = {n.id: i for i, n in enumerate(self.spec.nodes)}
        self.order = list(nx.lexicographical_topological_sort(self.graph, key=position.__getitem__))

    def _add_node(self, node: NodeSpec, producers: dict[str, str]) -> None:
        """Check one node on its own: id, output key, config, template and input names."""
        if node.id in self.graph:
            raise ConfigError(f"duplicate node id {node.id!r}")
        self.graph.add_node(node.id)
        if node.output.key in producers or node.output.key == INPUT_SOURCE:
            raise ConfigError(f"node {node.id!r}: output key {node.output.key!r} is already used")
        producers[node.output.key] = node.id
        layer = self.contracts[node.id] = contract(node.processor, node.id)
        try:
            self.node_configs[node.id] = layer.config.model_validate(node.config)
        except ValidationError as exc:
            raise ConfigError(f"node {node.id!r}: {_pydantic_problems(exc, 'config')}") from None
        if node.template is not None:
            try:
                parse_template(node.template)
            except ConfigError as exc:
                raise ConfigError(f"node {node.id!r}: key 'schema.template': {exc}") from None
        accepted = [*layer.inputs, *COMPAT_INPUTS.get(node.processor, ())]
        for name, spec in node.inputs.items():
            if spec.fields and any(not _PLAIN_FIELD.fullmatch(part) for part in spec.fields.split(".")):
                raise ConfigError(
                    f"node {node.id!r}: input {name!r}: key 'fields' {spec.fields!r} may only name public "
                    "fields, such as 'entities' or 'mentions[*].text'"
                )
            if name not in accepted:
                raise ConfigError(
                    f"node {node.id!r}: unknown input {name!r} for {node.processor}; expected {', '.join(layer.inputs)}"
                )
        for name in layer.required_inputs:
            if name not in node.inputs:
                raise ConfigError(f"node {node.id!r}: missing required input {name!r} for {node.processor}")

    def _connect(self, node: NodeSpec, producers: dict[str, str]) -> None:
        """Add the node's edges and check that each input's source holds what the socket takes."""
        for dep in node.requires:
            if dep not in self.graph:
                raise ConfigError(f"node {node.id!r}: key 'requires' names unknown node {dep!r}")
            self.graph.add_edge(dep, node.id)
        for name, spec in node.inputs.items():
            if spec.source == INPUT_SOURCE:
                self._check_socket(node, name, spec, ExecuteInput)
                continue
            if spec.source not in producers:
                raise ConfigError(
                    f"node {node.id!r}: input {name!r} reads source {spec.source!r}, which no node "
                    f"produces (known: {INPUT_SOURCE}, {', '.join(producers)})"
                )
            if producers[spec.source] == node.id:
                raise ConfigError(f"node {node.id!r}: input {name!r} reads the node's own output")
            self.graph.add_edge(producers[spec.source], node.id)
            self._check_socket(node, name, spec, self.contracts[producers[spec.source]].output)

    def _check_socket(self, node: NodeSpec, name: str, spec: InputSpec, source_type: type) -> None:
        """An input whose source or fields hold the wrong type is miswired: say so, naming node and socket."""
        socket = self.contracts[node.id].inputs.get(name)
        if socket is None:  # accepted for glinker 0.1.x configs, not passed to the layer
            return
        found = field_type(source_type, spec.fields, spec.reduce)
        where = f"node {node.id!r}: input {name!r} (source {spec.source!r}, fields {spec.fields!r})"
        if not socket.accepts(found):
            raise ConfigError(f"{where} must be {socket.describe()}, got {describe_type(found)}")
        if socket.required and optional(found):
            raise ConfigError(f"{where} is required, but the source may not hold it (execute without 'entities')")


_PLAIN_FIELD = re.compile(r"[A-Za-z][\w-]*(\[\*\])?|\[\*\]")


class PipeContext:
    """Everything one ``execute`` call produced, by output key."""

    def __init__(self, pipeline_input: Any = None):
        self._outputs: OrderedDict[str, Any] = OrderedDict()
        self._metadata: dict[str, dict[str, Any]] = {}
        self._pipeline_input = pipeline_input

    def set(self, key: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        self._outputs[key] = value
        if metadata:
            self._metadata[key] = metadata

    def get(self, key: str) -> Any:
        if key == INPUT_SOURCE:
            return self._pipeline_input
        return self._outputs.get(key)

    def has(self, key: str) -> bool:
        return key in self._outputs

    def get_all_outputs(self) -> dict[str, Any]:
        return dict(self._outputs)

    def get_metadata(self, key: str) -> dict[str, Any] | None:
        return self._metadata.get(key)

    def get_execution_order(self) -> list[str]:
        return list(self._outputs)

    @property
    def data(self) -> dict[str, Any]:
        return dict(self._outputs)

    def timings(self) -> dict[str, float]:
        return {m["node"]: m["seconds"] for m in self._metadata.values() if "seconds" in m}

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": {k: _plain(v) for k, v in self._outputs.items()},
            "execution_order": self.get_execution_order(),
            "pipeline_input": _plain(self._pipeline_input),
            "metadata": self._metadata,
        }

    def to_json(self, filepath: str | Path | None = None, indent: int = 2) -> str:
        option = orjson.OPT_INDENT_2 if indent else 0
        text = orjson.dumps(self.to_dict(), option=option | orjson.OPT_SERIALIZE_NUMPY).decode()
        if filepath is not None:
            Path(filepath).write_text(text, encoding="utf-8")
        return text


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _chunk(data: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """The validated input of ``execute`` cut to texts ``start:stop`` (and their given mentions)."""
    if start == 0 and stop >= len(data["texts"]):
        return data
    chunk = dict(data, texts=TextBatch(data["texts"][start:stop]))
    if data.get("entities") is not None:
        chunk["entities"] = data["entities"][start:stop]
    return chunk


def _resolve_fields(value: Any, path: str | None) -> Any:
    if not path:
        return value
    for part in path.split("."):
        mapped = part.endswith("[*]")
        name = part[:-3] if mapped else part
        if name:
            value = [_attr(v, name) for v in value] if isinstance(value, list) and not mapped else _attr(value, name)
        if value is None:
            return None
    return value


def _attr(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _reduce(value: Any, mode: str) -> Any:
    if mode == "all" or not isinstance(value, list):
        return value
    if mode == "first":
        return value[0] if value else None
    if mode == "last":
        return value[-1] if value else None
    flat: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


class DAGExecutor:
    """Runs a pipeline over batches of texts.

    ``config`` is a dict, a :class:`DAGPipeline`, or a path to a YAML file. Processors (and their
    models) are built here, once; ``execute`` may then be called any number of times, also from
    several threads (calls are serialised on a lock: layers hold models and caches that are not
    thread-safe).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | DAGPipeline | str | Path,
        verbose: bool = False,
        kb: KnowledgeBase | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        chunk_texts: int = DEFAULT_CHUNK_TEXTS,
    ):
        if isinstance(config, DAGPipeline):
            self.pipeline = config
        elif isinstance(config, (str, Path)):
            self.pipeline = DAGPipeline.from_yaml(config)
        elif isinstance(config, Mapping):
            self.pipeline = DAGPipeline(config)
        else:
            raise ConfigError(f"config must be a dict, a DAGPipeline or a YAML path, got {type(config).__name__}")
        if isinstance(chunk_texts, bool) or not isinstance(chunk_texts, int) or chunk_texts < 1:
            raise ConfigError(f"chunk_texts must be a positive integer, got {chunk_texts!r}")
        self.verbose = verbose
        self.max_text_chars = max_text_chars
        self.chunk_texts = chunk_texts
        self.kb = kb or KnowledgeBase()
        self._lock = threading.RLock()
        self.processors: dict[str, Any] = {}
        for node_id in self.pipeline.order:
            node = self.pipeline.node(node_id)
            build = load_layer(node.processor)
            setup = LayerSetup(self.kb, node.template or "{label}")
            self.processors[node_id] = build(self.pipeline.node_configs[node_id], setup)

    @property
    def nodes(self) -> list[NodeSpec]:
        return self.pipeline.nodes

    # ------------------------------------------------------------------ running

    def execute(self, pipeline_input: Mapping[str, Any]) -> PipeContext:
        """Run every node over the batch ``{"texts": [...], "entities": [[{text,start,end}...]...]}``.

        A batch of more than ``chunk_texts`` texts runs through the whole pipeline in chunks of that
        many, one after another, and each node's outputs are joined: the results of one run, with
        the working memory of one chunk.
        """
        data = self._validated_input(pipeline_input)
        context = PipeContext(data)
        parts: dict[str, list[Any]] = {node_id: [] for node_id in self.pipeline.order}
        seconds = dict.fromkeys(self.pipeline.order, 0.0)
        with self._lock:
            for start in range(0, max(len(data["texts"]), 1), self.chunk_texts):
                for node_id, result, took in self._run_nodes(_chunk(data, start, start + self.chunk_texts), start):
                    parts[node_id].append(result)
                    seconds[node_id] += took
        for node_id in self.pipeline.order:
            node = self.pipeline.node(node_id)
            results = parts[node_id]
            joined = results[0] if len(results) == 1 else type(results[0]).concat(results)
            context.set(node.output.key, joined, {"node": node_id, "processor": node.processor, "seconds": seconds[node_id]})
        return context

    def _run_nodes(self, data: dict[str, Any], first_text: int) -> Iterator[tuple[str, Any, float]]:
        """Run the nodes over one chunk (``first_text`` is its first text's index in the call);
        yields each node's id, result and seconds."""
        context = PipeContext(data)
        for node_id in self.pipeline.order:
            node = self.pipeline.node(node_id)
            started = time.perf_counter()
            try:
                result = self.processors[node_id](**self._inputs(node, context))
            except Exception as exc:
                exc.add_note(f"in pipeline node {node_id!r} ({node.processor})")
                if first_text:
                    exc.add_note(f"on the chunk of texts from texts[{first_text}] (text indices above count from it)")
                raise
            context.set(node.output.key, result)
            yield node_id, result, time.perf_counter() - started

    def _inputs(self, node: NodeSpec, context: PipeContext) -> dict[str, Any]:
        """The values of the node's inputs (those its layer takes), resolved from the context."""
        sockets = self.pipeline.contracts[node.id].inputs
        return {
            name: _reduce(_resolve_fields(context.get(spec.source), spec.fields), spec.reduce)
            for name, spec in node.inputs.items()
            if name in sockets
        }

    def _validated_input(self, pipeline_input: Any) -> dict[str, Any]:
        if not isinstance(pipeline_input, Mapping):
            raise InputError(f"execute() takes a dict such as {{'texts': [...]}}, got {type(pipeline_input).__name__}")
        if "texts" not in pipeline_input:
            raise InputError("execute() input has no 'texts'")
        data = dict(pipeline_input)
        data["texts"] = TextBatch(validate_texts(pipeline_input["texts"], self.max_text_chars))
        if pipeline_input.get("entities") is not None:
            data["entities"] = validate_mentions(pipeline_input["entities"], data["texts"])
        return data

    # ------------------------------------------------------------------ knowledge base

    def load_entities(
        self,
        source: str | Path | Iterable[Mapping] | Mapping,
        target_layers: list[str] | None = None,
        batch_size: int = 1000,
        overwrite: bool = False,
        on_error: str = "raise",
        rejects_path: str | Path | None = None,
    ) -> LoadReport:
        """Load entities into the KB shared by every layer.

        ``source`` is a ``.jsonl``/``.jsonl.gz`` path, a list of dicts, a dict of dicts, or a kb_dir
        made by ``glinker kb build``. ``target_layers`` and ``batch_size`` are accepted for
        glinker 0.1.x compatibility: all in-process layers share one KB.
        """
        with self._lock:
            if isinstance(source, (str, Path)) and Path(source).is_dir():
                self.kb.open_dir(source)
                report = LoadReport(loaded=len(self.kb))
            else:
                report = self.kb.load(source, overwrite=overwrite, on_error=on_error, rejects_path=rejects_path)
            for node_id, processor in self.processors.items():
                on_load = self.pipeline.contracts[node_id].precompute_on_load
                if on_load is not None and on_load(self.pipeline.node_configs[node_id]):
                    processor.precompute(batch_size=64, progress=self.verbose)
            return report

    def remove_entities(self, ids: Iterable[str]) -> int:
        """Delete entities by id (all must be loaded; an unknown id raises and deletes nothing); returns how
        many. They are no candidates from the next ``execute`` on."""
        with self._lock:
            return self.kb.remove(list(ids))

    def save_kb(self) -> dict[str, Any]:
        """Write the KB, as loads and removals left it, back to the kb_dir it was loaded from, as that
        kb_dir's next generation (see ``glinker kb update``); returns the new manifest."""
        from .kb.update import save_kb

        with self._lock:
            return save_kb(self.kb)

    def precompute_embeddings(self, batch_size: int = 64, target_layers: list[str] | None = None) -> dict[str, int]:
        """Embed every KB entity for each layer that uses vectors; returns vectors made per node.
        ``target_layers`` is accepted for glinker 0.1.x compatibility: every such layer precomputes."""
        done = {}
        with self._lock:
            for node_id, processor in self.processors.items():
                if self.pipeline.contracts[node_id].precompute:
                    done[node_id] = processor.precompute(batch_size=batch_size, progress=self.verbose)
        return done

    def count_entities(self) -> dict[str, int]:
        """Entities visible to each L2 layer type (they share one KB)."""
        counts = {}
        for node in self.nodes:
            kb_layers = self.pipeline.contracts[node.id].kb_layers
            for name in kb_layers(self.pipeline.node_configs[node.id]) if kb_layers else ():
                counts[name] = len(self.kb)
        return counts or {"kb": len(self.kb)}

    def clear_databases(self) -> None:
        with self._lock:
            self.kb.clear()
