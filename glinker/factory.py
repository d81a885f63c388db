"""ProcessorFactory: ready-made executors (same call shapes as glinker 0.1.x)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .builder import ConfigBuilder
from .dag import DAGExecutor, DAGPipeline
from .models.resolve import detect_backend


class ProcessorFactory:
    @staticmethod
    def create_simple(
        model_name: str,
        device: str = "cpu",
        threshold: float = 0.5,
        template: str = "{label}",
        max_length: int = 512,
        token: str | None = None,
        entities: str | Path | Iterable[Mapping] | Mapping | None = None,
        precompute_embeddings: bool = False,
        verbose: bool = False,
        reranker_model: str | None = None,
        reranker_max_labels: int = 20,
        reranker_threshold: float | None = None,
        external_entities: bool = False,
    ) -> DAGExecutor:
        """An L2 -> L3 (-> L4) -> L0 pipeline with no NER step.

        Mentions come from ``$input.entities`` when ``external_entities=True`` (strict matching),
        otherwise every KB name found in the text is a mention. A sentence-encoder ``model_name``
        links by dense similarity and adds a FAISS layer over the KB; a GLiNER model links with GLiNER.
        """
        builder = _linker(model_name, device, threshold, template, max_length, token)
        if reranker_model:
            builder.l4.configure(
                reranker_model, backend=detect_backend(reranker_model), device=device, token=token,
                threshold=threshold if reranker_threshold is None else reranker_threshold,
                max_labels=reranker_max_labels, max_length=max_length,
            )
        builder.l0.configure(strict_matching=external_entities)
        executor = DAGExecutor(builder.build(), verbose=verbose)
        if entities is not None:
            executor.load_entities(entities)
            if precompute_embeddings:
                executor.precompute_embeddings()
        return executor

    @staticmethod
    def create_pipeline(config_path: str | Path, verbose: bool = False) -> DAGExecutor:
        """An executor from a YAML pipeline file."""
        return DAGExecutor(DAGPipeline.from_yaml(config_path), verbose=verbose)

    @staticmethod
    def create_from_dict(config: Mapping[str, Any], verbose: bool = False) -> DAGExecutor:
        return DAGExecutor(config, verbose=verbose)


def _linker(model_name: str, device: str, threshold: float, template: str, max_length: int,
            token: str | None) -> ConfigBuilder:
    """L2 -> L3 with the backend the model calls for: a sentence encoder also gets a vector layer."""
    backend = detect_backend(model_name)
    builder = ConfigBuilder(name="simple")
    builder.set_schema_template(template)
    builder.l2.add("dict", priority=1)
    if backend == "dense":
        builder.l2.add("faiss", priority=0)
        builder.l2.embeddings(enabled=True, model_name=model_name, device=device)
    builder.l3.configure(model_name, backend=backend, token=token, device=device, threshold=threshold,
                         max_length=max_length)
    return builder
