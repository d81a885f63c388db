"""GLiNER through the ``gliner`` package: offline loading, GLiNER's words and windows, label
embeddings and the model calls that NER (glinker/ner.py) and span linking (glinker/linking/gliner.py) share.

Texts are split into GLiNER's own words once; a text longer than the model window is cut into
word windows that fit ``max_length`` tokens (and GLiNER's ``max_len`` words), overlapping by at
least twice the widest span, so no mention is lost to truncation. Offsets always map back to the
original text. ``span_logits`` scores fixed spans only: for the marker span modes, representations
are computed for those spans alone, not for every span of the text.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, InputError, LimitError
from .base import EntityTextEncoder, LoadedModel
from .quantize import gliner_not_int8, quantize_loaded
from .resolve import ResolvedModel

# span modes whose representation of a span depends on its two ends only (plus the whole text)
MARKER_SPAN_MODES = ("marker", "markerV0", "markerV1", "markerV2")


@dataclass(frozen=True)
class Words:
    """GLiNER's words of one text: character offsets and cumulative subword token counts."""

    tokens: list[str]
    starts: np.ndarray
    ends: np.ndarray
    cum: np.ndarray  # cum[i] = subword tokens of words[:i]

    def __len__(self) -> int:
        return len(self.tokens)

    def word_span(self, start: int, end: int) -> tuple[int, int]:
        """The words (first, last inclusive) covering characters ``[start, end)``; ``first > last`` when
        the characters cover no word (whitespace only)."""
        first = int(np.searchsorted(self.ends, start, side="right"))
        last = int(np.searchsorted(self.starts, end, side="left")) - 1
        return first, last


@dataclass
class Row:
    """One model input: a word window of a text, the spans to score in it, and their labels."""

    text: int
    lo: int
    hi: int
    labels: list[str] = field(default_factory=list)  # prompt labels (uni-encoder) or candidate keys (bi-encoder)
    prompt: int = 0  # tokens of the prompt
    spans: list[tuple[int, int]] = field(default_factory=list)  # words relative to ``lo``, end inclusive
    targets: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # mention, positions, label idx


