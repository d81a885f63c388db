"""GLiClass through the ``gliclass`` package (optional extra ``gliclass``): offline loading and the
model calls the GLiClass linker (glinker/linking/gliclass.py) makes.

Inputs are built as gliclass's own pipeline builds them: a uni-encoder reads
``<<LABEL>>class ... <<SEP>>`` before or after the text (``prompt_first``); a bi-encoder encodes the
text and each class apart, so class vectors can be made once for a whole KB (with dynamic padding).
Scores are the pipeline's multi-label ones: a sigmoid of each class's logit.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, LimitError
from .base import EntityTextEncoder, LoadedModel
from .quantize import quantize_loaded
from .resolve import ResolvedModel, resolve_model

LABEL_TOKEN, SEP_TOKEN = "<<LABEL>>", "<<SEP>>"
ARCHITECTURES = ("uni-encoder", "bi-encoder")


class GliclassModel(LoadedModel):
    """A loaded GLiClass model (uni- or bi-encoder) with its tokenizers (one per model and device)."""

    def __init__(self, name: str, device: str = "cpu", token: str | None = None, quantize: str = "none"):
        self.quantize = quantize
        super().__init__(name, device, token)
        self.config = self.model.config
        self.is_bi = self.config.architecture_type == "bi-encoder"
        self.dim = int(self.config.hidden_size)

    def load(self, resolved: ResolvedModel, token: str | None):
        _check_encoders(resolved)
        try:
            from gliclass import GLiClassModel
        except ImportError as exc:
            raise ConfigError(f"model {self.name!r} is a GLiClass model: install the extra, "
                              "pip install -e '.[gliclass]'") from exc
        from transformers import AutoTokenizer

        local = resolved.path is not None
        self.tokenizer = AutoTokenizer.from_pretrained(resolved.load_target, token=token, local_files_only=local)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = GLiClassModel.from_pretrained(resolved.load_target, token=token, local_files_only=local)
        architecture = model.config.architecture_type
        if architecture not in ARCHITECTURES:
            raise ConfigError(f"GLiClass model {self.name!r} is a {architecture!r} model; "
                              f"the gliclass backend runs {' and '.join(ARCHITECTURES)} models")
        if architecture == "bi-encoder":
            labels = resolve_model(model.config.label_model_name, token)
            self.labels_tokenizer = AutoTokenizer.from_pretrained(labels.load_target, token=token,
                                                                  local_files_only=labels.path is not None)
        return quantize_loaded(self, model, resolved.path)

    # ------------------------------------------------------------------ uni-encoder

    def prompt(self, text: str, labels: Sequence[str]) -> str:
        """What a uni-encoder reads: the text, then the classes, each after ``<<LABEL>>``, and ``<<SEP>>``
        (the classes first with ``prompt_first``)."""
        classes = "".join(f"{LABEL_TOKEN}{label}" for label in labels) + SEP_TOKEN
        return classes + text if self.config.prompt_first else text + classes

    def prompt_ids(self, prompts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of each prompt; one longer than ``max_length`` is a LimitError (its classes would be cut)."""
        with self.lock:
            ids = self.tokenizer(list(prompts), truncation=False, verbose=False)["input_ids"]
        longest = max((len(x) for x in ids), default=0)
        if longest > max_length:
            raise LimitError(
                f"GLiClass model {self.name!r}: a prompt of a mention and its candidates takes {longest} tokens, "
                f"more than max_length {max_length}; use fewer candidates per prompt (max_labels / top_k), "
                "less context (context_chars), a shorter template, or a larger max_length"
            )
        return ids

    def uni_probabilities(self, ids: Sequence[list[int]], counts: Sequence[int]) -> list[np.ndarray]:
        """Each prompt's class probabilities (``counts[i]`` classes in prompt ``i``), in one forward pass."""
        with self.lock:
            batch = self.tokenizer.pad({"input_ids": list(ids)}, return_tensors="pt").to(self.device)
        with self.torch.inference_mode():
            logits = self.model(**batch, max_num_classes=max(counts)).logits.float()
            probs = self.torch.sigmoid(logits).cpu().numpy()
        return [probs[b, :n] for b, n in enumerate(counts)]

    # ------------------------------------------------------------------ bi-encoder

    def encode_classes(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
                       desc: str = "embedding classes") -> np.ndarray:
        """Class vectors of a bi-encoder (its label encoder and projections), padded per batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self.lock:
            encoded = self.labels_tokenizer(list(texts), truncation=True, verbose=False)

        def embed(idx: np.ndarray) -> np.ndarray:
            with self.lock:
                batch = self.labels_tokenizer.pad({k: [encoded[k][i] for i in idx] for k in encoded},
                                                  return_tensors="pt").to(self.device)
            ids, mask = batch["input_ids"].unsqueeze(1), batch["attention_mask"].unsqueeze(1)
            with self.torch.inference_mode():
                return self.model.model.encode_classes(ids, mask)[:, 0].float().cpu().numpy()

        return self.gather(out, embed, [len(x) for x in encoded["input_ids"]], batch_size, progress=progress,
                           desc=desc, unit="class")

    def bi_probabilities(self, texts: Sequence[str], vectors: np.ndarray, mask: np.ndarray,
                         max_length: int) -> np.ndarray:
        """Probabilities ``[B, C]`` of each text against its class vectors ``[B, C, D]`` (``mask``: real classes)."""
        torch, core = self.torch, self.model.model
        with self.lock:
            batch = self.tokenizer(list(texts), truncation=True, max_length=max_length, padding=True,
                                   return_tensors="pt").to(self.device)
        classes = torch.from_numpy(vectors).to(self.device)
        real = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode():
            text = core.encode_text(batch["input_ids"], batch["attention_mask"])
            logits = (core.scorer(text, classes) * core.logit_scale).masked_fill(~real, -1e3)
            if self.model.calibrator is not None:
                beta, bias = self.model.calibrator(text, classes, logits, real.long())
                logits = beta * logits.float() + bias
            return torch.sigmoid(logits.float()).masked_fill(~real, 0.0).cpu().numpy()


def _check_encoders(resolved: ResolvedModel) -> None:
    """Refuse, before gliclass loads, a local folder that is not a GLiClass model, or whose encoder type
    transformers does not ship (gliclass would fetch that encoder's config with ``trust_remote_code``)."""
    if resolved.path is None:
        return
    from transformers import CONFIG_MAPPING

    path = resolved.path / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    if config.get("model_type") != "GLiClass":
        raise ConfigError(f"model {resolved.name!r} is not a GLiClass model (its config.json has no "
                          "model_type GLiClass); backend gliclass needs one")
    for key in ("encoder_config", "label_model_config"):
        kind = (config.get(key) or {}).get("model_type", "deberta-v2")
        if kind not in CONFIG_MAPPING:
            raise ConfigError(f"GLiClass model {resolved.name!r}: {key} has model_type {kind!r}, which transformers "
                              "does not ship; gliclass would load its code from the hub, which glinker never does")


def get_gliclass(name: str, device: str = "cpu", token: str | None = None, quantize: str = "none") -> GliclassModel:
    """One loaded GLiClass per (model, device, quantize), shared by every layer and executor."""
    return GliclassModel.get(name, device, token, quantize=quantize)


def class_encoder(model: GliclassModel) -> EntityTextEncoder:
    """The class encoder of a bi-encoder GLiClass, as an encoder of KB entity texts."""
    return EntityTextEncoder("gliclass-classes", model, model.encode_classes, model.dim)
