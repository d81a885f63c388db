"""The layer contract: each processor module declares its config, sockets and output; the engine reads
only that. A new processor is one module plus one registry line, and so is a new L2 retriever."""

import dataclasses
import inspect
import re

import pytest
from pydantic import BaseModel

from glinker import ConfigBuilder, ConfigError, DAGExecutor, DAGPipeline, registry
from glinker.config import COMPAT_INPUTS, COMPAT_KEYS, L2Config, StrictModel
from glinker.contract import LayerContract, Socket
from glinker.jobs.pipeline import linking_only, load_pipeline
from glinker.retrievers import Hits, Retriever
from glinker.types import L1Output, L2Output, Mention
from tests.conftest import model_free_config

KB = [{"entity_id": "N1", "label": "NATO"}, {"entity_id": "U1", "label": "UNESCO"}, {"entity_id": "P1", "label": "Paris"}]


# --------------------------------------------------------------------------- a processor made here


class CapitalsConfig(StrictModel):
    min_chars: int = 2


def build(config: CapitalsConfig, setup):
    """Mentions: words written in capitals."""
    pattern = re.compile(rf"\b[A-Z]{{{config.min_chars},}}\b")
    return lambda texts: L1Output([[Mention.from_span(t, m.start(), m.end()) for m in pattern.finditer(t)]
                                   for t in texts])


CONTRACT = LayerContract(config=CapitalsConfig, inputs={"texts": Socket()}, output=L1Output)


@pytest.fixture
def capitals(monkeypatch):
    monkeypatch.setitem(registry.PROCESSORS, "capitals", __name__)
    config = model_free_config()
    config["nodes"][0].update(processor="capitals", config={"min_chars": 4})
    return config


def test_a_new_processor_is_one_module_and_one_registry_line(capitals):
    executor = DAGExecutor(capitals)
    executor.load_entities(KB)
    records = executor.execute({"texts": ["NATO met UNESCO in Paris."]}).get("l0_result").entities[0]
    assert [(r.mention_text, r.linked_entity) for r in records] == [("NATO", None), ("UNESCO", None)]
    assert [r.candidates[0].entity_id for r in records] == ["N1", "U1"]
    # the engine recognises it as a mention finder from its declared output, not from its name
    assert [n.processor for n in linking_only(DAGPipeline(capitals)).nodes] == ["l2_chain", "l0_aggregator"]


def test_its_config_is_validated_by_its_own_model(capitals):
    capitals["nodes"][0]["config"]["min_charz"] = 3
    with pytest.raises(ConfigError, match=r"node 'l1'.*'config\.min_charz'"):
        DAGPipeline(capitals)


def test_every_registered_module_declares_a_contract():
    for name in registry.PROCESSORS:
        layer = registry.contract(name)
        assert issubclass(layer.config, BaseModel) and callable(registry.load_layer(name))
        assert layer.inputs and all(isinstance(s, Socket) for s in layer.inputs.values())
    assert registry.processors_with_output(L2Output) == ["l2_chain"]


# --------------------------------------------------------------------------- sockets, checked once


def test_sockets_are_checked_when_the_pipeline_is_validated_not_per_batch(monkeypatch):
    config = model_free_config()
    config["nodes"][1]["inputs"]["mentions"] = {"source": "l1_result", "fields": "entities.text"}
    with pytest.raises(ConfigError, match=r"node 'l2': input 'mentions' \(source 'l1_result', fields "
                                          r"'entities.text'\) must be .* of lists of Mention, got list\[NoneType\]"):
        DAGPipeline(config)
    config = model_free_config()
    config["nodes"][2]["inputs"]["l3_entities"] = {"source": "l1_result", "fields": "entities"}
    with pytest.raises(ConfigError, match=r"input 'l3_entities' .* lists of L3Entity, got list\[list\[Mention\]\]"):
        DAGPipeline(config)


def test_a_required_socket_cannot_read_an_input_the_caller_may_leave_out(monkeypatch):
    import layers.l0_aggregator as l0

    inputs = {**l0.CONTRACT.inputs, "l1_entities": Socket(Mention)}
    monkeypatch.setattr(l0, "CONTRACT", dataclasses.replace(l0.CONTRACT, inputs=inputs))
    config = model_free_config()
    config["nodes"][2]["inputs"]["l1_entities"] = {"source": "$input", "fields": "entities"}
    with pytest.raises(ConfigError, match=r"node 'l0': input 'l1_entities' .* is required, but the source may not"):
        DAGPipeline(config)


def test_unknown_input_fields_are_refused():
    config = model_free_config()
    config["nodes"][0]["inputs"]["texts"] = {"source": "$input", "fields": "documents"}
    with pytest.raises(ConfigError, match=r"node 'l1': input 'texts' .* must be a list of strings, got NoneType"):
        DAGPipeline(config)


def test_only_processors_that_declare_precompute_are_asked(monkeypatch):
    asked = []
    executor = DAGExecutor(model_free_config())
    for node_id, processor in executor.processors.items():  # l0 gets one too, but does not declare it
        monkeypatch.setattr(processor, "precompute", lambda node_id=node_id, **_: asked.append(node_id) or 0,
                            raising=False)
    assert executor.precompute_embeddings() == {"l2": 0}
    assert asked == ["l2"]
    assert executor.count_entities() == {"dict": 0}


# --------------------------------------------------------------------------- builder from the config models


SECTIONS = {
    ("l1", "spacy"): "l1_spacy", ("l1", "gliner"): "l1_gliner", ("l1", "dictionary"): "l1_dictionary",
    ("l3", "configure"): "l3_batch", ("l4", "configure"): "l4_reranker", ("l0", "configure"): "l0_aggregator",
}


