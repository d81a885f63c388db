"""``quantize: int8``: scores close to float32 with the same links, a conversion cache keyed by the
source's checksum (reused, invalidated when the source changes), and unknown values refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from glinker.errors import ConfigError
from glinker.models import quantize
from glinker.models.encoder import TextEncoder

from .conftest import dense_builder
from .tiny_models import minilm_path, tiny_bert, tiny_gliner

# int8 against float32 on the example KB: largest difference of a link's L3 score (measured 0.02),
# and of any candidate's (measured 0.10: int8 moves the low similarities of unrelated names most)
SCORE_TOLERANCE = 0.03
CANDIDATE_TOLERANCE = 0.12
TEXTS = ["Heart attack and stroke are leading causes of death.", "a short text"]


@pytest.fixture(scope="module")
def minilm_copy(tmp_path_factory) -> str:
    """A copy of the packaged MiniLM, so its int8 cache is written beside the copy, not into site-packages."""
    return str(shutil.copytree(minilm_path(), tmp_path_factory.mktemp("models") / "minilm"))


def conversions(monkeypatch) -> list:
    """The cache files written from now on (each int8 conversion writes one)."""
    saved = []
    write = quantize.replace_file
    monkeypatch.setattr(quantize, "replace_file", lambda path, fill: (saved.append(path), write(path, fill)))
    return saved


def _run(config: dict, example_kb_path, texts: list[str]):
    """The executor, each mention's L2 candidate ids, and its L3 link with every candidate's score."""
    from glinker import DAGExecutor

    executor = DAGExecutor(config)
    executor.load_entities(example_kb_path)
    ctx = executor.execute({"texts": texts})
    candidates = [[c.entity_id for c in g.candidates] for per_text in ctx.get("l2_result").candidates for g in per_text]
    links = [e for per_text in ctx.get("l3_result").entities for e in per_text]
    return executor, candidates, links


@pytest.mark.slow
def test_int8_keeps_links_and_scores_close_on_example_kb(minilm_copy, example_kb_path, example_texts):
    runs = {}
    for mode in ("none", "int8"):
        builder = dense_builder("dictionary")
        builder.l2.embeddings(enabled=True, model_name=minilm_copy, quantize=mode)
        builder.l3.configure(model=minilm_copy, backend="dense", threshold=0.6, quantize=mode)
        runs[mode] = _run(builder.get_config(), example_kb_path, example_texts)
    (fp32, fp32_candidates, fp32_links), (int8, int8_candidates, int8_links) = runs["none"], runs["int8"]
    assert int8.processors["l3"].scorer.encoder.model_id.endswith("+int8")
    assert not fp32.processors["l3"].scorer.encoder.model_id.endswith("+int8")
    assert len(fp32_links) >= 5
    assert [c[:1] for c in fp32_candidates] == [c[:1] for c in int8_candidates]
    for a, b in zip(fp32_links, int8_links, strict=True):
        assert (a.start, a.end, a.entity_id) == (b.start, b.end, b.entity_id)
        assert abs(a.score - b.score) <= SCORE_TOLERANCE
        common = a.class_probs.keys() & b.class_probs.keys()  # low-ranked FAISS candidates may differ
        assert a.entity_id is None or a.entity_id in common
        assert all(abs(a.class_probs[k] - b.class_probs[k]) <= CANDIDATE_TOLERANCE for k in common)


def test_int8_encoder_close_to_float32(tmp_path):
    source = tiny_bert(tmp_path / "bert", hidden=64)
    fp32, int8 = TextEncoder(source), TextEncoder(source, quantize="int8")
    assert int8.model_id == f"{fp32.model_id}+int8"
    a, b = fp32.encode(TEXTS), int8.encode(TEXTS)
    assert np.abs(a - b).max() < 0.01
    assert not np.array_equal(a, b)  # int8 really ran


@pytest.mark.parametrize("native_bf16", [True, False])
def test_gliner_int8_keeps_feed_forward_layers_and_heads_out_of_int8(tmp_path, monkeypatch, native_bf16):
    """GLiNER loses span F1 when its encoders' feed-forward layers or its span heads are int8 (measured
    in benchmarks/quantize_gate.py): those run in bfloat16 on a CPU that multiplies it natively, else in
    float32; the attention projections are int8; the model id and the cache name say which."""
    import torch

    from glinker.models.gliner import GlinerModel

    monkeypatch.setattr(quantize, "native_bfloat16", lambda: native_bf16)
    source = tiny_gliner(tmp_path / "gliner", tiny_bert(tmp_path / "bert", hidden=32), bi_encoder=True)
    loaded = GlinerModel(source, quantize="int8")
    modules = dict(loaded.model.named_modules())
    kept = [name for name, m in modules.items() if type(m) is torch.nn.Linear]
    int8 = [name for name, m in modules.items() if type(m) is torch.ao.nn.quantized.dynamic.Linear]
    blocks = [name.removesuffix(".attention.self.query") for name in int8 if name.endswith(".attention.self.query")]
    assert blocks and all(".token_rep_layer." in name and not quantize.feed_forward(name) for name in int8)
    assert sum(".attention." in name for name in int8) == 4 * len(blocks)  # query, key, value, output
    assert {f"{b}.intermediate.dense" for b in blocks} | {f"{b}.output.dense" for b in blocks} <= set(kept)
    assert any(name.startswith("model.span_rep_layer.") for name in kept)  # the heads
    assert {modules[name].weight.dtype for name in kept} == {torch.bfloat16 if native_bf16 else torch.float32}
    assert loaded.model_id.endswith("+int8-bf16" if native_bf16 else "+int8")
    kind = "int8-pc-bf16-" if native_bf16 else "int8-pc-"
    cached = [p.name for p in (tmp_path / "gliner" / quantize.CACHE_FOLDER).iterdir()]
    assert cached and all(p.startswith(f"{quantize.source_checksum(tmp_path / 'gliner')}.{kind}") for p in cached)
    assert native_bf16 or not any("bf16" in p for p in cached)


def test_gliner_int8_with_bfloat16_layers_stays_close_to_float32_also_from_the_cache(tmp_path, monkeypatch):
    """The token representations of the int8 GLiNER (feed-forward layers and heads in bfloat16) are
    float32 and stay within a stated tolerance of float32's; loaded again, from the conversion cache,
    it has the same bfloat16 layers and gives the same representations."""
    import torch

    from glinker.models.gliner import GlinerModel

    monkeypatch.setattr(quantize, "native_bfloat16", lambda: True)
    source = tiny_gliner(tmp_path / "gliner", tiny_bert(tmp_path / "bert", hidden=32), bi_encoder=True)
    fp32, int8 = GlinerModel(source), GlinerModel(source, quantize="int8")
    saved = conversions(monkeypatch)
    cached = GlinerModel(source, quantize="int8")
    assert not saved  # read from the cache, not converted again
    batch = fp32.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        a, b, c = (g.model.model.token_rep_layer.encode_text(batch["input_ids"], batch["attention_mask"])
                   for g in (fp32, int8, cached))
    assert a.dtype == b.dtype == torch.float32
    real = batch["attention_mask"].bool()
    assert 0 < (a[real] - b[real]).abs().max() < 0.05 * a[real].abs().max()
    assert torch.equal(b, c)


def test_tied_weights_stay_float32(monkeypatch):
    """A Linear whose weight is tied to another module (an output layer tied to its embeddings) is not
    cast to bfloat16, which would cast the embedding table with it."""
    import torch

    monkeypatch.setattr(quantize, "native_bfloat16", lambda: True)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 10, bias=False), torch.nn.Linear(10, 4))
    model[1].weight = model[0].weight
    quantized, bf16 = quantize.int8_model(model, None, not_int8=lambda name: True)
    assert bf16 == ["2"]
    assert quantized[0].weight.dtype == quantized[1].weight.dtype == torch.float32
    assert quantized[2].weight.dtype == torch.bfloat16


def test_cache_reused_then_invalidated_when_source_changes(tmp_path, monkeypatch):
    import torch
    from transformers import BertModel

    source = tmp_path / "bert"
    tiny_bert(source, hidden=64)
    saved = conversions(monkeypatch)
    first = TextEncoder(str(source), quantize="int8").encode(TEXTS)
    assert len(saved) == 1 and saved[0].parent == source / quantize.CACHE_FOLDER
    assert saved[0].name.startswith(quantize.source_checksum(source))

    # reused: not converted again, and its weights are the ones loaded (a marked cache file shows through)
    state = torch.load(saved[0], weights_only=True)
    TextEncoder(str(source), quantize="int8")
    assert len(saved) == 1
    state["embeddings.LayerNorm.bias"] += 1.0
    torch.save(state, saved[0])
    marked = TextEncoder(str(source), quantize="int8")
    assert torch.equal(marked.model.embeddings.LayerNorm.bias, state["embeddings.LayerNorm.bias"])

    # invalidated: other source weights, another checksum, a new conversion
    model = BertModel.from_pretrained(source)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2.0)
    model.save_pretrained(source)
    changed = TextEncoder(str(source), quantize="int8").encode(TEXTS)
    assert len(saved) == 2 and saved[1] != saved[0]
    assert len(list((source / quantize.CACHE_FOLDER).iterdir())) == 2
    assert not np.allclose(first, changed)


def test_read_only_source_caches_under_glinker_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(quantize.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(quantize.os, "access", lambda path, mode: False)
    assert quantize.cache_folder(tmp_path / "model") == tmp_path / "cache" / "quantized"


@pytest.mark.parametrize("node, key", [("l3", "quantize"), ("l2", "embeddings.quantize")])
def test_unknown_quantize_is_a_config_error_naming_it(node, key):
    from glinker import DAGExecutor

    builder = dense_builder("dictionary")
    config = builder.get_config()
    target = next(n for n in config["nodes"] if n["id"] == node)["config"]
    if node == "l2":
        target = target["embeddings"]
    target["quantize"] = "int4"
    with pytest.raises(ConfigError, match=r"int4") as error:
        DAGExecutor(config)
    assert key in str(error.value)
    with pytest.raises(ConfigError, match=r"unknown quantize 'fp8'"):
        quantize.check_quantize("fp8")


def test_int8_on_an_accelerator_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="CPU only"):
        TextEncoder(tiny_bert(tmp_path / "bert"), device="cuda", quantize="int8")


def test_kb_build_quantize_records_int8_encoder(tmp_path, example_kb_path):
    from glinker.kb.build import build_kb_dir

    source = tiny_bert(tmp_path / "bert")
    manifest = build_kb_dir(example_kb_path, tmp_path / "kb", source, quantize="int8", progress=False)
    assert manifest["encoder"].endswith("+int8")
