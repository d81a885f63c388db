"""DAGExecutor.execute from several threads on one executor (gazetteer + names/FAISS + dense MiniLM on the
example KB): the same results as sequential calls, also while entities are being loaded."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from glinker import DAGExecutor
from tests.conftest import dense_builder

pytestmark = pytest.mark.slow

BATCHES = [
    ["Paris is the capital of France."],
    ["Paris, Texas is a city in Lamar County.", "The Amazon flows across South America."],
    ["Jeff Bezos founded Amazon.", "Atlanta is the capital of Georgia.", ""],
    ["Georgia borders Russia and Turkey; its capital is Tbilisi."],
    ["Washington was the first president.", "The Big Apple never sleeps."],
]
NEW = [{"entity_id": "X-NYC", "label": "New York City", "aliases": ["Big Apple"], "entity_type": "city",
        "description": "Most populous city of the United States", "popularity": 50}]


def links(executor: DAGExecutor, batch: list[str]) -> list:
    records = executor.execute({"texts": batch}).get("l0_result").entities
    return [[(r.mention_start, r.mention_end, r.linked_entity and r.linked_entity.entity_id,
              r.linked_entity and round(r.linked_entity.score, 5), [c.entity_id for c in r.candidates])
             for r in per_text] for per_text in records]


def test_four_threads_times_fifty_calls_equal_sequential(gazetteer_executor):
    expected = [links(gazetteer_executor, b) for b in BATCHES]

    def worker(seed: int) -> list[tuple[int, list]]:
        return [((seed + i) % len(BATCHES), links(gazetteer_executor, BATCHES[(seed + i) % len(BATCHES)]))
                for i in range(50)]

    with ThreadPoolExecutor(4) as pool:
        results = [r for rs in pool.map(worker, range(4)) for r in rs]
    assert len(results) == 200
    assert all(got == expected[i] for i, got in results)


def test_loading_entities_while_executing_is_never_half_seen(example_kb_path):
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(example_kb_path)
    before = [links(executor, b) for b in BATCHES]
    loaded = threading.Event()
    start = threading.Barrier(4)

    def worker(seed: int) -> list[tuple[int, bool, list]]:
        start.wait()
        out = []
        for i in range(30):
            k = (seed + i) % len(BATCHES)
            done = loaded.is_set()
            out.append((k, done, links(executor, BATCHES[k])))
        return out

    def loader() -> None:
        start.wait()
        executor.load_entities(NEW)
        loaded.set()

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(worker, s) for s in range(3)] + [pool.submit(loader)]
        results = [r for f in futures[:3] for r in f.result()]
        futures[3].result()
    after = [links(executor, b) for b in BATCHES]
    assert before[4] != after[4], "the new entity should change the links of the last batch"
    for k, done, got in results:
        assert got == after[k] if done else got in (before[k], after[k])


def test_executors_sharing_one_model_in_threads_equal_sequential(gazetteer_executor, example_kb_path):
    """Two executors share the MiniLM encoder (one per model and device): its tokenizer is called one
    thread at a time, its forward passes at once, each on two batch threads."""
    other = DAGExecutor(dense_builder("dictionary").build())
    other.load_entities(example_kb_path)
    assert other.processors["l3"].scorer.encoder is gazetteer_executor.processors["l3"].scorer.encoder
    expected = [links(gazetteer_executor, b) for b in BATCHES]
    start = threading.Barrier(2)

    def worker(executor: DAGExecutor) -> list[tuple[int, list]]:
        start.wait()
        return [(i % len(BATCHES), links(executor, BATCHES[i % len(BATCHES)] * 7)) for i in range(25)]

    with ThreadPoolExecutor(2) as pool:
        results = [r for rs in pool.map(worker, [gazetteer_executor, other]) for r in rs]
    assert len(results) == 50
    assert all(got == expected[k] * 7 for k, got in results)
