"""The ``glinker train`` YAML: ``task`` plus the sections ``model``, ``peft``, ``data`` and ``training``.

Validated with pydantic before any model loads. Unknown keys are errors that name the key (and the
closest known one); keys that need the network are refused, since this build trains offline.
"""

from __future__ import annotations

import dataclasses
import difflib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError
from ..untrusted import load_yaml

Task = Literal["retriever", "ner", "linker", "priors"]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PeftSection(_Section):
    """LoRA adapters (the ``peft`` package); merged into the weights when training ends."""

    enabled: bool = False
    method: Literal["lora"] = "lora"
    r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str | None = None
    bias: Literal["none", "all", "lora_only"] = "none"


class ChunkingSection(_Section):
    """Documents longer than ``max_words`` words become windows of ``max_words``, ``stride`` words apart."""

    enabled: bool = True
    max_words: int = Field(200, gt=0)
    stride: int = Field(150, gt=0)

    @model_validator(mode="after")
    def _stride_fits(self) -> ChunkingSection:
        if self.stride > self.max_words:
            raise ValueError(f"stride ({self.stride}) must be at most max_words ({self.max_words}): "
                             "words between windows would never be trained on")
        return self


class FieldsSection(_Section):
    """Field names of an annotated document and of its mentions."""

    text: str = "text"
    mentions: str = "mentions"
    start: str = "start"
    end: str = "end"
    label: str = "label"
    entity_id: str = "entity_id"
    split: str = "split"


Splits = Annotated[list[str], Field(min_length=1)]


class DataSection(_Section):
    """Where the training data is. Relative paths are relative to the current folder."""

    kb: Path | None = None
    pipeline: Path | None = Field(None, description="linker: the pipeline whose L2 proposes the candidates")
    train_data: Path | None = None
    val_data: Path | None = None
    train_split: str | Splits | None = Field("train", description="a split, a list of splits, or all (null)")
    val_split: str | Splits | None = "dev"
    format: Literal["jsonl"] = "jsonl"
    fields: FieldsSection = FieldsSection()
    long_doc_chunking: ChunkingSection = ChunkingSection()
    default_label: str = Field("entity", min_length=1)
    rejects: Path | None = None
    max_docs: int | None = Field(None, gt=0)
    val_max_docs: int | None = Field(None, gt=0)


class RetrieverModel(_Section):
    """The sentence encoder to adapt (L2 ``faiss`` layer, L3 ``dense`` backend, ``kb build --encoder``)."""

    model_name: str = MINILM
    max_seq_length: int = Field(64, gt=0, le=512)
    template: str = "{label}: {description}"


class GlinerArchitecture(_Section):
    """GLiNER architecture keys (passed to ``GLiNERConfig``), or ``from_pretrained``: a GLiNER folder to fine-tune."""

    from_pretrained: str | None = None
    model_name: str = MINILM
    labels_encoder: str | None = None
    span_mode: Literal["markerV0", "marker", "query", "mlp", "cat", "conv_conv", "conv_max", "conv_mean",
                       "conv_sum", "conv_share", "token_level"] = "markerV0"
    max_width: int = Field(12, gt=0)
    max_len: int = Field(384, gt=0)
    max_types: int = Field(25, gt=0)
    max_neg_type_ratio: int = Field(1, ge=0)
    hidden_size: int | None = Field(None, gt=0)
    dropout: float = Field(0.4, ge=0, lt=1)
    fine_tune: bool = True
    subtoken_pooling: Literal["first", "mean"] = "first"
    words_splitter_type: Literal["whitespace", "spacy", "mecab", "jieba", "janome", "stanza"] = "whitespace"
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    embed_ent_token: bool = True
    num_rnn_layers: int = Field(1, ge=0)
    fuse_layers: bool = False
    post_fusion_schema: str = ""
    num_post_fusion_layers: int = Field(1, ge=0)
    represent_spans: bool = False
    neg_spans_ratio: float = Field(1.0, ge=0)
    token_loss_coef: float = 1.0
    span_loss_coef: float = 1.0

    def gliner_kwargs(self) -> dict[str, Any]:
        """The keys given in the YAML that ``GLiNERConfig`` takes (``from_pretrained`` and the task's own keys
        left out)."""
        own = set(type(self).model_fields) - set(GlinerArchitecture.model_fields) | {"from_pretrained"}
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k not in own}


