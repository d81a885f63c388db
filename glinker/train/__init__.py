"""``glinker train``: train the models of the pipeline from one YAML (see ``glinker/train/config.py``).

Tasks: ``retriever`` (the sentence encoder of L2 ``faiss`` and L3 ``dense``), ``ner`` (GLiNER for
``l1_gliner``) and ``linker`` (a cross-encoder for L3/L4 ``backend: cross_encoder``, or a GLiNER for
``backend: gliner``); ``priors`` counts how often annotated mentions of each surface were linked to each
entity (L3 ``priors``). The output is written to ``OUT/model``, a folder that the pipeline's
``model_name`` (``priors`` for the priors) accepts by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config", "train"]


def train(config: str | Path | dict[str, Any] | TrainConfig, out: str | Path | None = None, resume: bool = False,
          max_steps: int | None = None, device: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run one training config; returns the summary (also written to ``OUT/summary.json``)."""
    from ..errors import ConfigError
    from ..locks import exclusive
    from .run import TrainRun

    config = config if isinstance(config, TrainConfig) else load_train_config(config)
    out = Path(out or config.training.get("output_dir") or "")
    if not str(out) or out == Path("."):
        raise ConfigError("no output folder: pass --out DIR (or set training.output_dir)")
    run = TrainRun(config, out, resume=resume, max_steps=max_steps, device=device, quiet=quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out, what="glinker train"):  # one run per output folder
        run.prepare()
        return _TASKS[config.task](run)


def _retriever(run):
    from .retriever import train_retriever

    return train_retriever(run)


def _ner(run):
    from .ner import train_ner

    return train_ner(run)


def _linker(run):
    from .linker import train_linker

    return train_linker(run)


def _priors(run):
    from .priors import count_priors

    return count_priors(run)


_TASKS = {"retriever": _retriever, "ner": _ner, "linker": _linker, "priors": _priors}
