"""``runtime: onnx``: ONNX Runtime vectors equal torch's (same model_id, same candidates and links),
an export cache keyed by the source's checksum (reused, invalidated when the source changes), int8
marked in the model_id, and unknown runtimes or a missing extra refused with a ConfigError."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from glinker.errors import ConfigError
from glinker.models import onnx, quantize
from glinker.models.cross_encoder import PairClassifier
from glinker.models.encoder import TextEncoder

from .conftest import dense_builder
from .tiny_models import minilm_path, tiny_bert, tiny_cross_encoder

# ORT float32 against torch float32 (measured about 3e-6 on MiniLM: float noise)
VECTOR_TOLERANCE = 1e-4
TEXTS = ["Heart attack and stroke are leading causes of death.", "a short text", "Paris " * 200, "x"]


@pytest.fixture
def onnx_runtime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    """A tiny BERT shared by the tests that do not change it (exported once, then read from its cache)."""
    return tiny_bert(tmp_path_factory.mktemp("models") / "bert", hidden=64)


def test_onnx_encoder_equals_torch(source, onnx_runtime):
    torch_encoder, onnx_encoder = TextEncoder(source), TextEncoder(source, runtime="onnx")
    assert isinstance(onnx_encoder.model, onnx.OnnxModel)  # ONNX Runtime really runs
    assert onnx_encoder.model_id == torch_encoder.model_id  # same vectors, so kb_dirs are shared
    assert onnx_encoder.dim == torch_encoder.dim
    for batch_size in (1, 3):
        assert np.abs(torch_encoder.encode(TEXTS) - onnx_encoder.encode(TEXTS, batch_size=batch_size)).max() <= VECTOR_TOLERANCE


def test_onnx_int8_is_close_and_marked(source, onnx_runtime):
    fp32, int8 = TextEncoder(source), TextEncoder(source, runtime="onnx", quantize="int8")
    assert int8.model_id == f"{fp32.model_id}+onnx-int8"
    a, b = fp32.encode(TEXTS), int8.encode(TEXTS)
    assert np.abs(a - b).max() < 0.05
    assert not np.allclose(a, b, atol=VECTOR_TOLERANCE)  # int8 really ran


def test_onnx_cross_encoder_equals_torch(tmp_path, onnx_runtime):
    source = tiny_cross_encoder(tmp_path / "ce")
    pairs = [("Paris", "Paris, Texas: a city in Lamar County"), ("a b", "c"), ("x " * 300, "y")]
    torch_scores = PairClassifier(source).score_pairs(pairs)
    classifier = PairClassifier(source, runtime="onnx")
    assert isinstance(classifier.model, onnx.OnnxModel)
    assert np.abs(torch_scores - classifier.score_pairs(pairs, batch_size=2)).max() <= VECTOR_TOLERANCE


def test_export_cache_reused_then_invalidated_when_source_changes(tmp_path, monkeypatch, onnx_runtime):
    import torch
    from transformers import BertModel

    source = tmp_path / "bert"
    tiny_bert(source, hidden=64)
    exported = []
    export = onnx.export_onnx
    monkeypatch.setattr(onnx, "export_onnx", lambda *args: (exported.append(args[-1]), export(*args)))
    first = TextEncoder(str(source), runtime="onnx").encode(TEXTS)
    cache = source / quantize.CACHE_FOLDER
    (path,) = cache.iterdir()
    assert path.name == f"{quantize.source_checksum(source)}.last_hidden_state.onnx"
    written = path.stat().st_mtime_ns

    TextEncoder(str(source), runtime="onnx")  # reused: not exported again
    assert len(exported) == 1 and path.stat().st_mtime_ns == written
    TextEncoder(str(source), runtime="onnx", quantize="int8")  # int8 is made from the cached export
    assert len(exported) == 1 and len(list(cache.glob("*.int8.onnx"))) == 1

    model = BertModel.from_pretrained(source)  # invalidated: other weights, another checksum
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2.0)
    model.save_pretrained(source)
    changed = TextEncoder(str(source), runtime="onnx").encode(TEXTS)
    assert len(exported) == 2
    assert len(list(cache.glob("*.last_hidden_state.onnx"))) == 2
    assert not np.allclose(first, changed)


def test_onnx_keeps_candidates_and_links_on_example_kb(source, example_kb_path, example_texts, onnx_runtime):
    from glinker import DAGExecutor

    runs = {}
    for runtime in ("torch", "onnx"):
        builder = dense_builder("dictionary")
        builder.l2.embeddings(enabled=True, model_name=source, runtime=runtime)
        builder.l3.configure(model=source, backend="dense", threshold=0.6, runtime=runtime)
        executor = DAGExecutor(builder.get_config())
        executor.load_entities(example_kb_path)
        ctx = executor.execute({"texts": example_texts})
        candidates = [[(c.entity_id, round(c.score, 4)) for c in g.candidates]
                      for per_text in ctx.get("l2_result").candidates for g in per_text]
        runs[runtime] = executor, candidates, [e for per_text in ctx.get("l3_result").entities for e in per_text]
    (_, torch_candidates, torch_links), (onnx_run, onnx_candidates, onnx_links) = runs["torch"], runs["onnx"]
    assert isinstance(onnx_run.processors["l3"].scorer.encoder.model, onnx.OnnxModel)
    assert len(torch_links) >= 5 and any(e.entity_id for e in torch_links)
    assert onnx_candidates == torch_candidates
    for a, b in zip(torch_links, onnx_links, strict=True):
        assert (a.start, a.end, a.entity_id) == (b.start, b.end, b.entity_id)
        assert abs(a.score - b.score) <= VECTOR_TOLERANCE


def test_kb_build_runtime_onnx_records_the_torch_encoder_id(source, tmp_path, example_kb_path, onnx_runtime):
    import orjson

    from glinker.cli import main

    out = tmp_path / "kb"
    assert main(["kb", "build", "--entities", str(example_kb_path), "--out", str(out), "--encoder", source,
                 "--runtime", "onnx", "--quiet"]) == 0
    assert orjson.loads((out / "manifest.json").read_bytes())["encoder"] == TextEncoder(source).model_id


@pytest.mark.parametrize("node, key", [("l3", "runtime"), ("l2", "embeddings.runtime")])
def test_unknown_runtime_is_a_config_error_naming_it(node, key):
    from glinker import DAGExecutor

    builder = dense_builder("dictionary")
    if node == "l2":
        builder.l2.embeddings(enabled=True, model_name=minilm_path(), runtime="tensorrt")
    else:
        builder.l3.configure(model=minilm_path(), backend="dense", runtime="tensorrt")
    with pytest.raises(ConfigError, match=r"unknown runtime 'tensorrt'") as error:
        DAGExecutor(builder.get_config())
    assert key in str(error.value)


def test_onnx_without_onnxruntime_is_a_config_error_naming_the_extra(monkeypatch):
    from glinker import DAGExecutor

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"onnxruntime.*glinker\[onnx\]"):
        onnx.check_runtime("onnx")
    builder = dense_builder("dictionary")
    builder.l3.configure(model=minilm_path(), backend="dense", runtime="onnx")
    with pytest.raises(ConfigError, match=r"glinker\[onnx\]"):
        DAGExecutor(builder.get_config())


def test_onnx_is_refused_for_gliner_and_on_an_accelerator(source, onnx_runtime):
    from glinker.config import L3Config
    from glinker.linking.backends import make_scorer

    with pytest.raises(ConfigError, match=r"dense and cross_encoder backends, not 'gliner'"):
        make_scorer("gliner", L3Config(model="m", runtime="onnx"), "{label}", kb=None)
    with pytest.raises(ConfigError, match="CPU only"):
        TextEncoder(source, device="cuda", runtime="onnx")
