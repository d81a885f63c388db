import pytest
import yaml

from glinker import ConfigBuilder, ConfigError, DAGPipeline

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def processors(cfg):
    return [n["processor"] for n in cfg["nodes"]]


def test_full_topology():
    b = ConfigBuilder(name="full")
    b.l1.spacy(model="en_core_web_sm")
    b.l3.configure(model=MINILM)
    cfg = b.get_config()
    assert processors(cfg) == ["l1_spacy", "l2_chain", "l3_batch", "l0_aggregator"]
    assert DAGPipeline(cfg).order == ["l1", "l2", "l3", "l0"]
    l2 = cfg["nodes"][1]
    assert l2["inputs"]["mentions"] == {"source": "l1_result", "fields": "entities"}
    assert l2["config"]["layers"] == [{"type": "dict", "priority": 0}]


def test_reranker_topology_reads_l4():
    b = ConfigBuilder()
    b.l1.gliner(model="some/gliner", labels=["disease"])
    b.l3.configure(model="some/linker")
    b.l4.configure(model="some/reranker", max_labels=5, threshold=0.3)
    cfg = b.build()
    assert processors(cfg) == ["l1_gliner", "l2_chain", "l3_batch", "l4_reranker", "l0_aggregator"]
    l0 = cfg["nodes"][-1]
    assert l0["inputs"]["l3_entities"]["source"] == "l4_result"
    assert DAGPipeline(cfg).order == ["l1", "l2", "l3", "l4", "l0"]


def test_linking_only_reads_input_entities():
    b = ConfigBuilder()
    b.l3.configure(model=MINILM)
    cfg = b.build()
    assert processors(cfg) == ["l2_chain", "l3_batch", "l0_aggregator"]
    assert cfg["nodes"][0]["inputs"]["mentions"] == {"source": "$input", "fields": "entities"}


def test_l2_l4_topology():
    b = ConfigBuilder()
    b.l4.configure(model="some/reranker")
    assert processors(b.build()) == ["l2_chain", "l4_reranker", "l0_aggregator"]


def test_build_without_linker_fails():
    with pytest.raises(ConfigError, match="configure L3"):
        ConfigBuilder().build()


def test_builder_options_are_validated_at_build():
    b = ConfigBuilder()
    b.l3.configure(model=MINILM, threshold=3.0)
    with pytest.raises(ConfigError, match=r"node 'l3'.*threshold"):
        b.build()


def test_save_writes_loadable_yaml(tmp_path):
    b = ConfigBuilder(name="saved")
    b.l1.dictionary(stop_words=["the"])
    b.l2.add("dict").add("faiss", top_k=10)
    b.l2.embeddings(enabled=True, model_name=MINILM)
    b.l3.configure(model=MINILM, backend="dense")
    b.l0.configure(min_confidence=0.2, strict_matching=False)
    b.set_schema_template("{label} ({entity_type})")
    path = b.save(tmp_path / "sub" / "cfg.yaml")
    loaded = yaml.safe_load(path.read_text())
    assert loaded == b.build()
    pipe = DAGPipeline.from_yaml(path)
    assert pipe.node_configs["l0"].min_confidence == 0.2
    assert pipe.node("l2").template == "{label} ({entity_type})"
    assert [layer.type for layer in pipe.node_configs["l2"].layers] == ["dict", "faiss"]
    assert yaml.safe_load(pipe.to_yaml())["nodes"][1]["config"]["layers"][1]["top_k"] == 10
