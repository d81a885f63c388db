"""Pydantic models of a pipeline config (the YAML schema).

Every model forbids unknown keys, so a typo such as ``min_confidense`` is an error naming the key
instead of a silently ignored setting. The keys that glinker 0.1.x configs carry and that have no
effect here are listed once, in :data:`COMPAT_KEYS` and :data:`COMPAT_INPUTS` (README, "Accepted for
glinker 0.1.x compatibility"): they are accepted so those files load, and dropped before validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from . import registry
from .models.onnx import check_runtime
from .models.quantize import check_quantize

# Bounds on per-mention and per-text work: more is a ConfigError at load (or a LimitError at run time),
# not a run that exhausts memory. See docs/reliability.md.
MAX_CANDIDATES = 1_000
MAX_LABELS = 1_000
MAX_MENTIONS_PER_TEXT = 100_000

# Numbers are taken as written: `max_candidates: true` or `threshold: "0.5"` is an error, not 1 or 0.5
# (an integer is still a valid Float).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
# a model's weights: "none" (float32) or "int8" (torch dynamic quantization, CPU; glinker/models/quantize.py)
Quantize = Annotated[str, AfterValidator(check_quantize)]
QUANTIZE_FIELD = Field("none", description="none | int8: int8 weights on CPU (torch dynamic quantization)")
# what runs a sentence encoder or cross-encoder: torch, or ONNX Runtime on CPU (extra "onnx"; glinker/models/onnx.py)
Runtime = Annotated[str, AfterValidator(check_runtime)]
RUNTIME_FIELD = Field("torch", description="torch | onnx: ONNX Runtime on CPU (dense and cross_encoder models)")

# Keys of glinker 0.1.x configs accepted without effect, per model (README, "Accepted for glinker
# 0.1.x compatibility", says why each does nothing).
COMPAT_KEYS: dict[str, tuple[str, ...]] = {
    "InputSpec": ("default",),
    "OutputSpec": ("fields",),
    "L1SpacyConfig": ("device",),
    "L1DictionaryConfig": ("batch_size",),
    "FuzzyConfig": ("max_distance", "n_gram_size", "prefix_length"),
    "EmbeddingConfig": ("dim",),
    "L2LayerConfig": ("write", "cache_policy", "ttl", "field_mapping", "config"),
    "L3Config": ("flat_ner", "multi_label"),
    "L4Config": ("flat_ner", "multi_label"),
}
# Inputs that glinker 0.1.x configs wire into a processor that does not read them: accepted (their
# sources are checked and ordered like any input) and not passed to the layer.
COMPAT_INPUTS: dict[str, tuple[str, ...]] = {
    "l3_batch": ("l1_entities",),
    "l4_reranker": ("l1_entities",),
}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_compat_keys(cls, data: Any) -> Any:
        ignored = COMPAT_KEYS.get(cls.__name__)
        if ignored and isinstance(data, Mapping):
            return {key: value for key, value in data.items() if key not in ignored}
        return data


# --------------------------------------------------------------------------- node wiring


class InputSpec(StrictModel):
    """Where a processor input comes from: ``$input`` or another node's output key."""

    source: str
    fields: str | None = Field(None, description="attribute path such as 'entities' or 'texts'")
    reduce: Literal["all", "first", "last", "flatten"] = "all"


class OutputSpec(StrictModel):
    key: str


class SchemaSpec(StrictModel):
    template: str = "{label}"


class NodeSpec(StrictModel):
    id: str
    processor: str
    requires: list[str] = Field(default_factory=list)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    output: OutputSpec
    schema_: SchemaSpec | None = Field(None, alias="schema")
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def template(self) -> str | None:
        return self.schema_.template if self.schema_ else None


class PipelineSpec(StrictModel):
    name: str = "pipeline"
    description: str | None = None
    nodes: list[NodeSpec]


# --------------------------------------------------------------------------- processor configs


class _ContextConfig(StrictModel):
    max_left_context: Int = Field(50, ge=0, description="characters of left context kept per mention")
    max_right_context: Int = Field(50, ge=0, description="characters of right context kept per mention")
    min_entity_length: Int = Field(2, ge=1, description="shorter mentions are dropped")


class L1SpacyConfig(_ContextConfig):
    model: str = "en_core_web_sm"
    batch_size: Int = Field(32, ge=1)
    include_noun_chunks: bool = False
    entity_types: list[str] | None = Field(None, description="keep only these spaCy labels (None = all)")
    exclude_types: list[str] = Field(
        default_factory=lambda: ["DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"],
        description="spaCy labels never kept (numbers and dates are not KB entities)",
    )


