"""Cross-encoder linking: a Hugging Face sequence-classification model reads (mention in context,
entity text) pairs and scores each one.

Pairs of the whole batch are scored together, sorted by length and padded per batch. One output
(``num_labels == 1``) becomes a score by sigmoid; several outputs by softmax, taking the class
named entailment/positive/relevant/yes/true, else the last class.
"""

from __future__ import annotations

import threading

import numpy as np

from ..linking import context_window
from ..types import MentionCandidates
from .batching import length_batches, model_workers, run_batches
from .resolve import resolve_model
from .scorers import candidate_text

POSITIVE_NAMES = ("entailment", "positive", "relevant", "yes", "true")


class CrossEncoderScorer:
    def __init__(self, model_name: str, template: str, device: str = "cpu", max_length: int = 512,
                 batch_size: int = 32, token: str | None = None, context_chars: int = 100):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        target = resolve_model(model_name, token).load_target
        self.tokenizer = AutoTokenizer.from_pretrained(target, token=token)
        self.model = AutoModelForSequenceClassification.from_pretrained(target, token=token).to(device).eval()
        self.torch = torch
        self.device = device
        self.template = template
        self.max_length = min(max_length, self.tokenizer.model_max_length)
        self.batch_size = batch_size
        self.context_chars = context_chars
        labels = {str(name).lower(): int(i) for i, name in self.model.config.id2label.items()}
        self.num_labels = int(self.model.config.num_labels)
        self.positive = next((labels[n] for n in POSITIVE_NAMES if n in labels), self.num_labels - 1)
        self.lock = threading.Lock()
        self.workers = model_workers(device)

    def precompute(self, batch_size: int = 64, progress: bool = False) -> int:
        """Nothing to precompute: every pair is read together."""
        return 0

    def score(self, texts: list[str], groups: list[list[MentionCandidates]]) -> list[list[np.ndarray]]:
        """Scores in [0, 1] for every candidate of every mention; a candidate repeated in a mention is read once."""
        out = [[np.zeros(len(g.candidates), dtype=np.float32) for g in per_text] for per_text in groups]
        pairs: dict[tuple[str, str], int] = {}
        targets = []  # (text, mention, candidate position, pair)
        for t, per_text in enumerate(groups):
            for m, g in enumerate(per_text):
                if not g.candidates:
                    continue
                query = context_window(texts[t], g.mention.start, g.mention.end, self.context_chars)
                for p, c in enumerate(g.candidates):
                    pair = pairs.setdefault((query, candidate_text(c, self.template)), len(pairs))
                    targets.append((t, m, p, pair))
        if not pairs:
            return out
        scores = self._score_pairs(list(pairs))
        for t, m, p, pair in targets:
            out[t][m][p] = scores[pair]
        return out

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        scores = np.zeros(len(pairs), dtype=np.float32)
        batches = length_batches([len(a) + len(b) for a, b in pairs], self.batch_size)
        for idx, probs in run_batches(lambda idx: self._score([pairs[i] for i in idx]), batches, self.workers):
            scores[idx] = probs
        return scores

    def _score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        torch = self.torch
        with self.lock:  # a fast tokenizer is not safe to call from two threads at once
            batch = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            logits = self.model(**batch).logits.float()
            if self.num_labels == 1:
                return torch.sigmoid(logits[:, 0]).cpu().numpy()
            return torch.softmax(logits, dim=-1)[:, self.positive].cpu().numpy()
