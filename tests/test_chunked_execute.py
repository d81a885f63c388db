"""One execute call over many texts runs the pipeline in chunks of ``chunk_texts``: the same results."""

import math

import pytest

from glinker import DAGExecutor, LimitError
from glinker.errors import ConfigError
from glinker.kb.store import EntityStore
from tests.conftest import model_free_config


def outputs(context) -> dict:
    return {key: value.to_dict() for key, value in context.get_all_outputs().items()}


def assert_close(a, b, where: str = "") -> None:
    """Equal nested data, floats equal to 1e-6."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, abs_tol=1e-6), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def texts(example_texts) -> list[str]:
    return [*example_texts, "", "No entity here.", *reversed(example_texts)]


def linking_only(config: dict) -> dict:
    """The model-free pipeline with mentions given in the input instead of found by L1."""
    nodes = [n for n in config["nodes"] if n["id"] != "l1"]
    nodes[0]["requires"], nodes[1]["requires"] = [], ["l2"]
    nodes[0]["inputs"]["mentions"] = {"source": "$input", "fields": "entities"}
    nodes[1]["inputs"]["l1_entities"] = {"source": "$input", "fields": "entities"}
    return {**config, "nodes": nodes}


@pytest.mark.parametrize("mentions", ["l1", "given"])
@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_chunked_runs_equal_one_run_model_free(example_kb_path, texts, chunk, mentions):
    config = model_free_config() if mentions == "l1" else linking_only(model_free_config())
    request = {"texts": texts}
    if mentions == "given":
        request["entities"] = [[{"start": 0, "end": min(5, len(t))}] if t.strip() else [] for t in texts]
    whole, chunked = DAGExecutor(config), DAGExecutor(config, chunk_texts=chunk)
    for executor in (whole, chunked):
        executor.load_entities(example_kb_path)
    assert len(texts) > chunk
    one, parts = whole.execute(request), chunked.execute(request)
    assert outputs(parts) == outputs(one)
    assert parts.get("l0_result").stats == one.get("l0_result").stats
    assert parts.get("$input")["texts"] == texts
    assert set(parts.timings()) == set(one.timings())


def test_chunked_runs_equal_one_run_dense(gazetteer_executor, texts, monkeypatch):
    """Gazetteer + dict/FAISS L2 + dense L3 (MiniLM): the same candidates, order and links. The
    encoder's floats differ in the 7th decimal between batch compositions (as between any two batch
    sizes), so floats are compared to 1e-6."""
    request = {"texts": texts[:7]}
    one = outputs(gazetteer_executor.execute(request))
    monkeypatch.setattr(gazetteer_executor, "chunk_texts", 3)
    assert_close(outputs(gazetteer_executor.execute(request)), one)


def test_empty_batch_and_errors_name_the_chunk(example_kb_path):
    config = model_free_config()
    config["nodes"][1]["config"]["max_mentions_per_text"] = 1
    executor = DAGExecutor(config, chunk_texts=2)
    executor.load_entities(example_kb_path)
    assert executor.execute({"texts": []}).get("l0_result").entities == []
    with pytest.raises(LimitError, match="text 1 has 2 mentions") as error:
        executor.execute({"texts": ["Paris", "Paris", "Paris", "Paris and Texas"]})
    assert "from texts[2]" in "\n".join(error.value.__notes__)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "8"])
def test_chunk_texts_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="chunk_texts"):
        DAGExecutor(model_free_config(), chunk_texts=bad)


def test_candidates_share_their_kb_row_across_chunks(example_kb_path, texts):
    """Results hold each KB row once (memory grows with mentions, not with mentions x row bytes); a reloaded
    KB gives candidates of its new rows."""
    executor = DAGExecutor(model_free_config(), chunk_texts=2)
    executor.load_entities(str(example_kb_path))
    results = executor.execute({"texts": texts * 2}).get("l0_result").entities
    by_row: dict[int, list] = {}
    for entity in (e for per_text in results for e in per_text):
        for candidate in entity.candidates:
            by_row.setdefault(candidate.kb_row, []).append(candidate)
    repeated = [c for c in by_row.values() if len(c) > 1]
    assert repeated, "the example texts mention some entity twice"
    for same in repeated:
        assert all(c.description is same[0].description and c.aliases is same[0].aliases for c in same)
    store = EntityStore()
    store.load([{"entity_id": "a", "label": "Paris", "description": "city"}])
    assert store.candidate(0).description == "city"
    store.clear()
    store.load([{"entity_id": "b", "label": "Texas", "description": "state"}])
    assert (store.candidate(0).entity_id, store.candidate(0).label, store.candidate(0).description) == ("b", "Texas", "state")
