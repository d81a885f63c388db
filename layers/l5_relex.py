"""L5 with GLiNER-relex: relations between the mentions of each text, grounded in their links.

The relex model reads each text in word windows (as ``l1_gliner`` does) with the entity types and
relation labels of the config in its prompt; its entities are restricted to the text's mentions
(gliner's ``input_spans``), so every head and tail is a mention, carrying its link's entity id
(None when unlinked). A relation found in several overlapping windows is taken from the one where
its two mentions lie farthest from the window's edges (the earlier window on a tie).
"""

from __future__ import annotations

from glinker.config import L5RelexConfig
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.errors import InputError
from glinker.models.gliner import Row, Words
from glinker.models.relex import RelexSettings, get_relex
from glinker.types import L3Entity, MentionCandidates, Relation, RelationEnd, RelationsOutput

# (head mention, relation, tail mention) -> (margin, -row, score): the best window's score of a relation
Found = dict[tuple[int, str, int], tuple[int, int, float]]


class RelexRelations:
    def __init__(self, config: L5RelexConfig):
        c = config
        self.model = get_relex(c.model, device=c.device, token=c.token)
        self.settings = RelexSettings(
            list(dict.fromkeys(c.labels)), list(dict.fromkeys(c.relations)), c.threshold, c.relation_threshold,
            c.adjacency_threshold, c.flat_ner, c.multi_label,
        )
        s = self.settings
        prompt = self.model.relex_prompt_tokens(s.labels, s.relations)
        what = f"{len(s.labels)} labels and {len(s.relations)} relations"
        self.budget = self.model.text_budget(c.max_length, prompt, what)
        self.batch_size = c.batch_size
        self.overlap = c.window_overlap

    def __call__(self, texts: list[str], l2_candidates: list[list[MentionCandidates]],
                 l3_entities: list[list[L3Entity]] | None = None) -> RelationsOutput:
        for name, value in (("l2_candidates", l2_candidates), ("l3_entities", l3_entities)):
            if value is not None and len(value) != len(texts):
                raise InputError(f"l5_relex: {name} has {len(value)} texts, texts {len(texts)}")
        model = self.model
        words = model.words(texts)
        rows, spans = self._rows(words, l2_candidates)
        found: list[Found] = [{} for _ in texts]

        def decode(idx):
            return model.relex([rows[i] for i in idx], words, self.settings, [list(spans[i]) for i in idx])

        for idx, (entities, relations) in model.batched(decode, model.row_lengths(rows, words), self.batch_size):
            for i, row_entities, row_relations in zip(idx, entities, relations, strict=True):
                _collect(found[rows[i].text], rows[i], int(i), spans[i], row_entities, row_relations)
        out = []
        for t, per_text in enumerate(found):
            links = _links(l2_candidates[t], l3_entities[t] if l3_entities is not None else [])
            out.append(_relations(per_text, l2_candidates[t], links))
        return RelationsOutput(out)

    def _rows(self, words: list[Words], groups: list[list[MentionCandidates]]) -> tuple[list[Row], list[dict]]:
        """The windows of each text that hold two mentions or more, with their mentions' word spans
        (relative to the window, last word inclusive) mapped to the mention's index."""
        rows, spans = [], []
        for t, w in enumerate(words):
            mention_words = []
            for j, group in enumerate(groups[t]):
                first, last = w.word_span(group.mention.start, group.mention.end)
                if 0 <= first <= last < len(w):  # a mention over whitespace only covers no word
                    mention_words.append((first, last, j))
            for lo, hi in self.model.windows(w, self.budget, self.overlap):
                inside: dict[tuple[int, int], int] = {}
                for first, last, j in mention_words:
                    if lo <= first and last < hi:
                        inside.setdefault((first - lo, last - lo), j)
                if len(inside) > 1:
                    rows.append(Row(t, lo, hi))
                    spans.append(inside)
        return rows, spans


def _collect(found: Found, row: Row, row_index: int, spans: dict, entities: list, relations: list) -> None:
    """Keep each relation of a window unless another window holds it farther from its edges."""
    width = row.hi - row.lo
    for head, label, tail, score in relations:
        h, t = entities[head], entities[tail]
        margin = min(min(h.start, t.start), width - 1 - max(h.end, t.end))
        key = (spans[(h.start, h.end)], label, spans[(t.start, t.end)])
        candidate = (margin, -row_index, float(score))
        if key not in found or candidate > found[key]:
            found[key] = candidate


def _links(groups: list[MentionCandidates], links: list[L3Entity]) -> dict[int, str | None]:
    """The linked entity id of each mention index (a link made outside the pipeline serves by span)."""
    by_index = {link.mention_index: link.entity_id for link in links if link.mention_index is not None}
    by_span = {(link.start, link.end): link.entity_id for link in links if link.mention_index is None}
    return {j: by_index[j] if j in by_index else by_span.get((g.mention.start, g.mention.end))
            for j, g in enumerate(groups)}


def _relations(found: Found, groups: list[MentionCandidates], links: dict[int, str | None]) -> list[Relation]:
    def end(j: int) -> RelationEnd:
        m = groups[j].mention
        return RelationEnd(m.text, m.start, m.end, links.get(j), j)

    relations = [Relation(end(head), label, end(tail), score) for (head, label, tail), (_, _, score) in found.items()]
    relations.sort(key=lambda r: (r.head.start, r.head.end, r.tail.start, r.tail.end, r.relation))
    return relations


CONTRACT = LayerContract(
    config=L5RelexConfig,
    inputs={
        "texts": Socket(),
        "l2_candidates": Socket(MentionCandidates),
        "l3_entities": Socket(L3Entity, required=False),
    },
    output=RelationsOutput,
)


def build(config: L5RelexConfig, setup: LayerSetup) -> RelexRelations:
    return RelexRelations(config)
