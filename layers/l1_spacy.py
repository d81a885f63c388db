"""L1 with spaCy: named entities (and optionally noun chunks) of every text, one ``nlp.pipe`` per batch.

Only the components NER (and noun chunks) need are run. Texts longer than spaCy's window are cut
at paragraph/sentence boundaries and their offsets mapped back.
"""

from __future__ import annotations

from glinker.config import L1SpacyConfig
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.models.resolve import load_spacy
from glinker.text import char_windows
from glinker.types import L1Output, Mention

from .common import clean_mentions

WINDOW_CHARS = 100_000


class SpacyMentions:
    def __init__(self, config: L1SpacyConfig):
        self.config = config
        self.nlp = load_spacy(config.model)
        self.nlp.max_length = WINDOW_CHARS + 1
        needed = {"ner"}
        if config.include_noun_chunks:
            needed |= {"tok2vec", "tagger", "attribute_ruler", "parser", "senter"}
        if "tok2vec" in self.nlp.pipe_names:
            listeners = getattr(self.nlp.get_pipe("tok2vec"), "listening_components", [])
            if needed & set(listeners):
                needed.add("tok2vec")
        self.disabled = [name for name in self.nlp.pipe_names if name not in needed]
        self.types = set(config.entity_types) if config.entity_types else None
        self.excluded = set(config.exclude_types)

    def __call__(self, texts: list[str]) -> L1Output:
        pieces = [(i, offset, piece) for i, text in enumerate(texts) for offset, piece in char_windows(text, WINDOW_CHARS)]
        found: list[list[Mention]] = [[] for _ in texts]
        docs = self.nlp.pipe((p for _, _, p in pieces), batch_size=self.config.batch_size, disable=self.disabled)
        for (i, offset, _), doc in zip(pieces, docs, strict=True):
            spans = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
            if self.config.include_noun_chunks and doc.has_annotation("DEP"):
                spans += [(c.start_char, c.end_char, "NOUN_CHUNK") for c in doc.noun_chunks]
            for start, end, label in spans:
                if label in self.excluded or (self.types is not None and label not in self.types):
                    continue
                found[i].append(
                    Mention.from_span(
                        texts[i], offset + start, offset + end, label=label,
                        left_chars=self.config.max_left_context, right_chars=self.config.max_right_context,
                    )
                )
        return L1Output([clean_mentions(m, self.config.min_entity_length) for m in found])


CONTRACT = LayerContract(config=L1SpacyConfig, inputs={"texts": Socket()}, output=L1Output)


def build(config: L1SpacyConfig, setup: LayerSetup) -> SpacyMentions:
    return SpacyMentions(config)
