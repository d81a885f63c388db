"""GLiNER through the ``gliner`` package: offline loading, label embeddings, NER and span linking.

Texts are split into GLiNER's own words once; a text longer than the model window is cut into
word windows that fit ``max_length`` tokens (and GLiNER's ``max_len`` words), overlapping by at
least twice the widest span, so no mention is lost to truncation. Offsets always map back to the
original text.

Linking scores a fixed mention span only against its own candidates: span representations are
computed for the mention spans alone (for the marker span modes), not for every span of the text.
Bi-encoders take their label vectors from the KB (``use_precomputed``) or embed them with dynamic
padding; uni-encoders put a mention's candidates in the prompt, ``max_labels`` at a time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, LimitError
from ..types import Candidate, MentionCandidates
from .batching import length_batches, model_workers, run_batches
from .resolve import canonical_name, resolve_model
from .scorers import candidate_text, candidate_vectors

# span modes whose representation of a span depends on its two ends only (plus the whole text)
MARKER_SPAN_MODES = ("marker", "markerV0", "markerV1", "markerV2")

_CACHE: dict[tuple[str, str], GlinerModel] = {}
_CACHE_LOCK = threading.Lock()


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
        """The words (first, last inclusive) covering characters ``[start, end)``."""
        first = int(np.searchsorted(self.ends, start, side="right"))
        last = int(np.searchsorted(self.starts, end, side="left")) - 1
        return first, max(first, last)


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


class GlinerModel:
    """A loaded GLiNER model with the helpers NER and linking share (one per model and device)."""

    def __init__(self, name: str, device: str = "cpu", token: str | None = None):
        import torch
        from gliner import GLiNER

        resolved = resolve_model(name, token)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = GLiNER.from_pretrained(
                resolved.load_target, local_files_only=resolved.path is not None, token=token, map_location=device
            )
        self.model.to(device).eval()
        self.torch = torch
        self.name = name
        self.model_id = canonical_name(name)
        self.device = device
        self.config = self.model.config
        self.is_bi = getattr(self.config, "labels_encoder", None) is not None
        self.tokenizer = self.model.data_processor.transformer_tokenizer
        self.max_width = int(self.config.max_width)
        self.max_words = int(self.config.max_len)
        self.lock = threading.Lock()  # GLiNER's tokenizers and collators: one thread at a time
        self.workers = model_workers(device)
        self._collators = {}
        from gliner.modeling.context_encoders import IdentityContextEncoder

        context = getattr(getattr(self.model.model, "span_rep_layer", None), "context_encoder", None)
        # these span modes read a span's two end words only: linking projects just those words
        self.ends_only = self.config.span_mode in ("marker", "markerV0") and isinstance(context, IdentityContextEncoder)

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

    def batches(self, rows: Sequence[Row], words: Sequence[Words], size: int) -> list[np.ndarray]:
        """Row indices in batches of ``size``, similar lengths together (less padding)."""
        return length_batches([int(words[r.text].cum[r.hi] - words[r.text].cum[r.lo]) + r.prompt for r in rows], size)

    def clip(self, first: int, last: int) -> tuple[int, int]:
        """A span GLiNER can represent: at most ``max_width`` words (the first ones)."""
        return first, min(last, first + self.max_width - 1)

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

        batches = length_batches([len(ids) for ids in encoded["input_ids"]], batch_size)
        for idx, vectors in run_batches(embed, batches, self.workers, progress, desc, "label"):
            out[idx] = vectors
        return out

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
        extra = {}
        if label_vectors is not None:
            extra["labels_embeds"] = label_vectors
            if label_mask is not None:
                extra["prompts_embedding_mask"] = label_mask
        return self.model.run_batch(batch, threshold=threshold, **extra)

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
        spans out of it.
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


def get_gliner(name: str, device: str = "cpu", token: str | None = None) -> GlinerModel:
    """One loaded GLiNER per (model, device), shared by every layer and executor."""
    key = (canonical_name(name), device)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = GlinerModel(name, device=device, token=token)
        return _CACHE[key]


class GlinerLabelEncoder:
    """The label encoder of a bi-encoder GLiNER, as an encoder of KB entity texts (``KnowledgeBase.vectors``)."""

    def __init__(self, gliner: GlinerModel):
        self.gliner = gliner
        self.model_id = f"gliner-labels:{gliner.model_id}"
        self.dim = gliner.label_dim

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
               desc: str = "embedding labels") -> np.ndarray:
        return self.gliner.encode_labels(texts, batch_size=batch_size, progress=progress, desc=desc)


class GlinerNER:
    """Zero-shot NER over a batch of texts of any length; spans are ``(start, end, label, score)``."""

    def __init__(self, name: str, labels: Sequence[str], device: str = "cpu", token: str | None = None,
                 threshold: float = 0.3, flat_ner: bool = True, multi_label: bool = False, batch_size: int = 16,
                 max_length: int | None = 512, overlap: int = 32, use_precomputed: bool = True):
        self.gliner = get_gliner(name, device=device, token=token)
        self.labels = list(dict.fromkeys(labels))
        self.threshold = threshold
        self.flat_ner = flat_ner
        self.multi_label = multi_label
        self.batch_size = batch_size
        self.overlap = overlap
        prompt = self.gliner.prompt_tokens([self.labels])[0]
        self.budget = self.gliner.text_budget(max_length, prompt, f"{len(self.labels)} labels")
        self.vectors = None
        if self.gliner.is_bi and use_precomputed:
            self.vectors = self.gliner.torch.from_numpy(self.gliner.encode_labels(self.labels)).to(device)

    def predict(self, texts: Sequence[str]) -> list[list[tuple[int, int, str, float]]]:
        gliner = self.gliner
        words = gliner.words(texts)
        rows, owned, windows_of = [], [], []
        for t, w in enumerate(words):
            wins = gliner.windows(w, self.budget, self.overlap)
            windows_of.append(len(wins))
            for k, (lo, hi) in enumerate(wins):
                own_lo = 0 if k == 0 else (wins[k - 1][1] + lo) // 2
                own_hi = len(w) if k == len(wins) - 1 else (hi + wins[k + 1][0]) // 2
                rows.append(Row(t, lo, hi))
                owned.append((own_lo, own_hi))
        found: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]

        def decode(idx: np.ndarray) -> list:
            batch = gliner.collate([rows[i] for i in idx], words, self.labels, self.vectors is not None)
            output = gliner.run(batch, self.threshold, self.vectors)
            return gliner.model.decode_batch(output, batch, threshold=self.threshold, flat_ner=self.flat_ner,
                                             multi_label=self.multi_label)

        for idx, decoded in run_batches(decode, gliner.batches(rows, words, self.batch_size), gliner.workers):
            for i, spans in zip(idx, decoded, strict=True):
                row, (own_lo, own_hi) = rows[i], owned[i]
                w = words[row.text]
                for span in spans:
                    first, last = row.lo + span.start, row.lo + span.end
                    if own_lo <= first < own_hi:
                        found[row.text].append(
                            (int(w.starts[first]), int(w.ends[last]), span.entity_type, float(span.score))
                        )
        if self.flat_ner:
            found = [_non_overlapping(s, self.multi_label) if n > 1 else s for s, n in zip(found, windows_of, strict=True)]
        # by position, the best label of a span first
        return [sorted(spans, key=lambda s: (s[0], s[1], -s[3], s[2])) for spans in found]


def _non_overlapping(spans: list[tuple[int, int, str, float]], multi_label: bool) -> list[tuple[int, int, str, float]]:
    """Best-scoring spans that do not overlap (the same span with several labels may stay if ``multi_label``)."""
    import bisect

    starts: list[int] = []
    kept: list[tuple[int, int, str, float]] = []
    for span in sorted(spans, key=lambda s: (-s[3], s[0], s[1], s[2])):
        start, end = span[0], span[1]
        pos = bisect.bisect_left(starts, start)
        neighbours = kept[max(0, pos - 1) : pos + 1]
        if all(o[1] <= start or end <= o[0] or (multi_label and (o[0], o[1]) == (start, end)) for o in neighbours):
            starts.insert(pos, start)
            kept.insert(pos, span)
    return kept


class GlinerLinkScorer:
    """L3/L4 backend "gliner": each mention span, fixed, scored against its own candidates only."""

    def __init__(self, kb, model_name: str, template: str, device: str = "cpu", max_length: int | None = 512,
                 batch_size: int = 32, token: str | None = None, max_labels: int | None = None,
                 use_precomputed: bool = True, cache_embeddings: bool = False):
        self.kb = kb
        self.gliner = get_gliner(model_name, device=device, token=token)
        if self.gliner.config.span_mode == "token_level":
            raise ConfigError(
                f"GLiNER model {model_name!r} is token-level; linking scores fixed spans and needs a span model"
            )
        self.template = template
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_labels = max_labels
        self.use_precomputed = use_precomputed
        self.cache: dict[str, np.ndarray] | None = {} if cache_embeddings else None
        self.label_encoder = GlinerLabelEncoder(self.gliner) if self.gliner.is_bi else None

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Embed every KB entity with the label encoder (bi-encoders with precomputed embeddings only)."""
        if self.label_encoder is None or not self.use_precomputed:
            return 0
        vectors = self.kb.vectors(self.label_encoder, "labels", self.template, batch_size=batch_size, progress=progress)
        return len(vectors.matrix)

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention."""
        out = [[np.zeros(len(g.candidates), dtype=np.float32) for g in per_text] for per_text in groups]
        if not any(g.candidates for per_text in groups for g in per_text):
            return out
        words = self.gliner.words(texts)
        if self.gliner.is_bi:
            rows, candidates = self._bi_rows(groups, words)
        else:
            rows, candidates = self._uni_rows(groups, words), {}
        torch = self.gliner.torch

        def probabilities(idx: np.ndarray) -> np.ndarray:
            batch_rows = [rows[i] for i in idx]
            vectors, mask = self._row_vectors(batch_rows, candidates) if self.gliner.is_bi else (None, None)
            return torch.sigmoid(self.gliner.span_logits(batch_rows, words, vectors, mask).float()).cpu().numpy()

        batches = self.gliner.batches(rows, words, self.batch_size)
        for idx, probs in run_batches(probabilities, batches, self.gliner.workers):
            for b, row in enumerate(rows[i] for i in idx):
                for s, (m, positions, labels) in enumerate(row.targets):
                    out[row.text][m][positions] = probs[b, s, labels]
        return out

    def _bi_rows(self, groups, words: list[Words]) -> tuple[list[Row], dict[str, Candidate]]:
        """One row per text window holding mentions; its labels are their candidates (each once)."""
        gliner = self.gliner
        budget = gliner.text_budget(self.max_length, 0, "")
        rows: list[Row] = []
        candidates: dict[str, Candidate] = {}
        for t, per_text in enumerate(groups):
            if not any(g.candidates for g in per_text):
                continue
            w = words[t]
            text_rows = [Row(t, lo, hi) for lo, hi in gliner.windows(w, budget, 2 * gliner.max_width)]
            label_index: list[dict[str, int]] = [{} for _ in text_rows]
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                first, last = gliner.clip(*w.word_span(g.mention.start, g.mention.end))
                k = _best_window(text_rows, first, last)
                row, index = text_rows[k], label_index[k]
                last = min(last, row.hi - 1)
                for c in g.candidates:
                    if c.entity_id not in index:
                        index[c.entity_id] = len(row.labels)
                        row.labels.append(c.entity_id)
                    candidates.setdefault(c.entity_id, c)
                row.spans.append((first - row.lo, last - row.lo))
                row.targets.append((m, np.arange(len(g.candidates)), np.array([index[c.entity_id] for c in g.candidates])))
            rows += [r for r in text_rows if r.spans]
        return rows, candidates

    def _uni_rows(self, groups, words: list[Words]) -> list[Row]:
        """One row per mention and chunk of at most ``max_labels`` of its distinct candidates, in the prompt,
        with as much text around the mention as fits."""
        gliner = self.gliner
        rows: list[Row] = []
        for t, per_text in enumerate(groups):
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                first, last = gliner.clip(*words[t].word_span(g.mention.start, g.mention.end))
                positions: dict[str, list[int]] = {}
                for p, c in enumerate(g.candidates):
                    positions.setdefault(c.entity_id, []).append(p)
                keys = list(positions)
                size = self.max_labels or len(keys)
                for lo in range(0, len(keys), size):
                    chunk = keys[lo : lo + size]
                    texts = [candidate_text(g.candidates[positions[k][0]], self.template) for k in chunk]
                    labels = list(dict.fromkeys(texts))
                    where = np.array([p for k in chunk for p in positions[k]])
                    label_of = np.array([labels.index(x) for k, x in zip(chunk, texts, strict=True) for _ in positions[k]])
                    row = Row(t, first, last + 1, labels=labels)
                    row.spans.append((0, last - first))
                    row.targets.append((m, where, label_of))
                    rows.append(row)
        for row, prompt in zip(rows, gliner.prompt_tokens([r.labels for r in rows]), strict=True):
            budget = gliner.text_budget(self.max_length, prompt, f"{len(row.labels)} candidates")
            first, last = row.lo, row.hi - 1
            row.lo, row.hi = gliner.window_around(words[row.text], first, last, budget)
            row.prompt = prompt
            row.spans[0] = (first - row.lo, last - row.lo)
        return rows

    def _row_vectors(self, rows: list[Row], candidates: dict[str, Candidate]):
        """Label vectors ``[B, C, D]`` of each row's candidates, and the mask of real labels."""
        torch = self.gliner.torch
        keys = list(dict.fromkeys(k for r in rows for k in r.labels))
        vectors = self._label_vectors([candidates[k] for k in keys])
        pad = len(keys)
        position = {k: i for i, k in enumerate(keys)}
        width = max(len(r.labels) for r in rows)
        gather = np.full((len(rows), width), pad, dtype=np.int64)
        for b, r in enumerate(rows):
            gather[b, : len(r.labels)] = [position[k] for k in r.labels]
        table = torch.from_numpy(np.vstack([vectors, np.zeros((1, vectors.shape[1]), dtype=np.float32)]))
        gather_t = torch.from_numpy(gather)
        return table[gather_t].to(self.gliner.device), (gather_t != pad).to(self.gliner.device)

    def _label_vectors(self, candidates: list[Candidate]) -> np.ndarray:
        """Precomputed KB vectors (a candidate missing from the KB embedded now), or all embedded now."""
        if self.use_precomputed:
            return candidate_vectors(self.kb, self.label_encoder, "labels", self.template, candidates, self._embed)[0]
        return self._embed([candidate_text(c, self.template) for c in candidates])

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Label vectors of candidate texts, from and into the cache when ``cache_embeddings``."""
        if self.cache is None:
            return self.label_encoder.encode(texts)
        missing = [x for x in dict.fromkeys(texts) if x not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.label_encoder.encode(missing), strict=True))
        return np.stack([self.cache[x] for x in texts])


def _best_window(rows: list[Row], first: int, last: int) -> int:
    """The window holding words ``first..last`` farthest from its edges (else the one holding ``first``)."""
    best, margin = None, -1
    for k, r in enumerate(rows):
        if r.lo <= first and last < r.hi and min(first - r.lo, r.hi - 1 - last) > margin:
            best, margin = k, min(first - r.lo, r.hi - 1 - last)
    if best is None:
        best = max(k for k, r in enumerate(rows) if r.lo <= first)
    return best
