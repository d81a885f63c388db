"""A cross-encoder: a Hugging Face sequence-classification model that scores (text, text) pairs.

One output (``num_labels == 1``) becomes a score by sigmoid; several outputs by softmax, taking the
class named entailment/positive/relevant/yes/true, else the last class.
"""

from __future__ import annotations

import numpy as np

from .base import TransformersModel
from .onnx import runtime_loaded

POSITIVE_NAMES = ("entailment", "positive", "relevant", "yes", "true")


class PairClassifier(TransformersModel):
    def __init__(self, name: str, device: str = "cpu", token: str | None = None, quantize: str = "none",
                 runtime: str = "torch"):
        self.quantize, self.runtime = quantize, runtime
        super().__init__(name, device, token)
        labels = {str(name).lower(): int(i) for i, name in self.model.config.id2label.items()}
        self.num_labels = int(self.model.config.num_labels)
        self.positive = next((labels[n] for n in POSITIVE_NAMES if n in labels), self.num_labels - 1)

    def auto_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def load(self, resolved, token):
        return runtime_loaded(self, super().load(resolved, token), resolved.path, "logits")

    def score_pairs(self, pairs: list[tuple[str, str]], batch_size: int = 32, max_length: int = 512) -> np.ndarray:
        """A score in [0, 1] per pair, in input order; pairs of similar length are batched together."""
        max_length = min(max_length, self.tokenizer.model_max_length)
        out = np.zeros(len(pairs), dtype=np.float32)
        return self.gather(out, lambda idx: self._score([pairs[i] for i in idx], max_length),
                           [len(a) + len(b) for a, b in pairs], batch_size)

    def _score(self, pairs: list[tuple[str, str]], max_length: int) -> np.ndarray:
        torch = self.torch
        batch = self.tokenize([a for a, _ in pairs], [b for _, b in pairs], max_length=max_length)
        with torch.inference_mode():
            logits = self.model(**batch).logits.float()
            if self.num_labels == 1:
                return torch.sigmoid(logits[:, 0]).cpu().numpy()
            return torch.softmax(logits, dim=-1)[:, self.positive].cpu().numpy()


def get_pair_classifier(name: str, device: str = "cpu", token: str | None = None,
                        quantize: str = "none", runtime: str = "torch") -> PairClassifier:
    """One cross-encoder per (model, device, quantize, runtime), shared by L3 and L4 and every executor."""
    return PairClassifier.get(name, device, token, quantize=quantize, runtime=runtime)
