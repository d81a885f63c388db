"""ConfigBuilder: build a pipeline config in Python, with the call shapes of glinker 0.1.x.

``build()`` returns a plain, YAML-serialisable dict; it is validated like any YAML config when a
DAGExecutor is made from it (and by ``build()`` itself, so mistakes surface where they are made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .config import SUPPORTED_L2_LAYERS, UNSUPPORTED_L2_LAYERS
from .errors import ConfigError

DEFAULT_TEMPLATE = "{label}: {description}"


def _input(source: str, fields: str) -> dict[str, str]:
    return {"source": source, "fields": fields}


class ConfigBuilder:
    """Declare layers L1-L4 and L0; get a config dict (``build``/``get_config``) or YAML (``save``)."""

    class L1Builder:
        def __init__(self, parent: ConfigBuilder):
            self.parent = parent

        def spacy(
            self,
            model: str = "en_core_web_sm",
            device: str = "cpu",
            batch_size: int = 32,
            max_right_context: int = 50,
            max_left_context: int = 50,
            min_entity_length: int = 2,
            include_noun_chunks: bool = False,
            entity_types: list[str] | None = None,
            exclude_types: list[str] | None = None,
        ) -> ConfigBuilder:
            """Mentions from a spaCy NER pipeline (run with ``nlp.pipe`` over the batch)."""
            options = dict(locals())
            if exclude_types is None:
                options.pop("exclude_types")
            return self.parent._set_l1("l1_spacy", options)

        def gliner(
            self,
            model: str,
            labels: list[str],
            token: str | None = None,
            device: str = "cpu",
            threshold: float = 0.3,
            flat_ner: bool = True,
            multi_label: bool = False,
            batch_size: int = 8,
            max_right_context: int = 50,
            max_left_context: int = 50,
            min_entity_length: int = 2,
            use_precomputed_embeddings: bool = True,
            max_length: int | None = 512,
            window_overlap: int = 32,
        ) -> ConfigBuilder:
            """Mentions from a GLiNER zero-shot NER model (bi-encoder label embeddings computed once)."""
            return self.parent._set_l1("l1_gliner", locals())

        def dictionary(
            self,
            min_entity_length: int = 3,
            stop_words: list[str] | None = None,
            use_default_stop_words: bool = True,
            entity_types: list[str] | None = None,
            max_right_context: int = 50,
            max_left_context: int = 50,
            batch_size: int = 256,
            canonical_tokens: int = 0,
            abbreviations: bool = True,
        ) -> ConfigBuilder:
            """Mentions found by a gazetteer of every KB name and alias (no model needed)."""
            options = dict(locals())
            options["stop_words"] = list(stop_words or [])
            return self.parent._set_l1("l1_dictionary", options)

    class L2Builder:
        """``add`` returns this builder so layers chain (``l2.add("dict").add("faiss")``); any other
        attribute falls through to the ConfigBuilder, as in glinker 0.1.x where ``add`` returned it."""

        def __init__(self, parent: ConfigBuilder):
            self.parent = parent

        def __getattr__(self, name: str):
            return getattr(self.parent, name)

        def add(
            self,
            layer_type: str,
            priority: int = 0,
            write: bool | None = None,
            search_mode: list[str] | None = None,
            ttl: int | None = None,
            cache_policy: str | None = None,
            fuzzy_similarity: float | None = None,
            top_k: int = 30,
            index: str = "auto",
            query: str = "mention",
        ) -> ConfigBuilder.L2Builder:
            """Add a candidate retrieval layer: ``"dict"`` (exact + fuzzy names) or ``"faiss"`` (dense vectors)."""
            if layer_type in UNSUPPORTED_L2_LAYERS:
                raise ConfigError(
                    f"L2 layer type {layer_type!r} is not supported by this glinker; use 'dict' and/or 'faiss'"
                )
            if layer_type not in SUPPORTED_L2_LAYERS:
                raise ConfigError(f"unknown L2 layer type {layer_type!r}; expected one of {SUPPORTED_L2_LAYERS}")
            layer: dict[str, Any] = {"type": layer_type, "priority": priority}
            if layer_type == "dict":
                layer["search_mode"] = list(search_mode or ["exact", "fuzzy"])
                layer["fuzzy"] = {"min_similarity": 0.6 if fuzzy_similarity is None else fuzzy_similarity}
            else:
                layer.update(top_k=top_k, index=index, query=query)
            for key, value in (("write", write), ("ttl", ttl), ("cache_policy", cache_policy)):
                if value is not None:
                    layer[key] = value
            self.parent._l2_layers.append(layer)
            return self

        def embeddings(
            self,
            enabled: bool = True,
            model_name: str = "sentence-transformers/all-MiniLM-L6-v2",
            dim: int | None = None,
            precompute_on_load: bool = False,
            batch_size: int = 64,
            device: str = "cpu",
        ) -> ConfigBuilder:
            """The encoder of the KB vectors (used by the faiss layer)."""
            self.parent._l2_embeddings = {
                "enabled": enabled,
                "model_name": model_name,
                "dim": dim,
                "precompute_on_load": precompute_on_load,
                "batch_size": batch_size,
                "device": device,
            }
            return self.parent

        def configure(self, max_candidates: int = 30, min_popularity: int = 0, abbreviations: bool = True,
                      hierarchy: dict[str, Any] | None = None) -> ConfigBuilder:
            """Options of the L2 chain as a whole (``hierarchy``: e.g. ``{"field": "parent_ids"}``)."""
            self.parent._l2_options = {
                "max_candidates": max_candidates,
                "min_popularity": min_popularity,
                "abbreviations": abbreviations,
            }
            if hierarchy is not None:
                self.parent._l2_options["hierarchy"] = hierarchy
            return self.parent

    class L3Builder:
        def __init__(self, parent: ConfigBuilder):
            self.parent = parent

        def configure(
            self,
            model: str = "sentence-transformers/all-MiniLM-L6-v2",
            backend: str | None = None,
            token: str | None = None,
            device: str = "cpu",
            threshold: float = 0.5,
            flat_ner: bool = True,
            multi_label: bool = False,
            batch_size: int = 8,
            use_precomputed_embeddings: bool = True,
            cache_embeddings: bool = False,
            max_length: int | None = 512,
            top_k: int | None = None,
            max_labels: int | None = None,
            context_chars: int = 100,
            retrieval_weight: float = 0.8,
            hierarchy: dict[str, Any] | None = None,
            support_weight: float = 0.1,
            consistency: bool = True,
        ) -> ConfigBuilder:
            """Disambiguation: backend "gliner", "cross_encoder" or "dense" (None: guessed from the model)."""
            options = dict(locals())
            options.pop("self")
            if hierarchy is None:
                options.pop("hierarchy")
            options["model_name"] = options.pop("model")
            self.parent._l3_config = options
            return self.parent

    class L4Builder:
        def __init__(self, parent: ConfigBuilder):
            self.parent = parent

        def configure(
            self,
            model: str,
            backend: str = "gliner",
            token: str | None = None,
            device: str = "cpu",
            threshold: float = 0.5,
            flat_ner: bool = True,
            multi_label: bool = False,
            max_labels: int = 20,
            max_length: int | None = 512,
            batch_size: int = 8,
        ) -> ConfigBuilder:
            """Optional reranker scoring candidates in chunks of ``max_labels``."""
            options = dict(locals())
            options.pop("self")
            options["model_name"] = options.pop("model")
            self.parent._l4_config = options
            return self.parent

    class L0Builder:
        def __init__(self, parent: ConfigBuilder):
            self.parent = parent

        def configure(
            self,
            min_confidence: float = 0.0,
            include_unlinked: bool = True,
            return_all_candidates: bool = False,
            strict_matching: bool = True,
            position_tolerance: int = 2,
        ) -> ConfigBuilder:
            options = dict(locals())
            options.pop("self")
            self.parent._l0_config = options
            return self.parent

    def __init__(self, name: str = "pipeline", description: str | None = None):
        self.name = name
        self.description = description or f"{name} - built with ConfigBuilder"
        self._l1_type: str | None = None
        self._l1_config: dict[str, Any] | None = None
        self._l2_layers: list[dict[str, Any]] = []
        self._l2_embeddings: dict[str, Any] | None = None
        self._l2_options: dict[str, Any] = {}
        self._l3_config: dict[str, Any] | None = None
        self._l4_config: dict[str, Any] | None = None
        self._l0_config: dict[str, Any] = {}
        self._schema_template = DEFAULT_TEMPLATE
        self.l1 = self.L1Builder(self)
        self.l2 = self.L2Builder(self)
        self.l3 = self.L3Builder(self)
        self.l4 = self.L4Builder(self)
        self.l0 = self.L0Builder(self)

    def _set_l1(self, processor: str, options: dict[str, Any]) -> ConfigBuilder:
        options = {k: v for k, v in options.items() if k != "self"}
        self._l1_type, self._l1_config = processor, options
        return self

    def set_schema_template(self, template: str) -> ConfigBuilder:
        """Template that renders an entity for the models, e.g. ``"{label}: {description}"``."""
        self._schema_template = template
        return self

    def get_config(self) -> dict[str, Any]:
        return self.build()

    def build(self) -> dict[str, Any]:
        """The pipeline config dict. Without L1, mentions come from ``$input.entities`` (or are found by
        the KB gazetteer when the input has none)."""
        if not self._l3_config and not self._l4_config:
            raise ConfigError("configure L3 (builder.l3.configure) or L4 (builder.l4.configure) before build()")
        template = {"template": self._schema_template}
        l2_config: dict[str, Any] = {
            "layers": [dict(layer) for layer in self._l2_layers] or [{"type": "dict", "priority": 0}],
            **self._l2_options,
        }
        if self._l2_embeddings:
            l2_config["embeddings"] = dict(self._l2_embeddings)
        mentions_source = "l1_result" if self._l1_type else "$input"
        mentions = _input(mentions_source, "entities")
        nodes: list[dict[str, Any]] = []
        if self._l1_type:
            nodes.append({
                "id": "l1",
                "processor": self._l1_type,
                "inputs": {"texts": _input("$input", "texts")},
                "output": {"key": "l1_result"},
                "config": dict(self._l1_config or {}),
            })
        head = ["l1"] if self._l1_type else []
        nodes.append({
            "id": "l2",
            "processor": "l2_chain",
            "requires": head,
            "inputs": {"mentions": mentions, "texts": _input("$input", "texts")},
            "output": {"key": "l2_result"},
            "schema": dict(template),
            "config": l2_config,
        })
        linker_inputs = {
            "texts": _input("$input", "texts"),
            "candidates": _input("l2_result", "candidates"),
        }
        final, requires = None, [*head, "l2"]
        if self._l3_config:
            nodes.append({
                "id": "l3",
                "processor": "l3_batch",
                "requires": list(requires),
                "inputs": dict(linker_inputs),
                "output": {"key": "l3_result"},
                "schema": dict(template),
                "config": dict(self._l3_config),
            })
            final = "l3_result"
            requires.append("l3")
        if self._l4_config:
            l4_inputs = dict(linker_inputs)
            if self._l3_config:
                l4_inputs["l3_entities"] = _input("l3_result", "entities")
            nodes.append({
                "id": "l4",
                "processor": "l4_reranker",
                "requires": list(requires),
                "inputs": l4_inputs,
                "output": {"key": "l4_result"},
                "schema": dict(template),
                "config": dict(self._l4_config),
            })
            final = "l4_result"
            requires.append("l4")
        l0_inputs = {
            "l2_candidates": _input("l2_result", "candidates"),
            "l3_entities": _input(final, "entities"),
        }
        if self._l1_type:
            l0_inputs["l1_entities"] = _input("l1_result", "entities")
        nodes.append({
            "id": "l0",
            "processor": "l0_aggregator",
            "requires": requires,
            "inputs": l0_inputs,
            "output": {"key": "l0_result"},
            "config": dict(self._l0_config),
        })
        config = {"name": self.name, "description": self.description, "nodes": nodes}
        from .dag import DAGPipeline

        DAGPipeline(config)
        return config

    def save(self, filepath: str | Path) -> Path:
        """Write the config as YAML (readable by ``ProcessorFactory.create_pipeline``)."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.build(), sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path
