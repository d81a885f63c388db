"""Cheaper model passes on CPU: ``quantize: int8`` runs a model with int8 weights.

torch dynamic quantization (``torch.ao.quantization.quantize_dynamic``) replaces every ``nn.Linear``
by an int8 one (weights int8 with one scale per output channel, activations quantized per batch on the
fly); everything else stays float32. A model may keep some Linear layers out of int8: GLiNER keeps
its encoders' feed-forward layers and its span and prompt heads (``gliner_not_int8``); those run in
bfloat16 on a CPU that multiplies it natively (AVX512-BF16 or AMX: about twice float32's speed), in
float32 elsewhere. Chosen on a trained GLiNER (benchmarks/quantize_gate.py and README "int8"): its
feed-forward input projections are the layers int8 hurts most (span agreement with float32 on 100
dev abstracts, the layers kept out of int8 in bfloat16: 0.923 with the feed-forward outputs, 0.966
with inputs and outputs, 0.978 with the heads too, 0.997 for the whole model in bfloat16). The int8 weights are written once
to a cache keyed by the SHA-256 of the source's files and by the layers quantized,
beside the source (``SOURCE/.glinker-quantized/``) or, when the source folder is read-only, under
``$GLINKER_CACHE`` (default ``~/.cache/glinker``); a changed source has another checksum, so it is
converted again. A quantized model says so: its ``model_id`` ends in ``+int8`` (``+int8-bf16`` when
some of its layers run in bfloat16; kb_dir manifests record it, so int8 vectors are never mixed with
float32 ones) and loading it is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ..atomic import replace_file
from ..errors import ConfigError

QUANTIZE_MODES = ("none", "int8")
CACHE_ENV = "GLINKER_CACHE"
CACHE_FOLDER = ".glinker-quantized"
BF16_SUFFIX = "-bf16"  # after +int8 in the id of a model some of whose layers run in bfloat16

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


FEED_FORWARD_BLOCKS = ("mlp", "DenseReluDense")  # ModernBERT and Llama-style; T5


def feed_forward(name: str) -> bool:
    """A transformer block's feed-forward layer: ``intermediate.dense`` or ``output.dense`` outside the
    attention (BERT, DeBERTa, XLM-R names), or any Linear of an ``mlp`` / ``DenseReluDense`` block."""
    parts = name.split(".")
    if len(parts) >= 2 and parts[-2] in FEED_FORWARD_BLOCKS:
        return True
    return parts[-2:] == ["intermediate", "dense"] or (parts[-2:] == ["output", "dense"] and "attention" not in parts)


def gliner_not_int8(name: str) -> bool:
    """The Linear layers of a GLiNER that stay out of int8, chosen by the accuracy gate: its encoders'
    feed-forward layers and the span and prompt heads (every Linear outside ``token_rep_layer``)."""
    return feed_forward(name) or "token_rep_layer" not in name.split(".")


def quantize_loaded(loaded, model, source: Path | None, not_int8: Callable[[str], bool] | None = None):
    """The module of ``loaded`` (a LoadedModel being loaded) as its ``quantize`` option asks; Linear
    layers whose names ``not_int8`` accepts run in bfloat16 where the CPU has it (else float32)."""
    mode = check_quantize(getattr(loaded, "quantize", "none"))
    if mode == "none":
        return model
    if not str(loaded.device).startswith("cpu"):
        raise ConfigError(f"model {loaded.name!r}: quantize {mode!r} runs on the CPU only, not on {loaded.device!r}")
    model, in_bf16 = int8_model(model, source, not_int8)
    loaded.model_id += id_suffix(mode) + (BF16_SUFFIX if in_bf16 else "")
    log.info("model %s runs with int8 weights (torch dynamic quantization)%s", loaded.name,
             f"; {len(in_bf16)} Linear layers in bfloat16" if in_bf16 else "")
    return model


def int8_model(model, source: Path | None, not_int8: Callable[[str], bool] | None = None):
    """``model`` with int8 ``nn.Linear`` layers, and the names of those ``not_int8`` accepts that run in
    bfloat16 (on a CPU that multiplies it natively; float32 elsewhere). The weights come from the
    cache when it has them, keyed by the source and by the layers quantized."""
    import torch

    linears = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    out = {name for name in linears if not_int8 and not_int8(name)}
    names = [name for name in linears if name not in out]
    tied = _tied_parameters(model) if out else set()  # a weight tied to an embedding table stays float32, as it
    kept = [name for name in linears if name in out and id(linears[name].weight) not in tied]
    bf16 = kept if kept and native_bfloat16() else []
    layers = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    kind = "int8-pc-bf16" if bf16 else "int8-pc"
    path = None if source is None else cache_folder(source) / f"{source_checksum(source)}.{kind}-{layers}.pt"
    with warnings.catch_warnings():  # torch announces moving this API to torchao; it is what torch ships
        warnings.simplefilter("ignore")
        qconfig = dict.fromkeys(names, torch.ao.quantization.per_channel_dynamic_qconfig)
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), qconfig, dtype=torch.qint8)
        for name in bf16:
            run_in_bfloat16(quantized.get_submodule(name))
        if path is not None and path.exists():
            quantized.load_state_dict(torch.load(path, weights_only=True))
        elif path is not None:  # None: a hub download, nothing of ours to key the cache on
            replace_file(path, lambda tmp: torch.save(quantized.state_dict(), tmp))
    return quantized, bf16


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX), where a bfloat16 Linear
    takes about half the time of a float32 one (False where torch cannot tell)."""
    import torch

    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def run_in_bfloat16(linear) -> None:
    """Make ``linear`` hold bfloat16 weights and run on its input cast to them, its output cast back to float32."""
    import torch

    linear.to(torch.bfloat16)
    linear.register_forward_pre_hook(lambda layer, args: (args[0].to(layer.weight.dtype), *args[1:]))
    linear.register_forward_hook(lambda _, args, out: out.float())


def _tied_parameters(model) -> set[int]:
    """The ids of parameters that more than one module holds (tied weights)."""
    holders = Counter(id(parameter) for _, parameter in model.named_parameters(remove_duplicate=False))
    return {key for key, count in holders.items() if count > 1}
