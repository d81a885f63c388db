"""A batched sentence encoder (mean pooling, L2-normalised), shared by every layer that needs it.

Texts are sorted by length and padded to the longest of each batch only, so short entity names do
not pay for 512 tokens of padding.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from .batching import length_batches, model_workers, run_batches
from .resolve import canonical_name, resolve_model

_CACHE: dict[tuple[str, str, int], TextEncoder] = {}
_CACHE_LOCK = threading.Lock()


class TextEncoder:
    def __init__(self, name: str, device: str = "cpu", max_length: int = 256, token: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        resolved = resolve_model(name, token)
        self.name = name
        self.model_id = canonical_name(name)
        self.device = device
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.load_target, token=token)
        self.model = AutoModel.from_pretrained(resolved.load_target, token=token).to(device).eval()
        self.dim = int(self.model.config.hidden_size)
        self._torch = torch
        self._lock = threading.Lock()
        self.workers = model_workers(device)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False, desc: str = "encoding"
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        batches = length_batches([len(t) for t in texts], batch_size)
        for idx, vectors in run_batches(lambda idx: self._encode([texts[i] for i in idx]), batches, self.workers,
                                        progress, desc):
            out[idx] = vectors
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with self._lock:  # a fast tokenizer is not safe to call from two threads at once
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


def get_encoder(name: str, device: str = "cpu", max_length: int = 256, token: str | None = None) -> TextEncoder:
    """One encoder instance per (model, device, max_length), shared across layers and executors."""
    key = (canonical_name(name), device, max_length)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = TextEncoder(name, device=device, max_length=max_length, token=token)
        return _CACHE[key]
