"""IVF at scale: nprobe tuned at build time to a recall target, recorded in the manifest, overridable; hits
re-scored from the KB's own vectors (no second copy in the index file) or from 8-bit codes (refine sq8); kb_dirs of the earlier format
(FAISS refine against float16 copies) still open and search as before."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from glinker.errors import KnowledgeBaseError
from glinker.kb import KnowledgeBase
from glinker.kb.ivf_lists import list_ids
from glinker.kb.vector_index import VectorIndex, _exact_top_k, recall_at
from glinker.kb.vectors import VectorSet

faiss = pytest.importorskip("faiss")

ENCODER = "test/encoder"
KEY = ("names", ENCODER, "{label}")


def latent_vectors(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Noisy copies of points near a 4-d subspace: neighbourhoods IVF finds hard (the benchmark's ``latent``)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2_000, 4)) @ rng.standard_normal((4, dim))
    matrix = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, dim))
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def matrix():
    return latent_vectors(20_000)


def queries_near(matrix: np.ndarray, count: int = 300) -> np.ndarray:
    rng = np.random.default_rng(5)
    q = matrix[rng.choice(len(matrix), count, replace=False)] + 0.02 * rng.standard_normal((count, matrix.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def test_nprobe_is_tuned_to_the_recall_target(matrix):
    loose = VectorIndex.build(matrix, "ivf", recall_target=0.5)
    tight = VectorIndex.build(matrix, "ivf", recall_target=0.97)
    assert loose.params["refine"] == "vectors" and loose.params["nlist"] == 141
    assert tight.params["nprobe"] * tight.params["k_factor"] > loose.params["nprobe"] * loose.params["k_factor"]
    for index, target in ((loose, 0.5), (tight, 0.97)):
        assert index.params["recall_target"] == target and index.params["recall"] >= target
        assert index.params["recall_at"] == 30 and index.params["tune_queries"] == 500
    queries = queries_near(matrix)
    exact = _exact_top_k(matrix, queries, 30)[1]
    assert recall_at(tight.search(queries, 30)[1], exact) >= 0.95  # on queries it was not tuned on


def test_hits_are_rescored_exactly_from_the_vectors(matrix):
    index = VectorIndex.build(matrix, "ivf", search={"nprobe": 4})
    assert index.index.ntotal == len(matrix) and "recall" not in index.params and index.params["nprobe"] == 4
    queries = queries_near(matrix, 300)  # several blocks of hits, re-scored on threads
    scores, ids = index.search(queries, 30)
    np.testing.assert_allclose(scores, np.einsum("qkd,qd->qk", matrix[ids], queries), rtol=1e-6)
    order = np.lexsort((ids, -scores), axis=1)
    assert (order == np.arange(30)).all()  # best first, ties by id
    one_block = [index.search(queries[lo : lo + 50], 30) for lo in range(0, 300, 50)]
    np.testing.assert_array_equal(ids, np.concatenate([found for _, found in one_block]))
    np.testing.assert_array_equal(scores, np.concatenate([found for found, _ in one_block]))


def test_manifest_records_the_tuning_and_users_override_it(matrix, tmp_path):
    kb = KnowledgeBase()
    kb.load([{"entity_id": f"E{i}", "label": f"entity {i}"} for i in range(len(matrix))])
    kb.vector_store.sets[KEY] = VectorSet(*KEY, matrix)
    kb.vector_store.configure(recall_target=0.9)
    manifest = kb.save_dir(tmp_path / "kb", ENCODER, None, index_type="ivf", dtype="float16")
    params = manifest["index"]["params"]
    assert manifest["format_version"] == 3 and params["lists"] == "mapped"  # glinker before 3 cannot read it
    assert params["recall_target"] == 0.9 and params["recall"] >= 0.9 and params["refine"] == "vectors"
    assert json.loads((tmp_path / "kb" / "manifest.json").read_text())["index"]["params"] == params
    index_bytes = (tmp_path / "kb" / "index.names.faiss").stat().st_size
    assert index_bytes < len(matrix) * (matrix.shape[1] // 8 + 8) * 1.5  # 4-bit codes and ids, no vector copy
    opened = KnowledgeBase.open(tmp_path / "kb")
    index = opened.vector_store.indexes[KEY]
    assert index.params == params and faiss.extract_index_ivf(index.index).nprobe == params["nprobe"]
    queries = queries_near(matrix, 50)
    opened.vector_store.configure(nprobe=141, k_factor=100)  # every list, 1,000 hits re-scored: all but exact
    assert faiss.extract_index_ivf(index.index).nprobe == 141 and index.params["k_factor"] == 100
    exact = _exact_top_k(opened.vector_store.sets[KEY].matrix, queries, 10)[1]
    assert recall_at(index.search(queries, 10)[1], exact) > 0.99
    with pytest.raises(ValueError, match="unknown search parameters"):
        opened.vector_store.configure(probes=3)
    with pytest.raises(ValueError, match="recall_target"):
        opened.vector_store.configure(recall_target=1.5)


def test_inverted_lists_are_memory_mapped_and_take_updates(matrix, tmp_path):
    """A saved fast-scan index opens with its lists mapped from the file (not read into memory), finds what
    the index in memory finds, and copies its lists back into memory when vectors are added."""
    built = VectorIndex.build(matrix[:15_000], "ivf", search={"nprobe": 8})
    assert built.save(tmp_path / "index.faiss") and built.params["lists"] == "mapped"
    opened = VectorIndex.load(tmp_path / "index.faiss", "ivf", built.params, matrix[:15_000])
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(opened.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.filename == str(tmp_path / "index.faiss")
    queries = queries_near(matrix, 100)
    for a, b in zip(opened.search(queries, 30), built.search(queries, 30), strict=True):
        np.testing.assert_array_equal(a, b)
    opened.extend_to(matrix)
    built.extend_to(matrix)
    assert opened.size == len(matrix)
    for a, b in zip(opened.search(queries, 30), built.search(queries, 30), strict=True):
        np.testing.assert_array_equal(a, b)
    assert opened.save(tmp_path / "again.faiss")
    reopened = VectorIndex.load(tmp_path / "again.faiss", "ivf", opened.params, matrix)
    np.testing.assert_array_equal(reopened.search(queries, 30)[1], built.search(queries, 30)[1])


def test_searches_meanwhile_an_update_copies_the_mapped_lists(matrix, tmp_path):
    """Searches from other threads go on while an add replaces the mapped lists (no crash, whole answers)."""
    from concurrent.futures import ThreadPoolExecutor

    built = VectorIndex.build(matrix[:15_000], "ivf", search={"nprobe": 8})
    built.save(tmp_path / "index.faiss")
    opened = VectorIndex.load(tmp_path / "index.faiss", "ivf", built.params, matrix[:15_000])
    queries = queries_near(matrix[:15_000], 256)
    with ThreadPoolExecutor(3) as pool:
        searches = [pool.submit(opened.search, queries, 30) for _ in range(20)]
        opened.extend_to(matrix)
        for done in searches:
            assert (done.result()[1] >= 0).all()
    built.extend_to(matrix)
    np.testing.assert_array_equal(opened.search(queries, 30)[1], built.search(queries, 30)[1])


def test_sq8_codes_file_is_faiss_own_format(matrix, tmp_path):
    """Codes written a block at a time are the bytes FAISS writes for the same quantiser holding them all."""
    from glinker.kb.sq_refine import trained, write_encoded

    quantizer = trained(matrix[:2_000])
    write_encoded(tmp_path / "blocks.faiss", quantizer, matrix[:5_000], chunk=999)
    whole = faiss.clone_index(quantizer)
    whole.add(matrix[:5_000])
    faiss.write_index(whole, str(tmp_path / "whole.faiss"))
    assert (tmp_path / "blocks.faiss").read_bytes() == (tmp_path / "whole.faiss").read_bytes()


def test_refine_sq8_rescores_against_mapped_codes_and_takes_updates(matrix, tmp_path):
    """refine sq8: hits re-scored against 8-bit codes (scores near exact, best first, ties by id), the codes
    mapped from their own file when loaded, copied into memory when vectors are added."""
    search = {"nprobe": 16, "k_factor": 8}
    built = VectorIndex.build(matrix[:15_000], "ivf", search=search, refine="sq8")
    exactly = VectorIndex.build(matrix[:15_000], "ivf", search=search)
    assert built.refine_mapped and built.params["refine"] == "sq8" and not built.rescores
    queries = queries_near(matrix, 100)
    scores, ids = built.search(queries, 30)
    assert np.abs(scores - np.einsum("qkd,qd->qk", matrix[ids], queries)).max() < 0.02
    assert (np.lexsort((ids, -scores), axis=1) == np.arange(30)).all()
    exact = _exact_top_k(matrix[:15_000], queries, 30)[1]
    assert recall_at(ids, exact) >= recall_at(exactly.search(queries, 30)[1], exact) - 0.02
    assert built.save(tmp_path / "index.faiss") == [tmp_path / name for name in
                                                    ("index.faiss", "index.refine.faiss", "index.refine.order.npy")]
    opened = VectorIndex.load(tmp_path / "index.faiss", "ivf", built.params, matrix[:15_000])
    assert opened.refine_mapped and opened.refine.ntotal == 15_000
    for a, b in zip(opened.search(queries, 30), (scores, ids), strict=True):
        np.testing.assert_array_equal(a, b)
    opened.extend_to(matrix)
    built.extend_to(matrix)
    assert not opened.refine_mapped and opened.refine.ntotal == opened.size == len(matrix)
    for a, b in zip(opened.search(queries, 30), built.search(queries, 30), strict=True):
        np.testing.assert_array_equal(a, b)
    scores, ids = built.search(queries, 30)  # the added rows' codes are found as those rows
    assert np.abs(scores - np.einsum("qkd,qd->qk", matrix[ids], queries)).max() < 0.02
    assert recall_at(ids, _exact_top_k(matrix, queries, 30)[1]) >= 0.9
    opened.save(tmp_path / "again.faiss")
    reopened = VectorIndex.load(tmp_path / "again.faiss", "ivf", opened.params, matrix)
    np.testing.assert_array_equal(reopened.search(queries, 30)[1], built.search(queries, 30)[1])


def test_refine_sq8_codes_lie_in_list_order_and_search_as_in_row_order(matrix):
    """The IVF lists hold code numbers, list after list, the codes follow that order (``order``: the row of
    each), and searches return what the same index with row ids in its lists and codes in row order (a
    kb_dir of format 4) returns."""
    built = VectorIndex.build(matrix[:15_000], "ivf", search={"nprobe": 16, "k_factor": 8}, refine="sq8")
    order = built.order
    assert np.array_equal(np.sort(order), np.arange(15_000))
    numbers = [ids.copy() for ids in list_ids(built.index)]
    assert np.array_equal(np.concatenate(numbers), np.arange(15_000))
    quantizer = faiss.extract_index_ivf(built.index).quantizer
    assert (np.diff(quantizer.search(matrix[order], 1)[1][:, 0]) >= 0).all()  # rows grouped by list
    codes = faiss.rev_swig_ptr(built.refine.codes.data(), built.refine.ntotal * built.refine.code_size)
    assert np.array_equal(codes, built.refine.sa_encode(matrix[order]).ravel())
    rows_index = faiss.clone_index(built.index)
    for ids in list_ids(rows_index):
        ids[:] = order[ids]
    rows_codes = faiss.IndexScalarQuantizer(built.dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    rows_codes.sq, rows_codes.is_trained = built.refine.sq, True
    rows_codes.add(matrix[:15_000])
    params = {key: value for key, value in built.params.items() if key != "codes_order"}
    in_row_order = VectorIndex("ivf", rows_index, params, matrix[:15_000], rows_codes)
    queries = queries_near(matrix, 100)
    for a, b in zip(built.search(queries, 30), in_row_order.search(queries, 30), strict=True):
        np.testing.assert_array_equal(a, b)


def test_kb_dir_with_refine_sq8_lists_and_checks_its_codes_file(matrix, tmp_path):
    kb = KnowledgeBase()
    kb.load([{"entity_id": f"E{i}", "label": f"entity {i}"} for i in range(len(matrix))])
    kb.vector_store.sets[KEY] = VectorSet(*KEY, matrix)
    kb.vector_store.configure(recall_target=0.9, refine="sq8")
    manifest = kb.save_dir(tmp_path / "kb", ENCODER, None, index_type="ivf", dtype="float16")
    assert manifest["format_version"] == 5 and manifest["index"]["params"]["refine"] == "sq8"
    assert manifest["index"]["params"]["recall"] >= 0.9 and "index.names.refine.faiss" in manifest["files"]
    assert manifest["index"]["params"]["codes_order"] == "lists" and "index.names.refine.order.npy" in manifest["files"]
    opened = KnowledgeBase.open(tmp_path / "kb", verify="full")
    index = opened.vector_store.indexes[KEY]
    assert index.refine_mapped and opened.vector_store.refine == "sq8"
    queries = queries_near(matrix, 100)
    assert recall_at(index.search(queries, 30)[1], _exact_top_k(matrix, queries, 30)[1]) >= 0.85
    order = tmp_path / "kb" / "index.names.refine.order.npy"
    rows = np.load(order)
    np.save(order, rows + len(matrix))  # the same size, rows out of range
    with pytest.raises(KnowledgeBaseError, match=r"index\.names\.refine\.order\.npy: expected 20000 row numbers"):
        KnowledgeBase.open(tmp_path / "kb", verify="size")
    np.save(order, rows)
    original = (tmp_path / "kb" / "manifest.json").read_text()
    edited = json.loads(original)
    del edited["index"]["params"]["codes_order"]  # codes in list order read as in row order: refused
    (tmp_path / "kb" / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(KnowledgeBaseError, match="codes_order"):
        KnowledgeBase.open(tmp_path / "kb")
    (tmp_path / "kb" / "manifest.json").write_text(original)
    with open(tmp_path / "kb" / "index.names.refine.faiss", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(Exception, match="index.names.refine.faiss"):
        KnowledgeBase.open(tmp_path / "kb")
    with pytest.raises(ValueError, match="refine"):
        kb.vector_store.configure(refine="pq")


def test_an_index_of_the_earlier_format_searches_as_before(matrix, tmp_path):
    """kb_dirs built before refine: vectors hold an IndexRefine with float16 copies; FAISS re-scores them."""
    old = faiss.index_factory(64, "IVF141,PQ16x4fs,Refine(SQfp16)", faiss.METRIC_INNER_PRODUCT)
    old.train(matrix)
    old.add(matrix)
    faiss.write_index(old, str(tmp_path / "old.faiss"))
    params = {"nlist": 141, "nprobe": 8, "codes": "PQ16x4fs", "refine": "SQfp16", "k_factor": 4}
    index = VectorIndex.load(tmp_path / "old.faiss", "ivf", params, matrix)
    assert not index.rescores and faiss.extract_index_ivf(index.index).nprobe == 8 and index.index.k_factor == 4
    queries = queries_near(matrix, 20)
    old.k_factor = 4
    faiss.extract_index_ivf(old).nprobe = 8
    expected = old.search(queries, 10)
    found = index.search(queries, 10)
    np.testing.assert_array_equal(found[1], expected[1])
    np.testing.assert_array_equal(found[0], expected[0])


@pytest.mark.parametrize(("dtype", "block_rows"), [("float16", 7), ("float32", 1 << 16)])
def test_vectors_saved_in_blocks_equal_np_save(matrix, tmp_path, dtype, block_rows):
    from glinker.kb.columns import save_in_blocks

    np.save(tmp_path / "whole.npy", matrix[:1000].astype(dtype))
    save_in_blocks(tmp_path / "blocks.npy", matrix[:1000], dtype, block_rows)
    assert (tmp_path / "whole.npy").read_bytes() == (tmp_path / "blocks.npy").read_bytes()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc/self/status")
def test_released_pages_leave_the_process_but_not_the_data(tmp_path):
    from glinker.kb.columns import load_array, release_pages

    def mapped_mib() -> int:
        return int(next(line for line in open("/proc/self/status") if line.startswith("RssFile")).split()[1]) // 1024

    np.save(tmp_path / "big.npy", np.arange(16 << 20, dtype=np.float32))  # 64 MiB
    array = load_array(tmp_path / "big.npy")
    before = mapped_mib()
    total = float(array.sum(dtype=np.float64))
    assert mapped_mib() - before > 48
    release_pages(array[10:20])  # any view of the mapping
    assert mapped_mib() - before < 16
    assert float(array.sum(dtype=np.float64)) == total
    changed = np.load(tmp_path / "big.npy", mmap_mode="c")
    changed[3] = -1.0
    release_pages(changed)  # copy-on-write: left mapped, the change kept
    assert changed[3] == -1.0


def test_released_codes_leave_the_process_but_not_the_index(tmp_path):
    from glinker.kb.sq_refine import mapped, release_mapped, trained, write_encoded

    def mapped_mib() -> int:
        return int(next(line for line in open("/proc/self/status") if line.startswith("RssFile")).split()[1]) // 1024

    rows = np.random.default_rng(0).standard_normal((600_000, 128)).astype(np.float32)  # 73 MiB of codes
    write_encoded(tmp_path / "codes.faiss", trained(rows[:5_000]), rows)
    codes = mapped(tmp_path / "codes.faiss")
    before = mapped_mib()
    found = codes.search(rows[:3], 5)  # a flat scan reads every code
    assert mapped_mib() - before > 48
    release_mapped(codes)
    assert mapped_mib() - before < 16
    for again, first in zip(codes.search(rows[:3], 5), found, strict=True):
        np.testing.assert_array_equal(again, first)
