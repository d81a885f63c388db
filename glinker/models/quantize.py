"""Cheaper model passes on CPU: ``quantize: int8`` runs a model with int8 weights.

torch dynamic quantization (``torch.ao.quantization.quantize_dynamic``) replaces every ``nn.Linear``
by an int8 one (weights int8 with one scale per output channel, activations quantized per batch on the
fly); everything else stays float32. A model may keep some Linear layers float32: GLiNER keeps the
feed-forward output projections of its encoders (``ffn_output``). Measured on a trained GLiNER
(benchmarks/quantize_gate.py, BC5CDR test, span F1 0.6928 float32): one scale per weight tensor
(torch's default) lost 2.4 points on the first 100 abstracts, one per output channel 1.55 on all
500, and per channel with the feed-forward outputs float32 0.46. The int8 weights are written once
to a cache keyed by the SHA-256 of the source's files and by the layers quantized,
beside the source (``SOURCE/.glinker-quantized/``) or, when the source folder is read-only, under
``$GLINKER_CACHE`` (default ``~/.cache/glinker``); a changed source has another checksum, so it is
converted again. A quantized model says so: its ``model_id`` ends in ``+int8`` (kb_dir manifests
record it, so int8 vectors are never mixed with float32 ones) and loading it is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from ..atomic import replace_file
from ..errors import ConfigError

QUANTIZE_MODES = ("none", "int8")
CACHE_ENV = "GLINKER_CACHE"
CACHE_FOLDER = ".glinker-quantized"

log = logging.getLogger("glinker.models")


def check_quantize(value: object) -> str:
    """``value`` if it is a known quantization, else a ConfigError naming it."""
    if value not in QUANTIZE_MODES:
        raise ConfigError(f"unknown quantize {value!r}; expected one of {', '.join(QUANTIZE_MODES)}")
    return value


def source_checksum(source: Path) -> str:
    """SHA-256 over the names and bytes of the files of a model folder (the cache left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and CACHE_FOLDER not in p.parts):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def cache_folder(source: Path) -> Path:
    """Beside the source when it can be written, else the user cache."""
    if os.access(source, os.W_OK):
        return source / CACHE_FOLDER
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "glinker") / "quantized"


def id_suffix(quantize: str, runtime: str = "torch") -> str:
    """What a model's id gets for how it runs: ``+int8`` (torch int8), ``+onnx-int8``; nothing for
    float32 (ONNX float32 vectors equal torch's, see onnx.py)."""
    if quantize == "none":
        return ""
    return f"+onnx-{quantize}" if runtime == "onnx" else f"+{quantize}"


def ffn_output(name: str) -> bool:
    """A transformer block's feed-forward output projection (Hugging Face BERT-style names)."""
    parts = name.split(".")
    return parts[-2:] == ["output", "dense"] and "attention" not in parts


def quantize_loaded(loaded, model, source: Path | None, keep_float32: Callable[[str], bool] | None = None):
    """The module of ``loaded`` (a LoadedModel being loaded) as its ``quantize`` option asks; Linear
    layers whose names ``keep_float32`` accepts stay float32."""
    mode = check_quantize(getattr(loaded, "quantize", "none"))
    if mode == "none":
        return model
    if not str(loaded.device).startswith("cpu"):
        raise ConfigError(f"model {loaded.name!r}: quantize {mode!r} runs on the CPU only, not on {loaded.device!r}")
    loaded.model_id += id_suffix(mode)
    model = int8_model(model, source, keep_float32)
    log.info("model %s runs with int8 weights (torch dynamic quantization)", loaded.name)
    return model


def int8_model(model, source: Path | None, keep_float32: Callable[[str], bool] | None = None):
    """``model`` with int8 ``nn.Linear`` layers (but those ``keep_float32`` names); their weights come
    from the cache when it has them, keyed by the source and by the layers quantized."""
    import torch

    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not (keep_float32 and keep_float32(name))]
    layers = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    path = None if source is None else cache_folder(source) / f"{source_checksum(source)}.int8-pc-{layers}.pt"
    with warnings.catch_warnings():  # torch announces moving this API to torchao; it is what torch ships
        warnings.simplefilter("ignore")
        qconfig = dict.fromkeys(names, torch.ao.quantization.per_channel_dynamic_qconfig)
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), qconfig, dtype=torch.qint8)
        if path is not None and path.exists():
            quantized.load_state_dict(torch.load(path, weights_only=True))
        elif path is not None:  # None: a hub download, nothing of ours to key the cache on
            replace_file(path, lambda tmp: torch.save(quantized.state_dict(), tmp))
    return quantized
