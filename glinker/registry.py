"""Names a config may use, mapped to modules of this project only.

A config names a processor or an L2 retriever; it can never make glinker import an arbitrary module.
Everything else about a processor is in its module's ``CONTRACT`` (see :mod:`glinker.contract`);
modules are imported on first use, so ``import glinker`` stays light.
"""

from __future__ import annotations

import importlib

from .contract import LayerContract
from .errors import ConfigError

PROCESSORS: dict[str, str] = {
    "l1_spacy": "layers.l1_spacy",
    "l1_gliner": "layers.l1_gliner",
    "l1_dictionary": "layers.l1_dictionary",
    "l1_merge": "layers.l1_merge",
    "l2_chain": "layers.l2_chain",
    "l3_batch": "layers.l3_batch",
    "l4_reranker": "layers.l4_reranker",
    "l5_relex": "layers.l5_relex",
    "l0_aggregator": "layers.l0_aggregator",
}

# L2 layer ``type`` -> the module whose ``RETRIEVER`` class searches the KB for that layer
RETRIEVERS: dict[str, str] = {
    "dict": "glinker.retrievers.names",
    "faiss": "glinker.retrievers.vectors",
    "priors": "glinker.retrievers.priors",
}
# L2 layer types of glinker 0.1.x backed by external stores: refused with a message saying what to use
UNSUPPORTED_RETRIEVERS = ("redis", "elasticsearch", "postgres")


def contract(processor: str, node_id: str = "?") -> LayerContract:
    return _module(processor, node_id).CONTRACT


def load_layer(processor: str):
    """The ``build(config, setup)`` function of a processor."""
    return _module(processor).build


def processors_with_output(output: type) -> list[str]:
    """Names of the processors whose output is ``output`` (for messages that suggest one)."""
    return [name for name in PROCESSORS if contract(name).output is output]


def retriever(layer_type: str) -> type:
    """The retriever class of an L2 layer type (a ValueError naming the known types otherwise)."""
    check_retriever(layer_type)
    return importlib.import_module(RETRIEVERS[layer_type]).RETRIEVER


def check_retriever(layer_type: str) -> str:
    if layer_type in UNSUPPORTED_RETRIEVERS:
        raise ValueError(
            f"L2 layer type {layer_type!r} is not supported by this glinker; use "
            f"{' and/or '.join(map(repr, RETRIEVERS))} (in-process, over a KB loaded with load_entities or a "
            "kb_dir built by `glinker kb build`)"
        )
    if layer_type not in RETRIEVERS:
        raise ValueError(f"unknown L2 layer type {layer_type!r}; expected one of {tuple(RETRIEVERS)}")
    return layer_type


def _module(processor: str, node_id: str = "?"):
    if processor not in PROCESSORS:
        raise ConfigError(
            f"node {node_id!r}: unknown processor {processor!r}; known processors: {', '.join(PROCESSORS)}"
        )
    return importlib.import_module(PROCESSORS[processor])
