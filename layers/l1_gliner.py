"""L1 with GLiNER: zero-shot NER over the whole batch of texts, any length.

Span-level and token-level models, uni- and bi-encoders; a GLiNER-decoder's generated label is kept
on each mention (``generated_label``). Bi-encoder label embeddings are computed once when the layer
is built (dynamic padding) and reused for every batch. Long texts are cut into overlapping word
windows that fit ``max_length``; mentions are mapped back to the original offsets and merged across
windows. Spans across a sentence end or with an unclosed bracket are dropped (``well_formed``).
"""

from __future__ import annotations

from glinker.config import L1GlinerConfig
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.ner import GlinerNER
from glinker.text import well_formed
from glinker.types import L1Output, Mention

from .common import clean_mentions


class GlinerMentions:
    def __init__(self, config: L1GlinerConfig):
        self.config = config
        self.ner = GlinerNER(
            config.model, config.labels, device=config.device, token=config.token, threshold=config.threshold,
            flat_ner=config.flat_ner, multi_label=config.multi_label, batch_size=config.batch_size,
            max_length=config.max_length, overlap=config.window_overlap,
            use_precomputed=config.use_precomputed_embeddings, quantize=config.quantize,
        )

    def __call__(self, texts: list[str]) -> L1Output:
        c = self.config
        return L1Output([
            clean_mentions(
                (Mention.from_span(text, s.start, s.end, label=s.label, score=s.score,
                                   left_chars=c.max_left_context, right_chars=c.max_right_context,
                                   generated_label=s.generated_label)
                 for s in spans if not c.well_formed or well_formed(text[s.start:s.end])),
                c.min_entity_length,
            )
            for text, spans in zip(texts, self.ner.predict(texts), strict=True)
        ])


CONTRACT = LayerContract(config=L1GlinerConfig, inputs={"texts": Socket()}, output=L1Output)


def build(config: L1GlinerConfig, setup: LayerSetup) -> GlinerMentions:
    return GlinerMentions(config)
