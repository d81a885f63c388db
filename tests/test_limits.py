"""Documented bounds: more candidates, labels or mentions than a bound is a clear error, and bulk jobs
apply the same text length limit as the executor (docs/reliability.md lists them all)."""

import copy

import orjson
import pytest
import yaml

from glinker import ConfigError, DAGExecutor, DAGPipeline, LimitError
from glinker.cli import main
from glinker.config import MAX_CANDIDATES, MAX_LABELS
from glinker.jobs.reader import InputOptions
from glinker.jobs.runner import LinkJob, run_local
from tests.conftest import DATA, model_free_config

TEXTS = {"source": "$input", "fields": "texts"}
CANDIDATES = {"source": "l2_result", "fields": "candidates"}


def with_node(processor: str, config: dict, **extra) -> dict:
    """The model-free pipeline with one more node (validated only: no model is loaded)."""
    cfg = model_free_config()
    inputs = {"texts": TEXTS, "candidates": CANDIDATES}
    cfg["nodes"].append({"id": "extra", "processor": processor, "requires": ["l2"], "inputs": inputs,
                         "output": {"key": "extra_result"}, "config": config, **extra})
    return cfg


def l2_config(**config) -> dict:
    cfg = model_free_config()
    cfg["nodes"][1]["config"].update(config)
    return cfg


def l1_gliner(labels: list[str]) -> dict:
    cfg = model_free_config()
    cfg["nodes"][0].update(processor="l1_gliner", config={"model": "some/gliner", "labels": labels})
    return cfg


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (l2_config(max_candidates=MAX_CANDIDATES + 1), r"node 'l2'.*'config\.max_candidates'.*less than or equal to 1000"),
        (l2_config(layers=[{"type": "dict"}, {"type": "faiss", "top_k": MAX_CANDIDATES + 1}],
                   embeddings={"enabled": True, "model_name": "m"}), r"node 'l2'.*'config\.layers\.1\.top_k'"),
        (l2_config(max_mentions_per_text=0), r"node 'l2'.*'config\.max_mentions_per_text'"),
        (with_node("l3_batch", {"model": "m", "top_k": MAX_CANDIDATES + 1}), r"node 'extra'.*'config\.top_k'"),
        (with_node("l3_batch", {"model": "m", "max_labels": MAX_LABELS + 1}), r"node 'extra'.*'config\.max_labels'"),
        (with_node("l4_reranker", {"model": "m", "max_labels": MAX_LABELS + 1}), r"node 'extra'.*'config\.max_labels'"),
        (l1_gliner([f"type {i}" for i in range(MAX_LABELS + 1)]), r"node 'l1'.*'config\.labels'.*at most 1000"),
    ],
)
def test_bounds_over_the_limit_are_config_errors(config, message):
    with pytest.raises(ConfigError, match=message):
        DAGPipeline(config)


def test_bounds_at_the_limit_are_accepted():
    DAGPipeline(with_node("l3_batch", {"model": "m", "top_k": MAX_CANDIDATES, "max_labels": MAX_LABELS}))
    DAGPipeline(l1_gliner([f"type {i}" for i in range(MAX_LABELS)]))


def test_mentions_per_text_bound(example_kb_path):
    executor = DAGExecutor(l2_config(max_mentions_per_text=3))
    executor.load_entities(example_kb_path)
    texts = ["Paris and Texas.", "Paris in France, Georgia and Atlanta."]
    with pytest.raises(LimitError, match=r"l2_chain: text 1 has 4 mentions, more than max_mentions_per_text=3"):
        executor.execute({"texts": texts})
    linking_only = copy.deepcopy(l2_config(max_mentions_per_text=3))
    linking_only["nodes"] = linking_only["nodes"][1:]
    linking_only["nodes"][0].update(requires=[], inputs={"mentions": {"source": "$input", "fields": "entities"},
                                                          "texts": TEXTS})
    linking_only["nodes"][1].update(requires=["l2"], inputs={"l2_candidates": CANDIDATES, "texts": TEXTS})
    executor = DAGExecutor(linking_only)
    executor.load_entities(example_kb_path)
    mentions = [{"start": i, "end": i + 1} for i in range(4)]
    with pytest.raises(LimitError, match=r"text 0 has 4 mentions"):
        executor.execute({"texts": ["abcd"], "entities": [mentions]})
    assert len(executor.execute({"texts": ["abcd"], "entities": [mentions[:3]]}).get("l0_result").entities[0]) == 3


def test_bulk_jobs_apply_the_text_limit_of_the_executor(tmp_path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(model_free_config()))
    docs = tmp_path / "docs.jsonl"
    docs.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n"
                              for i, t in enumerate(["Paris is in France.", "Texas " * 10, "Atlanta, Georgia."])))
    job = LinkJob(config=config, kb=DATA / "entities.jsonl", input=docs, output=tmp_path / "out.jsonl",
                  reader=InputOptions(max_text_chars=40), rejects=tmp_path / "rejects.jsonl", progress=False)
    summary = run_local(job)
    assert (summary["docs"], summary["rejected"]) == (2, 1)
    [reject] = [orjson.loads(line) for line in (tmp_path / "rejects.jsonl").read_bytes().splitlines()]
    assert reject["line"] == 2 and "60 characters, more than the limit 40" in reject["reason"]
    assert [orjson.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()] == [0, 2]
    assert main(["link", "--config", str(config), "--kb", str(DATA / "entities.jsonl"), "--input", str(docs),
                 "--output", str(tmp_path / "cli.jsonl"), "--max-text-chars", "70", "--quiet"]) == 0
    assert orjson.loads(capsys.readouterr().out.splitlines()[-1])["rejected"] == 0
    assert main(["link", "--config", str(config), "--kb", str(DATA / "entities.jsonl"), "--input", str(docs),
                 "--output", str(tmp_path / "zero.jsonl"), "--max-text-chars", "0", "--quiet"]) == 2
    assert "--max-text-chars must be at least 1" in capsys.readouterr().err