class L1GlinerConfig(_ContextConfig):
    model: str
    labels: list[str] = Field(min_length=1, max_length=MAX_LABELS)
    token: str | None = None
    device: str = "cpu"
    threshold: Float = Field(0.3, ge=0.0, le=1.0)
    flat_ner: bool = True
    multi_label: bool = False
    # texts per forward pass; on CPU small batches of long texts run faster (benchmarks/throughput.py)
    batch_size: Int = Field(8, ge=1)
    use_precomputed_embeddings: bool = True
    max_length: Int | None = Field(512, ge=16)
    window_overlap: Int = Field(32, ge=0, description="words shared by consecutive windows of a long text")
    well_formed: bool = Field(True, description="drop spans that run across a sentence end or leave a bracket unclosed")
    quantize: Quantize = QUANTIZE_FIELD


class L1DictionaryConfig(_ContextConfig):
    min_entity_length: int = Field(3, ge=1)
    stop_words: list[str] = Field(default_factory=list, description="names never matched (normalised)")
    use_default_stop_words: bool = Field(True, description="skip common English words that are also KB names")
    entity_types: list[str] | None = Field(None, description="match only names of these entity types")
    canonical_tokens: int = Field(
        0, ge=0, le=10, description="also match windows of up to this many tokens in canonical form (0: exact only)"
    )
    abbreviations: bool = Field(True, description="short forms defined in the text follow their long form")
    max_name_tokens: int = Field(10, ge=1, le=100, description="KB names of more tokens are not looked for")


class L1MergeConfig(StrictModel):
    overlaps: Literal["first", "longest", "all"] = Field(
        "first", description="overlapping spans: keep the first input's, the longest, or all distinct spans")


class FuzzyConfig(StrictModel):
    min_similarity: Float = Field(0.6, ge=0.0, le=1.0)


class EmbeddingConfig(StrictModel):
    enabled: bool = False
    model_name: str | None = None
    precompute_on_load: bool = False
    batch_size: Int = Field(64, ge=1)
    device: str = "cpu"
    max_length: Int = Field(128, ge=8)
    quantize: Quantize = QUANTIZE_FIELD
    runtime: Runtime = RUNTIME_FIELD


class L2LayerConfig(StrictModel):
    type: str
    priority: Int = 0
    # dict layer
    search_mode: list[Literal["exact", "fuzzy"]] = Field(default_factory=lambda: ["exact", "fuzzy"])
    fuzzy: FuzzyConfig | None = Field(default_factory=FuzzyConfig)
    # faiss layer
    top_k: Int = Field(30, ge=1, le=MAX_CANDIDATES)
    index: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    query: Literal["mention", "mention_context"] = Field(
        "mention", description="faiss query: the mention alone, or with 50 characters of context each side"
    )
    # priors layer
    priors: str | None = Field(None, description="priors: the output folder of glinker train task 'priors'")
    prior_min_count: Int = Field(1, ge=1, description="priors: annotations a surface needs to propose its entities")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return registry.check_retriever(value)


class HierarchyConfig(StrictModel):
    """Add ancestors that the best candidates share (for KBs whose rows list their parents)."""

    field: str = Field("parent_ids", description="entity field holding the ids of an entity's parents")
    depth: Int = Field(2, ge=1, le=5, description="how many levels up to look")
    from_top: Int = Field(10, ge=1, description="how many of the best candidates vote for their ancestors")
    max_added: Int = Field(5, ge=1, description="at most this many ancestors join the candidates")


class L2Config(StrictModel):
    layers: list[L2LayerConfig] = Field(default_factory=lambda: [L2LayerConfig(type="dict")])
    max_candidates: Int = Field(30, ge=1, le=MAX_CANDIDATES)
    max_mentions_per_text: Int = Field(
        MAX_MENTIONS_PER_TEXT, ge=1, description="a text with more mentions is a LimitError (split it)"
    )
    min_popularity: Int = 0
    embeddings: EmbeddingConfig | None = None
    fusion_k: Int = Field(60, ge=1, description="k of reciprocal-rank fusion across layers")
    abbreviations: bool = Field(True, description="expand abbreviations defined in the same text")
    hierarchy: HierarchyConfig | None = Field(None, description="add shared ancestors of the best candidates")

    @property
    def encoder(self) -> EmbeddingConfig | None:
        """The L2 encoder settings, when embeddings are enabled and name a model."""
        emb = self.embeddings
        return emb if emb is not None and emb.enabled and emb.model_name else None

    @model_validator(mode="after")
    def _encoder_where_needed(self) -> L2Config:
        for layer in self.layers:
            if registry.retriever(layer.type).needs_encoder and self.encoder is None:
                raise ValueError(
                    f"a {layer.type!r} layer needs embeddings: set embeddings: {{enabled: true, model_name: ...}}"
                )
        return self


