"""The data that flows between layers, and the L0 records users read.

Plain slotted dataclasses: cheap to build by the million. Each has ``to_dict()`` and the pydantic-style
``model_dump()`` alias that glinker 0.1.x users call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


class _Record:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_dump(self) -> dict[str, Any]:
        return asdict(self)

    # pydantic v1 spelling, used by 0.1.x code
    dict = model_dump


@dataclass(slots=True)
class Mention(_Record):
    """A span of the original text: ``text == source_text[start:end]``."""

    text: str
    start: int
    end: int
    label: str | None = None
    left_context: str = ""
    right_context: str = ""
    score: float | None = None
    generated_label: str | None = None  # the label a GLiNER-decoder generated for it (L1)

    @classmethod
    def from_span(
        cls,
        source: str,
        start: int,
        end: int,
        label: str | None = None,
        score: float | None = None,
        left_chars: int = 50,
        right_chars: int = 50,
        generated_label: str | None = None,
    ) -> Mention:
        return cls(
            text=source[start:end],
            start=start,
            end=end,
            label=label,
            left_context=source[max(0, start - left_chars) : start],
            right_context=source[end : end + right_chars],
            score=score,
            generated_label=generated_label,
        )


@dataclass(slots=True)
class Candidate(_Record):
    """A KB entity proposed for a mention by L2 (``DatabaseRecord`` in glinker 0.1.x)."""

    entity_id: str
    label: str
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    entity_type: str = ""
    popularity: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    score: float = 0.0
    matched_name: str = ""
    kb_row: int = -1  # its row in the loaded KB (set by L2); -1 for a candidate made outside the pipeline


DatabaseRecord = Candidate


@dataclass(slots=True)
class MentionCandidates(_Record):
    """One mention with its L2 candidates, best first. Groups are listed per text in mention order:
    a group's position there is the mention's index, which L3/L4 links and L0 records carry."""

    mention: Mention
    candidates: list[Candidate]


@dataclass(slots=True)
class L3Entity(_Record):
    """The disambiguation of one mention. ``entity_id`` is None when no candidate passed the threshold.

    ``mention_index`` is the position of its mention among the text's L2 candidate groups (None for
    a link made outside the pipeline, which L0 matches by span instead).
    """

    text: str
    start: int
    end: int
    entity_id: str | None
    label: str
    score: float
    class_probs: dict[str, float] = field(default_factory=dict)
    stage: str = "l3"
    mention_index: int | None = None

    def serves(self, index: int, mention: Mention) -> bool:
        """Whether this is the link of mention ``index`` (by identity; by span for a link made outside)."""
        if self.mention_index is not None:
            return self.mention_index == index
        return (self.start, self.end) == (mention.start, mention.end)


@dataclass(slots=True)
class LinkedEntity(_Record):
    entity_id: str
    label: str
    score: float
    confidence: float
    start: int
    end: int
    matched_text: str


@dataclass(slots=True)
class L0Entity(_Record):
    """One mention as the pipeline finally sees it."""

    mention_text: str
    mention_start: int
    mention_end: int
    label: str | None = None
    left_context: str = ""
    right_context: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    num_candidates: int = 0
    linked_entity: LinkedEntity | None = None
    is_linked: bool = False
    candidate_scores: dict[str, float] = field(default_factory=dict)
    pipeline_stage: str = ""
    mention_index: int | None = None  # its mention's L2 group in the text (None: a link that matched no mention)


@dataclass(slots=True)
class RelationEnd(_Record):
    """The head or tail of a relation: a mention of the text, with its link (``entity_id`` None when unlinked)."""

    text: str
    start: int
    end: int
    entity_id: str | None = None
    mention_index: int | None = None  # its mention's L2 group in the text


@dataclass(slots=True)
class Relation(_Record):
    """A relation between two mentions of a text; their offsets are its evidence."""

    head: RelationEnd
    relation: str
    tail: RelationEnd
    score: float


class _PerText(_Record):
    """A layer output whose first field holds one list per text."""

    __slots__ = ()

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """The output of consecutive batches joined, as one run over all their texts gives it."""
        name = fields(cls)[0].name
        return cls([per_text for part in parts for per_text in getattr(part, name)])


@dataclass(slots=True)
class L1Output(_PerText):
    entities: list[list[Mention]]


@dataclass(slots=True)
class L2Output(_PerText):
    candidates: list[list[MentionCandidates]]


@dataclass(slots=True)
class L3Output(_PerText):
    entities: list[list[L3Entity]]

    @classmethod
    def aligned(cls, entities: list[list[L3Entity]]) -> L3Output:
        """Links made one per candidate group, in the groups' order: each gets its mention's index."""
        for per_text in entities:
            for index, entity in enumerate(per_text):
                entity.mention_index = index
        return cls(entities)


@dataclass(slots=True)
class RelationsOutput(_PerText):
    relations: list[list[Relation]]


@dataclass(slots=True)
class L0Output(_PerText):
    entities: list[list[L0Entity]]
    stats: dict[str, Any] = field(default_factory=dict)
    relations: list[list[Relation]] | None = None  # per text, when the pipeline has a relations layer

    @classmethod
    def concat(cls, parts: list[L0Output]) -> L0Output:
        relations = None
        if parts[0].relations is not None:
            relations = [per_text for part in parts for per_text in part.relations]
        return cls.counted([per_text for part in parts for per_text in part.entities], relations)

    @classmethod
    def counted(cls, entities: list[list[L0Entity]], relations: list[list[Relation]] | None = None) -> L0Output:
        """The records with their ``stats``: texts, mentions, linked, unlinked and the linking rate."""
        total = sum(len(r) for r in entities)
        linked = sum(e.is_linked for r in entities for e in r)
        stats = {
            "total_texts": len(entities),
            "total_mentions": total,
            "linked": linked,
            "unlinked": total - linked,
            "linking_rate": linked / total if total else 0.0,
        }
        return cls(entities, stats, relations)
