"""ConfigBuilder: build a pipeline config in Python, with the call shapes of glinker 0.1.x.

Every builder method takes the keys of one config model of :mod:`glinker.config` as parameters: its
signature is made from the model (names, defaults), so the two cannot drift. A method writes only
the options given to it (and the few defaults that are the builder's own, such as the L3 model);
the config model fills in the rest when the pipeline is validated. ``build()`` returns a plain,
YAML-serialisable dict and validates it, so mistakes surface where they are made.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import registry
from .config import (
    COMPAT_KEYS,
    EmbeddingConfig,
    L0Config,
    L1DictionaryConfig,
    L1GlinerConfig,
    L1SpacyConfig,
    L2Config,
    L2LayerConfig,
    L3Config,
    L4Config,
)
from .dag import DAGPipeline
from .errors import ConfigError

DEFAULT_TEMPLATE = "{label}: {description}"
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class _Options:
    """The parameters of a builder method, made from the fields of a config model.

    A parameter is named as the YAML key (a field's alias, or ``renames``); ``lead`` ones may be passed
    by position, the others by keyword only. The model's 0.1.x compatibility keys are accepted too,
    and ``extra`` parameters that the method itself interprets.
    """

    model: type[BaseModel]
    lead: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()

    def signature(self) -> inspect.Signature:
        defaults = {self._key(name): self._default(name) for name in self.model.model_fields if name not in self.skip}
        defaults.update((key, None) for key in (*COMPAT_KEYS.get(self.model.__name__, ()), *self.extra))
        keys = [*self.lead, *(key for key in defaults if key not in self.lead)]
        return inspect.Signature([inspect.Parameter("self", _POSITIONAL)] + [
            inspect.Parameter(key, _POSITIONAL if key in self.lead else _KEYWORD, default=defaults[key]) for key in keys
        ])

    def collect(self, signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The options a call gives (by config key), with the builder's own defaults for those it does not;
        None for a key that cannot be None means "the default" and is left out."""
        given = signature.bind(*args, **kwargs).arguments
        given.pop("self")
        names = {self._key(name): name for name in self.model.model_fields}
        options = dict(self.defaults)
        for key, value in given.items():
            name = names.get(key, key)
            info = self.model.model_fields.get(name)
            if value is None and (info is None or not _admits_none(info.annotation)):
                options.pop(name, None)
            else:
                options[name] = value
        return options

    def _key(self, name: str) -> str:
        return self.renames.get(name) or self.model.model_fields[name].alias or name

    def _default(self, name: str) -> Any:
        info = self.model.model_fields[name]
        if name in self.defaults:
            return self.defaults[name]
        return inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)


def _admits_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def _method(options: _Options, doc: str, apply: Callable[[ConfigBuilder, dict[str, Any]], Any]):
    """A builder-section method with the signature of ``options``; it hands what a call gives to ``apply``."""
    signature = options.signature()

    def method(self, *args, **kwargs):
        result = apply(self.parent, options.collect(signature, (self, *args), kwargs))
        return self.parent if result is None else result

    method.__signature__ = signature
    method.__doc__ = doc
    return method


def _input(source: str, fields: str) -> dict[str, str]:
    return {"source": source, "fields": fields}


def _texts() -> dict[str, str]:
    return _input("$input", "texts")


def _node(node_id: str, processor: str, inputs: dict, requires: list[dict] | None, config: dict[str, Any],
          template: str | None = None) -> dict[str, Any]:
    """A node dict named after its stage (output ``<id>_result``), requiring the nodes before it."""
    node: dict[str, Any] = {"id": node_id, "processor": processor}
    if requires is not None:
        node["requires"] = [n["id"] for n in requires]
    node.update(inputs=inputs, output={"key": f"{node_id}_result"})
    if template is not None:
        node["schema"] = {"template": template}
    node["config"] = dict(config)
    return node


class _Section:
    def __init__(self, parent: ConfigBuilder):
        self.parent = parent


