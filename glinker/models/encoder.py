"""A batched sentence encoder (mean pooling, L2-normalised), shared by every layer that needs it.

Texts are sorted by length and padded to the longest of each batch only, so short entity names do
not pay for 512 tokens of padding.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from .base import TransformersModel
from .onnx import RUNTIMES, runtime_loaded
from .quantize import QUANTIZE_MODES, id_suffix


class TextEncoder(TransformersModel):
    def __init__(self, name: str, device: str = "cpu", max_length: int = 256, token: str | None = None,
                 quantize: str = "none", runtime: str = "torch"):
        self.max_length = max_length
        self.quantize, self.runtime = quantize, runtime
        super().__init__(name, device, token)
        self.dim = int(self.model.config.hidden_size)

    def auto_class(self):
        from transformers import AutoModel

        return AutoModel

    def load(self, resolved, token):
        return runtime_loaded(self, super().load(resolved, token), resolved.path, "last_hidden_state")

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False, desc: str = "encoding"
    ) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        return self.gather(out, lambda idx: self._encode([texts[i] for i in idx]), [len(t) for t in texts],
                           batch_size, progress=progress, desc=desc)

    def _encode(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        batch = self.tokenize(texts, max_length=self.max_length)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


def get_encoder(name: str, device: str = "cpu", max_length: int = 256, token: str | None = None,
                quantize: str = "none", runtime: str = "torch") -> TextEncoder:
    """One encoder instance per (model, device, max_length, quantize, runtime), shared across layers and executors."""
    return TextEncoder.get(name, device, token, max_length=max_length, quantize=quantize, runtime=runtime)


def get_encoder_of_id(model_id: str, device: str = "cpu", max_length: int = 256) -> TextEncoder:
    """The encoder that made vectors recorded with ``model_id`` (a kb_dir manifest's ``encoder``): the
    model of the id without its ``id_suffix`` (``+int8``, ``+onnx-int8``), run as that suffix says."""
    for quantize, runtime in itertools.product(QUANTIZE_MODES, RUNTIMES):
        suffix = id_suffix(quantize, runtime)
        if suffix and model_id.endswith(suffix):
            return get_encoder(model_id.removesuffix(suffix), device=device, max_length=max_length,
                               quantize=quantize, runtime=runtime)
    return get_encoder(model_id, device=device, max_length=max_length)
