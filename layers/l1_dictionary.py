"""L1 gazetteer: every KB name or alias found in the text (longest match), no model needed."""

from __future__ import annotations

from glinker.config import L1DictionaryConfig
from glinker.contract import LayerContract, LayerSetup, Socket
from glinker.kb.gazetteer import Gazetteer
from glinker.text import facts_of
from glinker.types import L1Output


class DictionaryMentions:
    def __init__(self, config: L1DictionaryConfig, setup: LayerSetup):
        self.config = config
        same_names = {"stop_words", "use_default_stop_words", "entity_types", "canonical_tokens", "abbreviations",
                      "max_name_tokens"}
        self.gazetteer = Gazetteer(setup.kb, min_chars=config.min_entity_length, **config.model_dump(include=same_names))

    def __call__(self, texts: list[str]) -> L1Output:
        c = self.config
        return L1Output([self.gazetteer.find(f.text, c.max_left_context, c.max_right_context, f.abbreviations)
                         for f in facts_of(texts)])


CONTRACT = LayerContract(config=L1DictionaryConfig, inputs={"texts": Socket()}, output=L1Output)


def build(config: L1DictionaryConfig, setup: LayerSetup) -> DictionaryMentions:
    return DictionaryMentions(config, setup)
