"""The loader every Hugging Face model shares (sentence encoder, cross-encoder, GLiNER).

A model name resolves offline-first (resolve.py), loads once per (class, model, device, options) and
is shared by every layer and executor; it sits on its device in eval mode with one lock for its
tokenizers (a fast tokenizer is not safe to call from two threads at once) and runs its batches, sorted
by length so each pads to its own longest input, on ``model_workers(device)`` threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from .batching import length_batches, model_workers, run_batches
from .resolve import ResolvedModel, canonical_name, resolve_model

M = TypeVar("M", bound="LoadedModel")
T = TypeVar("T")

_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.RLock()  # a loader may get another model while it loads


class LoadedModel:
    """A model loaded by name (hub id, packaged copy or local folder); subclasses say how in ``load``."""

    def __init__(self, name: str, device: str = "cpu", token: str | None = None):
        resolved = resolve_model(name, token)  # refuses a folder shipping code before any model library loads
        import torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.torch = torch
        self.name = name
        self.model_id = canonical_name(name)
        self.device = device
        self.lock = threading.Lock()
        self.workers = model_workers(device)
        self.model = self.load(resolved, token).to(device).eval()

    def load(self, resolved: ResolvedModel, token: str | None):
        """The torch module found at ``resolved.load_target`` (tokenizers are set on ``self`` here)."""
        raise NotImplementedError

    @classmethod
    def get(cls: type[M], name: str, device: str = "cpu", token: str | None = None, **options) -> M:
        """One instance per (class, model, device, options), shared across layers and executors."""
        key = (cls, canonical_name(name), device, *sorted(options.items()))
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = cls(name, device=device, token=token, **options)
            return _CACHE[key]

    def batched(self, fn: Callable[[np.ndarray], T], lengths: Sequence[int], batch_size: int, progress: bool = False,
                desc: str = "", unit: str = "text") -> Iterator[tuple[np.ndarray, T]]:
        """``(indices, fn(indices))`` over batches of ``batch_size`` similar lengths, longest first, in order."""
        return run_batches(fn, length_batches(lengths, batch_size), self.workers, progress, desc, unit)

    def gather(self, out: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], lengths: Sequence[int],
               batch_size: int, **bar) -> np.ndarray:
        """``out`` with the rows of each batch set to ``fn(indices)`` (rows in input order)."""
        for idx, values in self.batched(fn, lengths, batch_size, **bar):
            out[idx] = values
        return out


class TransformersModel(LoadedModel):
    """A ``transformers`` model with its tokenizer; ``auto_class`` names the kind of model."""

    def auto_class(self):
        raise NotImplementedError

    def load(self, resolved: ResolvedModel, token: str | None):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(resolved.load_target, token=token)
        return self.auto_class().from_pretrained(resolved.load_target, token=token)

    def tokenize(self, *texts: list[str], max_length: int):
        """Padded, truncated torch inputs on the model's device (single texts or pairs)."""
        with self.lock:
            return self.tokenizer(*texts, padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt").to(self.device)


class EntityTextEncoder:
    """One encoder of a loaded model (GLiNER labels, GLiClass classes), as ``KnowledgeBase.vectors``
    takes an encoder of KB entity texts; ``model_id`` keys the vectors kept with the KB."""

    def __init__(self, kind: str, model: LoadedModel, encode: Callable[..., np.ndarray], dim: int):
        self.model_id, self.dim = f"{kind}:{model.model_id}", dim
        self._encode = encode

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
               desc: str | None = None) -> np.ndarray:
        named = {} if desc is None else {"desc": desc}  # else the model's own progress description
        return self._encode(texts, batch_size=batch_size, progress=progress, **named)
