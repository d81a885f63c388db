"""Tiny random GLiClass models built locally (no trained GLiClass can be downloaded here).

A uni-encoder reads the MiniLM tokenizer with gliclass's three added tokens; a bi-encoder's class
encoder is a second tiny BERT inside the model, whose tokenizer is saved beside it
(``label_model_name`` points at that folder: gliclass's own pipeline loads the class tokenizer from
there). Assert structure and equivalence, never quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tests.tiny_models import minilm_path

SPECIAL_TOKENS = ["<<LABEL>>", "<<SEP>>", "<<EXAMPLE>>"]


def tiny_gliclass(path: Path, bi_encoder: bool = False, seed: int = 0, **options) -> str:
    """A random 2-layer GLiClass saved to ``path`` (a bi-encoder's class tokenizer in ``path-classes``)."""
    import torch
    from gliclass import GLiClassModel, GLiClassModelConfig
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.add_tokens(SPECIAL_TOKENS, special_tokens=True)
    encoder = _bert_config(len(tokenizer))
    label_token, sep_token, example_token = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    architecture = {"architecture_type": "uni-encoder"}
    if bi_encoder:
        classes = path.with_name(f"{path.name}-classes")
        AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(classes)
        architecture = {"architecture_type": "bi-encoder", "label_model_name": str(classes),
                        "label_model_config": _bert_config(tokenizer.vocab_size).to_dict(), "normalize_features": True}
    config = GLiClassModelConfig(encoder_config=encoder.to_dict(), encoder_model=str(path), class_token_index=label_token,
                                 text_token_index=sep_token, example_token_index=example_token, initializer_range=0.2,
                                 **architecture, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GLiClassModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _bert_config(vocab_size: int):
    """A 2-layer BERT whose random weights spread GLiClass's scores (initializer range 0.2)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, initializer_range=0.2)