class GlinerModel(LoadedModel):
    """A loaded GLiNER model with the helpers NER and linking share (one per model and device)."""

    def __init__(self, name: str, device: str = "cpu", token: str | None = None, quantize: str = "none"):
        self.quantize = quantize
        super().__init__(name, device, token)
        self.config = self.model.config
        self.is_bi = getattr(self.config, "labels_encoder", None) is not None
        self.token_level = self.config.span_mode == "token_level"  # start/inside/end tags: spans of any width
        self.generates_labels = getattr(self.config, "labels_decoder", None) is not None  # GLiNER-decoder
        self.tokenizer = self.model.data_processor.transformer_tokenizer
        self.max_width = int(self.config.max_width)
        self.max_words = int(self.config.max_len)
        self._collators = {}
        from gliner.modeling.context_encoders import IdentityContextEncoder

        context = getattr(getattr(self.model.model, "span_rep_layer", None), "context_encoder", None)
        # these span modes read a span's two end words only: linking projects just those words
        self.ends_only = self.config.span_mode in ("marker", "markerV0") and isinstance(context, IdentityContextEncoder)

    def load(self, resolved: ResolvedModel, token: str | None):
        from gliner import GLiNER

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = GLiNER.from_pretrained(resolved.load_target, local_files_only=resolved.path is not None,
                                           token=token, map_location=self.device)
        return quantize_loaded(self, model, resolved.path, not_int8=gliner_not_int8)

    # ------------------------------------------------------------------ words and windows

    def words(self, texts: Sequence[str]) -> list[Words]:
        """Split texts with GLiNER's word splitter; count subword tokens per word in one tokenizer call."""
        split = [list(self.model.data_processor.words_splitter(t)) for t in texts]
        tokens = [[w for w, _, _ in ws] for ws in split]
        nonempty = [i for i, t in enumerate(tokens) if t]
        counts = {}
        if nonempty:
            with self.lock:
                enc = self.tokenizer([tokens[i] for i in nonempty], is_split_into_words=True,
                                     add_special_tokens=False, verbose=False)
            for k, i in enumerate(nonempty):
                ids = np.array([w for w in enc.word_ids(k) if w is not None], dtype=np.int64)
                counts[i] = np.bincount(ids, minlength=len(tokens[i]))
        out = []
        for i, ws in enumerate(split):
            per_word = counts.get(i, np.zeros(0, dtype=np.int64))
            out.append(Words(tokens[i], np.array([s for _, s, _ in ws], dtype=np.int64),
                             np.array([e for _, _, e in ws], dtype=np.int64),
                             np.concatenate([[0], np.cumsum(per_word)]).astype(np.int64)))
        return out

    def prompt_tokens(self, label_sets: Sequence[Sequence[str]]) -> list[int]:
        """Tokens a uni-encoder prompt of each label set takes (0 for bi-encoders: labels are encoded apart)."""
        if self.is_bi or not label_sets:
            return [0] * len(label_sets)
        ent, sep = self.config.ent_token, self.config.sep_token
        prompts = [[piece for label in labels for piece in (ent, label)] + [sep] for labels in label_sets]
        with self.lock:
            enc = self.tokenizer(prompts, is_split_into_words=True, add_special_tokens=False)
        return [len(ids) for ids in enc["input_ids"]]

    def text_budget(self, max_length: int | None, prompt_tokens: int, what: str) -> int:
        """Subword tokens left for text in one window; a prompt over half the window is a LimitError."""
        limit = min(max_length or self.tokenizer.model_max_length, self.tokenizer.model_max_length)
        limit -= self.tokenizer.num_special_tokens_to_add(pair=False)
        if prompt_tokens > limit // 2:
            raise LimitError(
                f"GLiNER model {self.name!r}: the prompt of {what} takes {prompt_tokens} tokens, more than half of "
                f"the {limit}-token window (max_length); use fewer labels per prompt (max_labels / top_k), "
                "a shorter template, or a bi-encoder model"
            )
        return limit - prompt_tokens

    def windows(self, words: Words, budget: int, overlap: int) -> list[tuple[int, int]]:
        """Consecutive word windows ``[lo, hi)`` that fit ``budget`` tokens, sharing ``overlap`` words."""
        n, cum, out, lo = len(words), words.cum, [], 0
        overlap = max(overlap, 2 * self.max_width)
        while lo < n:
            fit = int(np.searchsorted(cum, cum[lo] + budget, side="right")) - 1
            hi = max(lo + 1, min(fit, lo + self.max_words, n))
            out.append((lo, hi))
            if hi >= n:
                break
            lo = max(hi - overlap, lo + 1)
        return out

    def window_around(self, words: Words, first: int, last: int, budget: int) -> tuple[int, int]:
        """The window ``[lo, hi)`` that fits ``budget`` tokens with words ``first..last`` in its middle."""
        cum, n = words.cum, len(words)
        half_tokens = max(0, budget - int(cum[last + 1] - cum[first])) // 2
        half_words = max(0, self.max_words - (last + 1 - first)) // 2
        lo = max(0, first - half_words, int(np.searchsorted(cum, cum[first] - half_tokens, side="left")))
        hi = min(n, lo + self.max_words, int(np.searchsorted(cum, cum[lo] + budget, side="right")) - 1)
        hi = max(hi, last + 1)
        lo = min(lo, max(0, hi - self.max_words, int(np.searchsorted(cum, cum[hi] - budget, side="left"))))
        return lo, hi

    @staticmethod
    def row_lengths(rows: Sequence[Row], words: Sequence[Words]) -> list[int]:
        """Tokens of each row (its window and prompt), for batching rows of similar length."""
        return [int(words[r.text].cum[r.hi] - words[r.text].cum[r.lo]) + r.prompt for r in rows]

    def mention_words(self, words: Words, start: int, end: int, where: str) -> tuple[int, int]:
        """The words (first, last inclusive) of the mention at ``[start, end)`` that GLiNER can score: at most
        ``max_width`` of them (the first ones) for span models, all for token-level models. A mention that
        covers no word is an InputError naming it (``where``)."""
        first, last = words.word_span(start, end)
        if first > last:
            raise InputError(f"{where}: the mention at {start}:{end} covers no word (only whitespace); "
                             "GLiNER cannot score it")
        return first, last if self.token_level else min(last, first + self.max_width - 1)

    # ------------------------------------------------------------------ model calls

    def encode_labels(self, labels: Sequence[str], batch_size: int = 64, progress: bool = False,
                      desc: str = "embedding labels") -> np.ndarray:
        """Label vectors of a bi-encoder, tokenised with dynamic padding (same vectors as GLiNER's
        ``encode_labels``, which pads every label to 512 tokens)."""
        if not self.is_bi:
            raise ConfigError(f"GLiNER model {self.name!r} is a uni-encoder: it has no label encoder")
        tokenizer = self.model.data_processor.labels_tokenizer
        out = np.zeros((len(labels), self.label_dim), dtype=np.float32)
        if not labels:
            return out
        with self.lock:
            encoded = tokenizer(list(labels), truncation=True)

        def embed(idx: np.ndarray) -> np.ndarray:
            with self.lock:
                batch = tokenizer.pad({k: [encoded[k][i] for i in idx] for k in encoded}, return_tensors="pt")
            with self.torch.inference_mode():
                return self.model.model.token_rep_layer.encode_labels(**batch.to(self.device)).float().cpu().numpy()

        return self.gather(out, embed, [len(ids) for ids in encoded["input_ids"]], batch_size, progress=progress,
                           desc=desc, unit="label")

    @property
    def label_dim(self) -> int:
        return int(self.config.hidden_size)

    def collate(self, rows: Sequence[Row], words: Sequence[Words], label_sets, label_vectors: bool) -> dict:
        """GLiNER's own collation of word windows; label text is tokenised only when GLiNER must encode it."""
        key = not label_vectors
        if key not in self._collators:
            self._collators[key] = self.model.data_collator_class(
                self.config, data_processor=self.model.data_processor, return_tokens=True,
                return_id_to_classes=True, return_entities=True, prepare_labels=False, prepare_entities=key,
            )
        # the words of each window are handed over as they are, like GLiNER's own inference does
        input_x = [{"tokenized_text": words[r.text].tokens[r.lo : r.hi], "ner": None} for r in rows]
        with self.lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.model.collate_batch(input_x, label_sets, self._collators[key])

    def run(self, batch: dict, threshold: float = 0.0, label_vectors=None, label_mask=None):
        """GLiNER's forward pass over a collated batch (all spans, all labels)."""
        if self.generates_labels:
            return self._run_generating(batch, threshold)
        extra = {}
        if label_vectors is not None:
            extra["labels_embeds"] = label_vectors
            if label_mask is not None:
                extra["prompts_embedding_mask"] = label_mask
        return self.model.run_batch(batch, threshold=threshold, **extra)

    def _run_generating(self, batch: dict, threshold: float):
        """A GLiNER-decoder's forward pass, then its labels for the spans over ``threshold``, generated greedily
        so that runs repeat; none when no span passed (gliner's own ``run_batch`` fails on such a batch)."""
        torch = self.torch
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.inference_mode():
            output = self.model.model(**batch, threshold=threshold)
            mask = output.decoder_embedding_mask
            found = output.decoder_embedding is not None and mask is not None and bool(mask.any())
            output.gen_labels = self.model.generate_labels(output, do_sample=False) if found else []
        output.num_gen_sequences = 1
        return output

    def token_inputs(self, rows: Sequence[Row], words: Sequence[Words]) -> dict:
        """The token inputs of word windows (after each row's label prompt, for uni-encoders) made by
        GLiNER's own tokenisation, without the collator's enumeration of every span of every window."""
        windows = [words[r.text].tokens[r.lo : r.hi] for r in rows]
        processor = self.model.data_processor
        with self.lock:
            if self.is_bi:
                inputs = processor.tokenize_inputs(windows)
            else:
                inputs = processor.tokenize_inputs(windows, [r.labels for r in rows])
        lengths = [len(w) for w in windows]
        inputs["text_lengths"] = self.torch.tensor(lengths, dtype=self.torch.long).unsqueeze(-1)
        inputs["word_lengths"] = lengths
        inputs["token_lengths"] = inputs["attention_mask"].sum(dim=-1).tolist()
        return inputs

    def span_logits(self, rows: Sequence[Row], words: Sequence[Words], label_vectors=None, label_mask=None):
        """Logits ``[B, S, C]`` of each row's spans against the row's labels (its prompt for uni-encoders,
        ``label_vectors`` for bi-encoders).

        Marker span modes compute representations for these spans only (from their end words alone
        where that is all the mode reads); other span modes run the full forward pass and pick the
        spans out of it; token-level models score each span, whole, from its words' start, end and
        inside logits.
        """
        torch = self.torch
        width = self.max_width
        spans = [r.spans for r in rows]
        n_spans = max(1, max(len(s) for s in spans))
        padded = -(-n_spans // width) * width
        idx = torch.zeros(len(spans), padded, 2, dtype=torch.long)
        for b, row_spans in enumerate(spans):
            if row_spans:
                idx[b, : len(row_spans)] = torch.tensor(row_spans, dtype=torch.long)
        if self.config.span_mode not in MARKER_SPAN_MODES:
            batch = self.collate(rows, words, [] if self.is_bi else [r.labels for r in rows], self.is_bi)
            logits = self.run(batch, 0.0, label_vectors, label_mask).logits
            if self.token_level:
                return _token_span_logits(logits, spans, n_spans)
            in_batch = torch.arange(len(spans)).unsqueeze(1)
            return logits[in_batch, idx[..., 0], (idx[..., 1] - idx[..., 0]).clamp(0, width - 1)][:, :n_spans]
        core = self.model.model
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                  for k, v in self.token_inputs(rows, words).items()}
        kwargs = {k: inputs[k] for k in ("token_lengths", "word_lengths") if k in inputs}
        if self.is_bi:
            kwargs.update(labels_embeds=label_vectors, prompts_embedding_mask=label_mask)
        with torch.inference_mode():
            reps = core.get_representations(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                text_lengths=inputs["text_lengths"], words_mask=inputs["words_mask"], **kwargs,
            )
            word_reps, idx = reps.words_embedding, idx.to(self.device)
            if self.ends_only:
                ends = idx.reshape(len(spans), -1)
                word_reps = torch.gather(word_reps, 1, ends.unsqueeze(-1).expand(-1, -1, word_reps.shape[-1]))
                idx = torch.arange(ends.shape[1], device=self.device).reshape(1, padded, 2).expand(len(spans), -1, -1)
            span_rep = core.span_rep_layer(word_reps, idx).reshape(len(spans), padded, -1)[:, :n_spans]
            prompts = core.prompt_rep_layer(reps.prompts_embedding)
            return torch.einsum("BSD,BCD->BSC", span_rep, prompts)


def _token_span_logits(logits, spans: list[list[tuple[int, int]]], n_spans: int):
    """Logits ``[B, S, C]`` of fixed spans from token-level logits ``[B, L, C, (start, end, inside)]``: the
    least of the first word's start, the last word's end and every word's inside logit, as gliner's
    TokenDecoder scores a span (the least of their sigmoids)."""
    out = logits.new_zeros(len(spans), n_spans, logits.shape[2])
    for b, row_spans in enumerate(spans):
        for s, (first, last) in enumerate(row_spans):
            inside = logits[b, first : last + 1, :, 2].amin(dim=0)
            out[b, s] = logits[b, first, :, 0].minimum(logits[b, last, :, 1]).minimum(inside)
    return out


def get_gliner(name: str, device: str = "cpu", token: str | None = None, quantize: str = "none") -> GlinerModel:
    """One loaded GLiNER per (model, device, quantize), shared by every layer and executor."""
    return GlinerModel.get(name, device, token, quantize=quantize)


def label_encoder(model: GlinerModel) -> EntityTextEncoder:
    """The label encoder of a bi-encoder GLiNER, as an encoder of KB entity texts."""
    return EntityTextEncoder("gliner-labels", model, model.encode_labels, model.label_dim)