class GlinerModel(GlinerArchitecture):
    """``task: ner``: the GLiNER to fine-tune for ``l1_gliner``."""

    threshold: float = Field(0.5, gt=0, lt=1, description="decision threshold of the dev span F1")


class LinkerModel(_Section):
    """The linker to fine-tune: a cross-encoder for L3/L4 ``backend: cross_encoder``. ``model_name`` is a
    cross-encoder folder, or an encoder that gets a new one-logit scoring head. ``template`` and
    ``context_chars`` must be those of the L3/L4 node that will use it."""

    backend: Literal["cross_encoder"] = "cross_encoder"
    model_name: str = MINILM
    max_length: int = Field(128, gt=0, le=512)
    context_chars: int = Field(100, ge=0)
    template: str = "{label}: {description}"


class GlinerLinkerModel(GlinerArchitecture):
    """The linker to fine-tune: a GLiNER for L3/L4 ``backend: gliner``. ``template`` must be that of the
    L3/L4 node that will use it; a training row holds ``context_words`` words each side of the mention."""

    backend: Literal["gliner"] = "gliner"
    template: str = "{label}: {description}"
    context_words: int = Field(64, ge=0)


class LinkerBackend(BaseModel):
    """The ``backend`` key of a linker's model section alone (other keys ignored): it picks the section."""

    backend: Literal["cross_encoder", "gliner"] = "cross_encoder"


class PriorsModel(_Section):
    """``task: priors`` counts annotated mentions per surface and entity: no model, no keys."""


MODEL_SECTIONS: dict[str, type[_Section]] = {"retriever": RetrieverModel, "ner": GlinerModel, "priors": PriorsModel}
LINKER_SECTIONS: dict[str, type[_Section]] = {"cross_encoder": LinkerModel, "gliner": GlinerLinkerModel}

# Training keys glinker adds to Hugging Face's TrainingArguments, per kind of run (``TrainConfig.kind``).
TASK_TRAINING_KEYS: dict[str, dict[str, Any]] = {
    "retriever": {"mine_top_k": 20, "negative_pool": 3, "mention_weight": 1, "eval_max_mentions": 2000,
                  "skip_related_negatives": False},
    "ner": {},
    "linker": {"negatives": 7, "pointwise_weight": 1.0, "eval_max_mentions": 500},
    "linker:gliner": {"negatives": 7, "eval_max_mentions": 500},
    "priors": {},
}
NETWORK_KEYS = {"push_to_hub": "pushes to the Hugging Face Hub", "hub_token": "authenticates to the Hub",
                "hub_model_id": "names a Hub repository", "hub_strategy": "pushes to the Hub",
                "hub_private_repo": "creates a Hub repository", "hub_always_push": "pushes to the Hub",
                "push_to_hub_model_id": "pushes to the Hub", "push_to_hub_organization": "pushes to the Hub",
                "push_to_hub_token": "authenticates to the Hub"}
OFFLINE_REPORTERS = {"none", "tensorboard", "csv"}


# The Hugging Face arguments class each kind of run trains with.
ARGUMENTS_CLASSES = {"retriever": "sentence_transformers.SentenceTransformerTrainingArguments",
                     "ner": "gliner.training.TrainingArguments",
                     "linker": "transformers.TrainingArguments",
                     "linker:gliner": "gliner.training.TrainingArguments"}


def arguments_class(kind: str) -> type:
    if kind in ("ner", "linker:gliner"):
        from gliner.training import TrainingArguments

        return TrainingArguments
    if kind == "linker":
        from transformers import TrainingArguments

        return TrainingArguments
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments


@cache
def trainer_argument_names(kind: str) -> frozenset[str]:
    """Every field of the ``TrainingArguments`` class of ``kind``, and ``warmup_ratio`` (see ``TrainRun``)."""
    return frozenset(f.name for f in dataclasses.fields(arguments_class(kind)) if f.init) | {"warmup_ratio"}


