"""A KB split into 4 shards on a local Ray ranks exactly as one index: equal ids and scores, ties included."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("GLINKER_REQUIRE_RAY") != "1":  # CI (.ci/run) installs the ray extra and requires it
    pytest.importorskip("ray")

pytestmark = pytest.mark.slow  # starting a local Ray takes 10-60 s on 2 busy cores

from glinker.kb import KnowledgeBase  # noqa: E402
from glinker.kb.shards import ShardedIndex, install  # noqa: E402
from glinker.kb.vector_index import BLOCK_ROWS, VectorIndex  # noqa: E402
from glinker.kb.vectors import VectorSet  # noqa: E402

ENCODER = "test/encoder"
ACTOR = {"num_cpus": 0}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def vectors_with_ties(n: int = 4 * BLOCK_ROWS + 500, dim: int = 16) -> np.ndarray:
    """Unit vectors where every 1000th row repeats row 7, so that equal vectors straddle the shard borders."""
    matrix = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    matrix[::1000] = matrix[7]
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_sharded_search_equals_one_index(ray_local):
    matrix = vectors_with_ties()
    queries = np.concatenate([matrix[[7, 3, 999]], np.random.default_rng(1).standard_normal((20, 16))])
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    sharded = ShardedIndex.from_matrix(matrix, shards=4, actor_options=ACTOR)
    try:
        assert sharded.size == len(matrix) and sharded.params == {"shards": 4}
        for k in (1, 30, 200):
            scores, rows = sharded.search(queries, k)
            expected_scores, expected_rows = VectorIndex.build(matrix, "flat").search(queries, k)
            np.testing.assert_array_equal(rows, expected_rows)
            np.testing.assert_array_equal(scores, expected_scores)
        assert set(rows[0, :133].tolist()) == {7, *range(0, len(matrix), 1000)}  # the copies of row 7 come first
        assert set(np.searchsorted(sharded.offsets, rows[0, :133], side="right").tolist()) == {1, 2, 3, 4}
    finally:
        sharded.shutdown()


def test_sharded_kb_dir_gives_the_candidates_of_the_unsharded_kb(ray_local, tmp_path):
    matrix = vectors_with_ties()
    kb = KnowledgeBase()
    kb.load([{"entity_id": f"E{i}", "label": f"entity {i}"} for i in range(len(matrix))])
    kb.vector_store.sets[("names", ENCODER, "{label}")] = VectorSet("names", ENCODER, "{label}", matrix)
    kb.save_dir(tmp_path / "kb", ENCODER, None)
    one = KnowledgeBase.open(tmp_path / "kb")
    split = KnowledgeBase.open(tmp_path / "kb")
    sharded = ShardedIndex.from_kb_dir(tmp_path / "kb", shards=4, actor_options=ACTOR)
    try:
        install(split, sharded)
        queries = matrix[[7, 150, 99_999]] + 0.05
        key = ("names", ENCODER, "{label}")
        for k in (5, 40):
            expected = one.vector_store.indexes[key].search(queries, k)
            found = split.vector_store.indexes[key].search(queries, k)
            np.testing.assert_array_equal(found[1], expected[1])
            np.testing.assert_array_equal(found[0], expected[0])
        split.vector_store.configure(nprobe=2)  # reaches the actors (a flat shard has nothing to tune)
    finally:
        sharded.shutdown()


def test_pipeline_on_a_sharded_kb_links_as_unsharded(ray_local, tmp_path, example_kb_path):
    """glinker's faiss layer over 4 shards of the example kb_dir (MiniLM): the same L2 candidates and links."""
    from glinker import DAGExecutor
    from glinker.kb.build import build_kb_dir
    from tests.conftest import MINILM, dense_builder

    build_kb_dir(example_kb_path, tmp_path / "kb", MINILM, progress=False)
    texts = ["Jeff Bezos founded Amazon.", "The Amazon river flows across South America.", "Atlanta, Georgia"]
    results = []
    for shards in (None, 4):
        executor = DAGExecutor(dense_builder("dictionary").build())
        executor.load_entities(tmp_path / "kb")
        if shards:
            sharded = ShardedIndex.from_kb_dir(tmp_path / "kb", shards=shards, actor_options=ACTOR)
            install(executor.kb, sharded)
        ctx = executor.execute({"texts": texts})
        results.append(([[[(c.entity_id, c.score) for c in g.candidates] for g in r]
                         for r in ctx.get("l2_result").candidates],
                        [[(e.mention_text, e.linked_entity and e.linked_entity.entity_id) for e in r]
                         for r in ctx.get("l0_result").entities]))
    sharded.shutdown()
    assert results[0] == results[1] and sum(len(g) for r in results[1][0] for g in r) > 10


def test_bad_shard_counts_are_refused(ray_local):
    with pytest.raises(ValueError, match="at least 1"):
        ShardedIndex.from_matrix(vectors_with_ties(10), shards=0)