class L3Config(StrictModel):
    model_name: str = Field(alias="model")
    backend: Literal["gliner", "cross_encoder", "dense", "gliclass"] | None = Field(
        None, description="None: guessed from the model files (detect_backend)"
    )
    token: str | None = None
    huggingface_token: str | None = None
    device: str = "cpu"
    threshold: Float = Field(0.5, ge=0.0, le=1.0)
    # texts (gliner) or pairs/contexts per forward pass; 8 was 32% faster than 32 for GLiNER on CPU
    batch_size: Int = Field(8, ge=1)
    use_precomputed_embeddings: bool = True
    cache_embeddings: bool = False
    max_length: Int | None = Field(512, ge=16)
    top_k: Int | None = Field(
        None, ge=1, le=MAX_CANDIDATES, description="score only the first k candidates of each mention"
    )
    max_labels: Int | None = Field(
        None, ge=1, le=MAX_LABELS,
        description="GLiNER and GLiClass uni-encoders: distinct candidates per prompt (None: all in one prompt)"
    )
    context_chars: Int = Field(
        100, ge=0, description="characters of context around a mention (dense, cross_encoder, gliclass)"
    )
    retrieval_weight: Float | None = Field(
        None, ge=0.0, le=1.0, description="weight of the L2 retrieval score mixed into the model's score "
        "(default: 0.8 for dense, 0 for gliner and cross_encoder)"
    )
    hierarchy: HierarchyConfig | None = Field(
        None, description="dense: use ancestor votes over this parent field as a feature (support)"
    )
    support_weight: Float = Field(0.1, ge=0.0, le=1.0, description="dense: weight of the ancestor-vote feature")
    consistency: bool = Field(
        True, description="mentions of a text with the same surface, or an abbreviation and its long form, agree"
    )
    priors: str | None = Field(
        None, description="mention priors (glinker train task 'priors': its model folder or priors.json) mixed "
        "into the scores of mentions whose surface was annotated"
    )
    prior_weight: Float = Field(0.5, ge=0.0, le=1.0, description="weight of a candidate's share of the annotations")
    prior_min_count: Int = Field(1, ge=1, description="annotations a surface needs for its prior to count")
    quantize: Quantize = QUANTIZE_FIELD
    runtime: Runtime = RUNTIME_FIELD


class L4Config(StrictModel):
    model_name: str = Field(alias="model")
    backend: Literal["gliner", "cross_encoder", "gliclass"] | None = Field(
        None, description="None: guessed from the model files (detect_backend)"
    )
    token: str | None = None
    device: str = "cpu"
    threshold: Float = Field(0.5, ge=0.0, le=1.0)
    max_labels: Int = Field(20, ge=1, le=MAX_LABELS)
    context_chars: Int = Field(100, ge=0, description="characters of context around a mention (cross_encoder, gliclass)")
    max_length: Int | None = Field(512, ge=16)
    batch_size: Int = Field(8, ge=1)
    quantize: Quantize = QUANTIZE_FIELD
    runtime: Runtime = RUNTIME_FIELD


class L5RelexConfig(StrictModel):
    """GLiNER-relex relations between the mentions of a text (``l5_relex``)."""

    model: str
    labels: list[str] = Field(min_length=1, max_length=MAX_LABELS, description="entity types of the relex prompt")
    relations: list[str] = Field(min_length=1, max_length=MAX_LABELS, description="relation labels to find")
    token: str | None = None
    device: str = "cpu"
    threshold: Float = Field(0.5, ge=0.0, le=1.0, description="entity score a mention needs to take part")
    relation_threshold: Float | None = Field(None, ge=0.0, le=1.0, description="None: threshold")
    adjacency_threshold: Float | None = Field(None, ge=0.0, le=1.0, description="None: threshold")
    flat_ner: bool = True
    multi_label: bool = False
    batch_size: Int = Field(8, ge=1, description="windows per forward pass")
    max_length: Int | None = Field(512, ge=16)
    window_overlap: Int = Field(32, ge=0, description="words shared by consecutive windows of a long text")


class L0Config(StrictModel):
    min_confidence: Float = Field(0.0, ge=0.0, le=1.0)
    include_unlinked: bool = True
    return_all_candidates: bool = False
    strict_matching: bool = True
    position_tolerance: Int = Field(2, ge=0)