class TrainConfig(_Section):
    task: Task
    model: dict[str, Any] = {}
    peft: PeftSection = PeftSection()
    data: DataSection = DataSection()
    training: dict[str, Any] = {}

    @field_validator("training")
    @classmethod
    def _offline(cls, training: dict[str, Any]) -> dict[str, Any]:
        for key, why in NETWORK_KEYS.items():
            if training.get(key) not in (None, False, ""):
                raise ValueError(f"training.{key} {why}, which needs the network; glinker train runs offline. "
                                 f"Remove the key (push the output folder yourself afterwards)")
        reporters = training.get("report_to", "none")
        reporters = [reporters] if isinstance(reporters, str) else list(reporters or [])
        if unsupported := [r for r in reporters if r not in OFFLINE_REPORTERS]:
            raise ValueError(f"training.report_to {unsupported} needs the network (or an account); "
                             f"use one of {sorted(OFFLINE_REPORTERS)}")
        return training

    def model_section(self) -> Any:
        """The ``model`` section validated with its class: the task's, or for ``linker`` the backend's."""
        if self.task == "linker":
            return LINKER_SECTIONS[LinkerBackend.model_validate(self.model).backend].model_validate(self.model)
        return MODEL_SECTIONS[self.task].model_validate(self.model)

    @property
    def kind(self) -> str:
        """The task, or ``linker:gliner`` for a GLiNER linker: what the ``training`` keys are checked against."""
        if self.task == "linker" and LinkerBackend.model_validate(self.model).backend == "gliner":
            return "linker:gliner"
        return self.task

    def task_options(self) -> dict[str, Any]:
        """glinker's own training keys of this task, with their defaults."""
        defaults = TASK_TRAINING_KEYS[self.kind]
        return {k: self.training.get(k, v) for k, v in defaults.items()}

    def trainer_arguments(self) -> dict[str, Any]:
        """The ``training`` keys that Hugging Face's ``TrainingArguments`` takes."""
        own = set(TASK_TRAINING_KEYS[self.kind])
        return {k: v for k, v in self.training.items() if k not in own}

    def check_training_keys(self) -> None:
        kind = self.kind
        if kind == "priors":
            if extra := [k for k in self.training if k != "output_dir"]:
                raise ConfigError(f"training.{extra[0]}: task 'priors' trains nothing and takes no training keys "
                                  "but output_dir")
            return
        known = trainer_argument_names(kind) | set(TASK_TRAINING_KEYS[kind])
        for key in self.training:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                own = f" plus {sorted(TASK_TRAINING_KEYS[kind])}" if TASK_TRAINING_KEYS[kind] else ""
                raise ConfigError(f"training.{key}: unknown key{hint}; keys are the fields of "
                                  f"{ARGUMENTS_CLASSES[kind]}{own}")


def _error(where: str, exc: ValidationError, prefix: str) -> ConfigError:
    """One message naming every bad key, e.g. ``model.max_widht: Extra inputs are not permitted``."""
    lines = [f"{prefix}{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]
    return ConfigError(f"{where}: " + "; ".join(lines))


def load_train_config(source: str | Path | dict[str, Any]) -> TrainConfig:
    """Parse and validate a training config (a YAML path or a dict); every section checked before loading."""
    where = str(source) if not isinstance(source, dict) else "training config"
    if not isinstance(source, dict):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"training config not found: {path}")
        source = load_yaml(path, "training config")
        if not isinstance(source, dict):
            raise ConfigError(f"{path}: the top level must be a mapping with 'task', 'model', 'data', 'training'")
    try:
        config = TrainConfig.model_validate(source)
    except ValidationError as exc:
        raise _error(where, exc, "") from None
    try:
        config.model_section()
    except ValidationError as exc:
        raise _error(where, exc, "model.") from None
    config.check_training_keys()
    _check_data(config, where)
    return config


def _check_data(config: TrainConfig, where: str) -> None:
    data = config.data
    needed = {"retriever": ["kb"], "ner": ["train_data"], "linker": ["kb", "pipeline", "train_data"],
              "priors": ["train_data"]}[config.task]
    for key in needed:
        if getattr(data, key) is None:
            raise ConfigError(f"{where}: data.{key} is required for task {config.task!r}")
    for key in ("kb", "pipeline", "train_data", "val_data"):
        path = getattr(data, key)
        if path is not None and not path.exists():
            raise ConfigError(f"{where}: data.{key}: file not found: {path}")
