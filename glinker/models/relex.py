"""GLiNER-relex models (``UniEncoderSpanRelex`` / ``UniEncoderTokenRelex``) through the ``gliner`` package.

A relex model is a GLiNER that also scores relations between the entities it finds: its prompt lists
the entity types, then the relation labels. Words, windows and loading are GLiNER's
(glinker/models/gliner.py); the forward pass and decoding are gliner's own, so the relations of a
window are those ``GLiNER.inference`` gives for that window's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .gliner import GlinerModel, Row, Words


@dataclass(frozen=True)
class RelexSettings:
    """The labels and thresholds of one relex layer (the arguments of gliner's ``inference``)."""

    labels: list[str]
    relations: list[str]
    threshold: float = 0.5
    relation_threshold: float | None = None
    adjacency_threshold: float | None = None
    flat_ner: bool = True
    multi_label: bool = False


class RelexModel(GlinerModel):
    """A loaded GLiNER-relex model (one per model and device)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relex_collator = self.model.create_collator()

    def load(self, resolved, token):
        model = super().load(resolved, token)
        if getattr(model.config, "relations_layer", None) is None:
            raise ConfigError(f"GLiNER model {self.name!r} is not a relex model (its config sets no relations_layer); "
                              "l5_relex needs a GLiNER-relex model")
        return model

    def relex_prompt_tokens(self, labels: Sequence[str], relations: Sequence[str]) -> int:
        """Tokens of the prompt (entity types, then relation labels) before each window's words."""
        c = self.config
        prompt = [p for label in labels for p in (c.ent_token, label)] + [c.sep_token]
        prompt += [p for relation in relations for p in (c.rel_token, relation)] + [c.sep_token]
        with self.lock:
            return len(self.tokenizer(prompt, is_split_into_words=True, add_special_tokens=False)["input_ids"])

    def relex(self, rows: Sequence[Row], words: Sequence[Words], settings: RelexSettings,
              spans: Sequence[list[tuple[int, int]]]) -> tuple[list, list]:
        """gliner's entities and relations of each row, its entities restricted to ``spans`` (words of the
        row, last inclusive). Relations are ``(head, label, tail, score)``, head and tail indices into
        the row's entities."""
        s = settings
        input_x = [{"tokenized_text": words[r.text].tokens[r.lo : r.hi], "ner": None} for r in rows]
        with self.lock:
            batch = self.model.collate_batch(input_x, s.labels, self.relex_collator, s.relations)
        threshold = s.threshold
        adjacency = threshold if s.adjacency_threshold is None else s.adjacency_threshold
        output = self.model.run_batch(batch, threshold=threshold, adjacency_threshold=adjacency)
        return self.model.decode_batch(
            output, batch, threshold=threshold,
            relation_threshold=threshold if s.relation_threshold is None else s.relation_threshold,
            flat_ner=s.flat_ner, multi_label=s.multi_label, input_spans=list(spans),
        )


def get_relex(name: str, device: str = "cpu", token: str | None = None) -> RelexModel:
    """One loaded relex model per (model, device), shared by every layer and executor."""
    return RelexModel.get(name, device, token)