class ConfigBuilder:
    """Declare layers L1-L4 and L0; get a config dict (``build``/``get_config``) or YAML (``save``)."""

    class L1Builder(_Section):
        spacy = _method(
            _Options(L1SpacyConfig, lead=("model",)),
            "Mentions from a spaCy NER pipeline (run with ``nlp.pipe`` over the batch).",
            lambda b, options: b._set_stage("l1", "l1_spacy", options),
        )
        gliner = _method(
            _Options(L1GlinerConfig, lead=("model", "labels")),
            "Mentions from a GLiNER zero-shot NER model (bi-encoder label embeddings computed once).",
            lambda b, options: b._set_stage("l1", "l1_gliner", options),
        )
        dictionary = _method(
            _Options(L1DictionaryConfig),
            "Mentions found by a gazetteer of every KB name and alias (no model needed).",
            lambda b, options: b._set_stage("l1", "l1_dictionary", options),
        )

    class L2Builder(_Section):
        """``add`` returns this builder so layers chain (``l2.add("dict").add("faiss")``); any other
        attribute falls through to the ConfigBuilder, as in glinker 0.1.x where ``add`` returned it."""

        def __getattr__(self, name: str):
            return getattr(self.parent, name)

        add = _method(
            _Options(L2LayerConfig, lead=("layer_type", "priority"), renames={"type": "layer_type"},
                     extra=("fuzzy_similarity",)),
            "Add a candidate retrieval layer, by type (``registry.RETRIEVERS``: ``\"dict\"`` names, "
            "``\"faiss\"`` name vectors, ``\"priors\"`` annotated surfaces); ``fuzzy_similarity`` sets ``fuzzy.min_similarity``.",
            lambda b, options: b._add_l2_layer(options),
        )
        embeddings = _method(
            _Options(EmbeddingConfig, lead=("enabled", "model_name"),
                     defaults={"enabled": True, "model_name": DEFAULT_ENCODER}),
            "The encoder of the KB vectors (used by vector layers such as ``faiss``).",
            lambda b, options: b._l2.update(embeddings=options),
        )
        configure = _method(
            _Options(L2Config, skip=("layers", "embeddings")),
            "Options of the L2 chain as a whole (``hierarchy``: e.g. ``{\"field\": \"parent_ids\"}``).",
            lambda b, options: b._l2.update(options),
        )

    class L3Builder(_Section):
        configure = _method(
            _Options(L3Config, lead=("model",), defaults={"model_name": DEFAULT_ENCODER}),
            "Disambiguation: backend \"gliner\", \"cross_encoder\" or \"dense\" (None: guessed from the model).",
            lambda b, options: b._set_stage("l3", "l3_batch", options),
        )

    class L4Builder(_Section):
        configure = _method(
            _Options(L4Config, lead=("model",)),
            "Optional reranker scoring candidates in chunks of ``max_labels``.",
            lambda b, options: b._set_stage("l4", "l4_reranker", options),
        )

    class L0Builder(_Section):
        configure = _method(
            _Options(L0Config),
            "Aggregation: one record per mention (``strict_matching``, ``min_confidence`` ...).",
            lambda b, options: b._set_stage("l0", "l0_aggregator", options),
        )

    def __init__(self, name: str = "pipeline", description: str | None = None):
        self.name = name
        self.description = description or f"{name} - built with ConfigBuilder"
        self._stages: dict[str, tuple[str, dict[str, Any]]] = {}
        self._l2_layers: list[dict[str, Any]] = []
        self._l2: dict[str, Any] = {}
        self._schema_template = DEFAULT_TEMPLATE
        self.l1 = self.L1Builder(self)
        self.l2 = self.L2Builder(self)
        self.l3 = self.L3Builder(self)
        self.l4 = self.L4Builder(self)
        self.l0 = self.L0Builder(self)

    def _set_stage(self, stage: str, processor: str, options: dict[str, Any]) -> None:
        self._stages[stage] = (processor, options)

    def _add_l2_layer(self, options: dict[str, Any]) -> ConfigBuilder.L2Builder:
        try:
            registry.check_retriever(options["type"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        similarity = options.pop("fuzzy_similarity", None)
        if similarity is not None:
            options["fuzzy"] = {**(options.get("fuzzy") or {}), "min_similarity": similarity}
        self._l2_layers.append(options)
        return self.l2

    def set_schema_template(self, template: str) -> ConfigBuilder:
        """Template that renders an entity for the models, e.g. ``"{label}: {description}"``."""
        self._schema_template = template
        return self

    def get_config(self) -> dict[str, Any]:
        return self.build()

    def build(self) -> dict[str, Any]:
        """The pipeline config dict. Without L1, mentions come from ``$input.entities`` (or are found by
        the KB gazetteer when the input has none)."""
        if "l3" not in self._stages and "l4" not in self._stages:
            raise ConfigError("configure L3 (builder.l3.configure) or L4 (builder.l4.configure) before build()")
        nodes: list[dict[str, Any]] = []
        if "l1" in self._stages:
            nodes.append(self._stage_node("l1", {"texts": _texts()}, requires=None))
        l2_config = {"layers": [dict(layer) for layer in self._l2_layers] or [{"type": "dict", "priority": 0}],
                     **self._l2}
        mentions = _input("l1_result" if nodes else "$input", "entities")
        nodes.append(_node("l2", "l2_chain", {"mentions": mentions, "texts": _texts()}, nodes, l2_config,
                           self._schema_template))
        final = None
        for stage in ("l3", "l4"):
            if stage in self._stages:
                inputs = {"texts": _texts(), "candidates": _input("l2_result", "candidates")}
                if final is not None:
                    inputs["l3_entities"] = _input(final, "entities")
                nodes.append(self._stage_node(stage, inputs, nodes))
                final = f"{stage}_result"
        l0_inputs = {"l2_candidates": _input("l2_result", "candidates"), "l3_entities": _input(final, "entities")}
        if "l1" in self._stages:
            l0_inputs["l1_entities"] = _input("l1_result", "entities")
        processor, options = self._stages.get("l0", ("l0_aggregator", {}))
        nodes.append(_node("l0", processor, l0_inputs, nodes, options))
        config = {"name": self.name, "description": self.description, "nodes": nodes}
        DAGPipeline(config)
        return config

    def _stage_node(self, stage: str, inputs: dict, requires: list[dict] | None) -> dict[str, Any]:
        processor, options = self._stages[stage]
        template = None if stage == "l1" else self._schema_template
        return _node(stage, processor, inputs, requires, options, template)

    def save(self, filepath: str | Path) -> Path:
        """Write the config as YAML (readable by ``ProcessorFactory.create_pipeline``)."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.build(), sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path