@pytest.mark.parametrize(("section", "method"), list(SECTIONS))
def test_builder_methods_take_every_key_of_their_config_model(section, method):
    model = registry.contract(SECTIONS[section, method]).config
    params = inspect.signature(getattr(getattr(ConfigBuilder(), section), method)).parameters
    keys = {info.alias or name for name, info in model.model_fields.items()} | set(COMPAT_KEYS.get(model.__name__, ()))
    assert set(params) == keys
    for name, info in model.model_fields.items():
        if not info.is_required() and name != "model_name":
            assert params[info.alias or name].default == info.get_default(call_default_factory=True), name


def test_builder_l2_options_include_what_had_drifted():
    b = ConfigBuilder()
    b.l2.add("dict", fuzzy_similarity=0.7).add("faiss", top_k=10, query="mention_context")
    b.l2.embeddings(model_name="m", max_length=64)
    b.l2.configure(fusion_k=20, max_mentions_per_text=50, max_candidates=5)
    b.l3.configure(model="m", backend="dense")
    l2 = DAGPipeline(b.build()).node_configs["l2"]
    assert (l2.fusion_k, l2.max_mentions_per_text, l2.max_candidates, l2.embeddings.max_length) == (20, 50, 5, 64)
    assert l2.layers[0].fuzzy.min_similarity == 0.7 and l2.layers[1].top_k == 10
    assert set(inspect.signature(b.l2.configure).parameters) == set(L2Config.model_fields) - {"layers", "embeddings"}


def test_builder_writes_only_what_is_given_and_refuses_unknown_keys():
    b = ConfigBuilder()
    b.l1.spacy("en_core_web_sm", exclude_types=None, device="cuda")
    b.l3.configure(threshold=0.7)
    nodes = b.build()["nodes"]
    assert nodes[0]["config"] == {"model": "en_core_web_sm", "device": "cuda"}
    assert nodes[2]["config"] == {"model_name": "sentence-transformers/all-MiniLM-L6-v2", "threshold": 0.7}
    with pytest.raises(TypeError, match="min_confidense"):
        b.l0.configure(min_confidense=0.3)


# --------------------------------------------------------------------------- compatibility keys, one table


def test_compat_keys_are_accepted_and_dropped_other_keys_refused():
    config = model_free_config()
    config["nodes"][1]["output"]["fields"] = "candidates"
    config["nodes"][1]["config"]["layers"][0].update(ttl=5, write=False, fuzzy={"n_gram_size": 4, "min_similarity": 0.5})
    pipeline = DAGPipeline(config)
    layer = pipeline.node_configs["l2"].layers[0]
    assert not hasattr(layer, "ttl") and layer.fuzzy.min_similarity == 0.5 and not hasattr(layer.fuzzy, "n_gram_size")
    config["nodes"][1]["config"]["layers"][0]["tll"] = 5
    with pytest.raises(ConfigError, match=r"node 'l2'.*tll"):
        DAGPipeline(config)


def test_compat_inputs_are_wired_but_not_passed(monkeypatch):
    assert COMPAT_INPUTS == {"l3_batch": ("l1_entities",), "l4_reranker": ("l1_entities",)}
    monkeypatch.setitem(COMPAT_INPUTS, "l0_aggregator", ("l4_entities",))
    config = model_free_config()
    config["nodes"][2]["inputs"]["l4_entities"] = {"source": "l1_result", "fields": "entities"}
    executor = DAGExecutor(config)
    executor.load_entities(KB)
    assert executor.execute({"texts": ["Paris"]}).get("l0_result").entities[0][0].mention_text == "Paris"


# --------------------------------------------------------------------------- a retriever made here


class FirstLetterRetriever(Retriever):
    """Every entity whose label starts with the mention's first letter."""

    def search(self, queries):
        store = self.kb.store
        out = []
        for query in queries:
            hits = Hits()
            for row in range(store.num_rows):
                if store.label(row)[0].lower() == query.strings[0][0].lower():
                    hits.add(row, 0.5)
            out.append(hits)
        return out


RETRIEVER = FirstLetterRetriever


def test_a_new_retriever_is_one_class_and_one_table_line(monkeypatch):
    monkeypatch.setitem(registry.RETRIEVERS, "letter", __name__)
    b = ConfigBuilder()
    b.l2.add("letter")
    b.l3.configure(model="m", backend="dense")
    assert b.build()["nodes"][0]["config"]["layers"] == [{"type": "letter"}]
    config = model_free_config()
    config["nodes"][1]["config"]["layers"] = [{"type": "letter"}]
    executor = DAGExecutor(config)
    executor.load_entities(KB)
    groups = executor.execute({"texts": ["Paris and NATO"]}).get("l2_result").candidates[0]
    assert [(g.mention.text, [c.entity_id for c in g.candidates], g.candidates[0].source) for g in groups] == [
        ("Paris", ["P1"], "letter"), ("NATO", ["N1"], "letter")]
    assert executor.count_entities() == {"letter": 3}
    with pytest.raises(ConfigError, match=r"unknown L2 layer type 'lettre'"):
        ConfigBuilder().l2.add("lettre")


def test_device_override_reaches_every_device_key():
    b = ConfigBuilder()
    b.l1.gliner("g", ["disease"])
    b.l2.add("dict").add("faiss")
    b.l2.embeddings(model_name="m")
    b.l3.configure(model="m", backend="dense")
    nodes = load_pipeline(b.build(), device="cuda:1").to_dict()["nodes"]
    assert [n["config"].get("device") for n in nodes] == ["cuda:1", None, "cuda:1", None]
    assert nodes[1]["config"]["embeddings"]["device"] == "cuda:1"
