"""Processor names usable in a config, mapped to modules of this project only.

A config names a processor; it can never make glinker import an arbitrary module. Layer modules are
imported on first use, so ``import glinker`` stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import BaseModel

from .config import (
    L0Config,
    L1DictionaryConfig,
    L1GlinerConfig,
    L1SpacyConfig,
    L2Config,
    L3Config,
    L4Config,
)
from .errors import ConfigError


@dataclass(frozen=True)
class ProcessorInfo:
    module: str
    config_model: type[BaseModel]
    required_inputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.required_inputs + self.optional_inputs


PROCESSORS: dict[str, ProcessorInfo] = {
    "l1_spacy": ProcessorInfo("layers.l1_spacy", L1SpacyConfig, ("texts",)),
    "l1_gliner": ProcessorInfo("layers.l1_gliner", L1GlinerConfig, ("texts",)),
    "l1_dictionary": ProcessorInfo("layers.l1_dictionary", L1DictionaryConfig, ("texts",)),
    "l2_chain": ProcessorInfo("layers.l2_chain", L2Config, (), ("mentions", "texts")),
    "l3_batch": ProcessorInfo("layers.l3_batch", L3Config, ("texts", "candidates"), ("l1_entities",)),
    "l4_reranker": ProcessorInfo(
        "layers.l4_reranker", L4Config, ("texts", "candidates"), ("l1_entities", "l3_entities")
    ),
    "l0_aggregator": ProcessorInfo(
        "layers.l0_aggregator", L0Config, ("l2_candidates",), ("l1_entities", "l3_entities", "texts")
    ),
}


def processor_info(name: str, node_id: str = "?") -> ProcessorInfo:
    try:
        return PROCESSORS[name]
    except KeyError:
        raise ConfigError(
            f"node {node_id!r}: unknown processor {name!r}; known processors: {', '.join(PROCESSORS)}"
        ) from None


def load_layer(name: str):
    """Import the layer module of processor ``name`` and return its ``build`` function."""
    module = importlib.import_module(processor_info(name).module)
    return module.build
