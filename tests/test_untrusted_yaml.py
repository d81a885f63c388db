"""Byte bombs and loose values in configs: one bounded YAML loader, strict numbers, bounded text."""

import time
from pathlib import Path

import pytest
import yaml

from glinker import ConfigError, DAGPipeline
from glinker.kb import KnowledgeBase
from glinker.train.config import load_train_config
from glinker.untrusted import MAX_CONFIG_TEXT_BYTES, MAX_YAML_BYTES, parse_yaml
from tests.conftest import ROOT, model_free_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_of_long_strings_is_refused_fast(tmp_path):
    """A 1 MB string repeated by 3,000 aliases (it was accepted: 48 s, 2.9 GB)."""
    lines = [f"long: &s {'x' * 1_000_000}", "nodes:", "  - id: l1", "    processor: l1_dictionary",
             "    output: {key: l1_result}", "    config:", f"      stop_words: [{', '.join(['*s'] * 3000)}]"]
    path = write(tmp_path, "\n".join(lines))
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"pipeline\.yaml: the config holds more than {MAX_CONFIG_TEXT_BYTES:,} "
                                          "bytes of text"):
        DAGPipeline.from_yaml(path)
    assert time.perf_counter() - started < 5


def test_text_bytes_of_dict_configs_and_yaml_file_size_are_bounded(tmp_path):
    config = model_free_config()
    config["nodes"][0]["config"] = {"stop_words": ["é" * 1000] * 6000}  # 12 MB of UTF-8, 6 million characters
    with pytest.raises(ConfigError, match="bytes of text"):
        DAGPipeline(config)
    path = write(tmp_path, "# " + "x" * MAX_YAML_BYTES)
    with pytest.raises(ConfigError, match=rf"pipeline\.yaml: the file is larger than {MAX_YAML_BYTES:,} bytes"):
        DAGPipeline.from_yaml(path)


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 101, "0x" + "f" * 200, "1_000" * 40])
def test_a_huge_integer_is_a_config_error_naming_the_line(tmp_path, number):
    path = write(tmp_path, f"name: x\nnodes:\n  - id: {number}\n")
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: line 3: an integer of [\d,]+ digits; a setting has at most 100"):
        DAGPipeline.from_yaml(path)
    assert parse_yaml(f"a: {'9' * 100}") == {"a": int("9" * 100)}


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("name: a\nnodes: []\nname: b\n", "name", 3, 1),
        ("nodes:\n  - {id: l0, id: l1}\n", "id", 2, 2),
        ("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", "c", 5, 3),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key_and_lines(tmp_path, text, key, line, first):
    with pytest.raises(ConfigError, match=rf"pipeline\.yaml: line {line}: duplicate key '{key}' \(first on line {first}\)"):
        DAGPipeline.from_yaml(write(tmp_path, text))


def test_merge_keys_may_be_overridden():
    assert parse_yaml("base: &b {x: 1, y: 2}\nmine:\n  <<: *b\n  y: 3\n")["mine"] == {"x": 1, "y": 3}


def test_the_training_config_goes_through_the_same_loader(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("task: retriever\ntask: ner\n")
    with pytest.raises(ConfigError, match=r"train\.yaml: line 2: duplicate key 'task'"):
        load_train_config(path)


@pytest.mark.parametrize(
    ("node", "key", "value"),
    [("l2", "max_candidates", True), ("l2", "max_candidates", "30"), ("l2", "max_candidates", 30.0),
     ("l2", "fusion_k", False), ("l0", "position_tolerance", True), ("l0", "min_confidence", True),
     ("l0", "min_confidence", "0.5")],
)
def test_numbers_are_taken_as_written(node, key, value):
    config = model_free_config()
    next(n for n in config["nodes"] if n["id"] == node).setdefault("config", {})[key] = value
    with pytest.raises(ConfigError, match=rf"node '{node}': key 'config\.{key}': Input should be a valid"):
        DAGPipeline(config)


def test_yaml_numbers_and_bundled_configs_still_load(tmp_path):
    config = model_free_config()
    config["nodes"][1]["config"].update(max_candidates=12, fusion_k=10)
    config["nodes"][2]["config"] = {"min_confidence": 1, "position_tolerance": 0}  # an int is a valid float
    pipeline = DAGPipeline.from_yaml(write(tmp_path, yaml.safe_dump(config)))
    assert pipeline.node_configs["l2"].max_candidates == 12
    assert pipeline.node_configs["l0"].min_confidence == 1.0
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        DAGPipeline.from_yaml(path)


def test_kb_extra_fields_are_bounded_in_bytes():
    """Python rows can repeat one long string by reference, as YAML aliases do: bounded like a JSONL line."""
    big = "x" * 1_000_000
    started = time.perf_counter()
    report = KnowledgeBase().load([{"entity_id": "a", "label": "A", "extra": [big] * 3000},
                                   {"entity_id": "b", "label": "B", "aliases": [big]}], on_error="skip")
    assert time.perf_counter() - started < 5
    assert [(r.field, r.reason) for r in report.rejected] == [
        ("extra", "field 'extra' holds more than 67,108,864 bytes of text"),
        ("aliases", "an alias is longer than 1000 characters"),
    ]
