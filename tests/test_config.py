"""Config validation: every mistake is a ConfigError naming the node and the key, before any model loads."""

import copy

import pytest
import yaml

from glinker import ConfigBuilder, ConfigError, DAGExecutor, DAGPipeline
from tests.conftest import dense_builder


@pytest.fixture
def config():
    return dense_builder("spacy").build()


def node(cfg, node_id):
    return next(n for n in cfg["nodes"] if n["id"] == node_id)


def test_valid_config_orders_nodes_topologically(config):
    config["nodes"].reverse()
    assert DAGPipeline(config).order == ["l1", "l2", "l3", "l0"]


def test_unknown_processor_names_node(config):
    node(config, "l3")["processor"] = "l3_magic"
    with pytest.raises(ConfigError, match=r"node 'l3'.*unknown processor 'l3_magic'"):
        DAGPipeline(config)


def test_config_key_typo_names_node_and_key(config):
    node(config, "l0")["config"]["min_confidense"] = 0.3
    with pytest.raises(ConfigError, match=r"node 'l0'.*'config\.min_confidense'"):
        DAGPipeline(config)


def test_nested_key_typo(config):
    node(config, "l2")["config"]["layers"][0]["fuzzy"] = {"min_similarty": 0.5}
    with pytest.raises(ConfigError, match=r"node 'l2'.*min_similarty"):
        DAGPipeline(config)


def test_wrong_value_type(config):
    node(config, "l3")["config"]["threshold"] = "high"
    with pytest.raises(ConfigError, match=r"node 'l3'.*'config\.threshold'"):
        DAGPipeline(config)


def test_unknown_node_key(config):
    node(config, "l1")["condition"] = "x > 1"
    with pytest.raises(ConfigError, match=r"node 'l1'.*'condition'"):
        DAGPipeline(config)


def test_missing_input_source(config):
    node(config, "l3")["inputs"]["candidates"]["source"] = "l2_results"
    with pytest.raises(ConfigError, match=r"node 'l3'.*input 'candidates'.*'l2_results'"):
        DAGPipeline(config)


def test_missing_required_input(config):
    del node(config, "l3")["inputs"]["texts"]
    with pytest.raises(ConfigError, match=r"node 'l3'.*missing required input 'texts'"):
        DAGPipeline(config)


def test_unknown_input_name(config):
    node(config, "l3")["inputs"]["mentionz"] = {"source": "$input", "fields": "texts"}
    with pytest.raises(ConfigError, match=r"node 'l3'.*unknown input 'mentionz'"):
        DAGPipeline(config)


def test_cycle_is_named(config):
    node(config, "l1")["requires"] = ["l0"]
    with pytest.raises(ConfigError, match=r"cycle: .*l1.*l0|cycle: .*l0.*l1"):
        DAGPipeline(config)


def test_duplicate_node_id(config):
    config["nodes"].append(copy.deepcopy(node(config, "l0")))
    with pytest.raises(ConfigError, match=r"duplicate node id 'l0'"):
        DAGPipeline(config)


def test_requires_unknown_node(config):
    node(config, "l0")["requires"].append("l9")
    with pytest.raises(ConfigError, match=r"node 'l0'.*unknown node 'l9'"):
        DAGPipeline(config)


@pytest.mark.parametrize("layer", ["redis", "elasticsearch", "postgres"])
def test_unsupported_l2_layer_is_clear(config, layer):
    node(config, "l2")["config"]["layers"].append({"type": layer, "priority": 2})
    with pytest.raises(ConfigError, match=r"not supported.*'dict' and/or 'faiss'"):
        DAGPipeline(config)
    with pytest.raises(ConfigError, match="not supported"):
        ConfigBuilder().l2.add(layer)


def test_faiss_layer_without_encoder(config):
    del node(config, "l2")["config"]["embeddings"]
    with pytest.raises(ConfigError, match=r"node 'l2'.*faiss.*embeddings"):
        DAGPipeline(config)


@pytest.mark.parametrize("template", ["{label.__class__.__mro__}", "{0.__globals__}", "{label!r}", "{label"])
def test_code_like_templates_are_refused(config, template):
    node(config, "l2")["schema"]["template"] = template
    with pytest.raises(ConfigError, match=r"node 'l2'.*schema.template"):
        DAGPipeline(config)


def test_executor_refuses_bad_config_before_loading_models(config, monkeypatch):
    import glinker.dag

    def fail(name):
        raise AssertionError(f"layer {name} was loaded for an invalid config")

    monkeypatch.setattr(glinker.dag, "load_layer", fail)
    node(config, "l0")["config"]["min_confidense"] = 0.3
    with pytest.raises(ConfigError, match="min_confidense"):
        DAGExecutor(config)


def test_yaml_errors_name_the_file(tmp_path, config):
    path = tmp_path / "bad.yaml"
    node(config, "l0")["config"]["min_confidense"] = 0.3
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"bad\.yaml.*min_confidense"):
        DAGPipeline.from_yaml(path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        DAGPipeline.from_yaml(broken)


def test_yaml_tags_are_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("nodes: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        DAGPipeline.from_yaml(path)


def test_glinker_01x_style_config_loads():
    """Keys written by glinker 0.1.x configs (ttl, write, field_mapping, fuzzy.*) are accepted."""
    cfg = {
        "name": "dict_default",
        "nodes": [
            {"id": "l1", "processor": "l1_spacy", "inputs": {"texts": {"source": "$input", "fields": "texts"}},
             "output": {"key": "l1_result"},
             "config": {"model": "en_core_web_sm", "device": "cpu", "batch_size": 1, "min_entity_length": 2,
                        "include_noun_chunks": True}},
            {"id": "l2", "processor": "l2_chain", "requires": ["l1"],
             "inputs": {"mentions": {"source": "l1_result", "fields": "entities"}},
             "output": {"key": "l2_result"}, "schema": {"template": "{label}: {description}"},
             "config": {"max_candidates": 5, "layers": [{
                 "type": "dict", "priority": 0, "write": True, "search_mode": ["exact", "fuzzy"], "ttl": 0,
                 "cache_policy": "always", "field_mapping": {"entity_id": "entity_id", "label": "label"},
                 "fuzzy": {"max_distance": 64, "min_similarity": 0.6, "n_gram_size": 3, "prefix_length": 1}}]}},
            {"id": "l3", "processor": "l3_batch", "requires": ["l2"],
             "inputs": {"texts": {"source": "$input", "fields": "texts"},
                        "candidates": {"source": "l2_result", "fields": "candidates"}},
             "output": {"key": "l3_result"},
             "config": {"model_name": "knowledgator/gliner-linker-large-v1.0", "device": "cpu", "threshold": 0.5,
                        "flat_ner": True, "multi_label": False, "max_length": 512,
                        "use_precomputed_embeddings": True, "cache_embeddings": False}},
            {"id": "l0", "processor": "l0_aggregator", "requires": ["l1", "l2", "l3"],
             "inputs": {"l1_entities": {"source": "l1_result", "fields": "entities"},
                        "l2_candidates": {"source": "l2_result", "fields": "candidates"},
                        "l3_entities": {"source": "l3_result", "fields": "entities"}},
             "output": {"key": "l0_result"},
             "config": {"strict_matching": True, "min_confidence": 0.0, "include_unlinked": True,
                        "position_tolerance": 2}},
        ],
    }
    assert DAGPipeline(cfg).order == ["l1", "l2", "l3", "l0"]
