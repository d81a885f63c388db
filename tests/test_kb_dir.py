"""kb_dir: build -> open round trip, refusals (encoder, template, checksum, version), atomic rebuild,
incremental updates, fusion order."""

import json
import mmap

import numpy as np
import pytest

from glinker import DAGExecutor, KnowledgeBase, KnowledgeBaseError
from glinker.kb.build import build_kb_dir
from tests.conftest import MINILM, dense_builder

pytestmark = pytest.mark.slow

TEXTS = ["Jeff Bezos founded Amazon.", "The Amazon flows across South America.", "Atlanta is in Georgia."]


@pytest.fixture(scope="session")
def kb_dir(tmp_path_factory, example_kb_path):
    out = tmp_path_factory.mktemp("kb") / "example"
    build_kb_dir(example_kb_path, out, MINILM, progress=False)
    return out


def run(executor, texts=TEXTS):
    ctx = executor.execute({"texts": texts})
    links = [[(e.mention_text, e.linked_entity and e.linked_entity.entity_id) for e in r]
             for r in ctx.get("l0_result").entities]
    cands = [[[c.entity_id for c in g.candidates] for g in r] for r in ctx.get("l2_result").candidates]
    return links, cands


def test_manifest_describes_the_build(kb_dir):
    m = json.loads((kb_dir / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["count"] == 49 and m["names"] == 130
    assert m["encoder"] == MINILM and m["template"] == "{label}: {description}"
    assert m["dim"] == 384 and m["normalized"] is True and m["index"]["type"] == "flat"
    assert m["index"]["ntotal"] == 130 and m["vectors"]["entities"]["rows"] == 49
    rows = KnowledgeBase.open(kb_dir).store.rows_sha256()  # the entity table the other parts were built from
    assert m["name_index"] == {"ngram": 3, "rows_sha256": rows}
    assert all(info["rows_sha256"] == rows for info in m["vectors"].values())
    for kind, template in (("names", "{label}"), ("entities", "{label}: {description}")):
        assert m["vectors"][kind]["template"] == template and m["vectors"][kind]["normalized"] is True
        assert m["vectors"][kind]["max_length"] == 128  # build_kb_dir's encoder limit
    for name, info in m["files"].items():
        assert (kb_dir / name).stat().st_size == info["bytes"] and len(info["sha256"]) == 64


def memory_mapped(array: np.ndarray) -> bool:
    """True when the array's memory is a file mapping (np.memmap, or a plain view of one)."""
    while array is not None:
        if isinstance(array, mmap.mmap | np.memmap):
            return True
        array = getattr(array, "base", None)
    return False


def test_open_round_trip_matches_in_memory(kb_dir, gazetteer_executor):
    from_dir = DAGExecutor(dense_builder("dictionary").build())
    from_dir.load_entities(kb_dir)
    assert len(from_dir.kb) == 49
    assert memory_mapped(from_dir.kb.vector_store.sets[("names", MINILM, "{label}")].matrix)
    assert memory_mapped(from_dir.kb.store.ids.data)
    assert run(from_dir) == run(gazetteer_executor)


def test_open_does_not_reembed(kb_dir, monkeypatch):
    from glinker.models.encoder import TextEncoder

    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(kb_dir)
    calls = []
    original = TextEncoder.encode
    monkeypatch.setattr(TextEncoder, "encode", lambda self, texts, **kw: calls.append(len(texts)) or original(self, texts, **kw))
    run(executor)
    assert calls and max(calls) < 49  # mentions are encoded; the 49 entities and 130 names are not


def copy_dir(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_encoder_mismatch_refused(kb_dir, tmp_path):
    other = copy_dir(kb_dir, tmp_path / "other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["encoder"] = "some-org/other-encoder"
    (other / "manifest.json").write_text(json.dumps(manifest))
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities([{"entity_id": "A", "label": "Amazon"}])
    with pytest.raises(KnowledgeBaseError, match=r"made with encoder 'some-org/other-encoder'.*pipeline uses"):
        executor.load_entities(other)  # refused when loaded, not at the first batch
    assert len(executor.kb) == 1 and executor.kb.path is None  # the KB is as it was
    opened = KnowledgeBase.open(other)
    with pytest.raises(KnowledgeBaseError, match=r"made with encoder 'some-org/other-encoder'.*pipeline uses"):
        DAGExecutor(dense_builder("dictionary").build(), kb=opened)  # or when a layer that reads it is built


def test_template_mismatch_refused(kb_dir):
    builder = dense_builder("dictionary").set_schema_template("{label} ({entity_type})")
    executor = DAGExecutor(builder.build())
    with pytest.raises(KnowledgeBaseError, match=r"template '\{label\}: \{description\}'.*pipeline uses"):
        executor.load_entities(kb_dir)


def test_corrupted_and_truncated_files_are_named(kb_dir, tmp_path):
    bad = copy_dir(kb_dir, tmp_path / "bad")
    vec = bad / "vectors.names.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(KnowledgeBaseError, match=r"vectors\.names\.npy: checksum mismatch"):
        KnowledgeBase.open(bad)
    KnowledgeBase.open(bad, verify="size")  # same size: only the full check sees it
    (bad / "vectors.entities.npy").write_bytes((bad / "vectors.entities.npy").read_bytes()[:100])
    with pytest.raises(KnowledgeBaseError, match=r"vectors\.entities\.npy: 100 bytes, the manifest says"):
        KnowledgeBase.open(bad, verify="size")
    (bad / "entities.ids.data.npy").unlink()
    with pytest.raises(KnowledgeBaseError, match=r"entities\.ids\.data\.npy: missing"):
        KnowledgeBase.open(bad, verify="size")


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_round_trip(tmp_path, example_kb_path, gazetteer_executor, kind):
    out = tmp_path / kind
    manifest = build_kb_dir(example_kb_path, out, MINILM, index_type=kind, progress=False)
    assert manifest["index"]["type"] == kind and (out / "index.names.faiss").exists()
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(out)
    assert run(executor)[0] == run(gazetteer_executor)[0]
    (out / "index.names.faiss").write_bytes((out / "index.names.faiss").read_bytes()[:100])
    with pytest.raises(KnowledgeBaseError, match=r"index\.names\.faiss: 100 bytes, the manifest says"):
        KnowledgeBase.open(out, verify="size")
    with pytest.raises(KnowledgeBaseError, match=r"index\.names\.faiss: cannot load|index\.names\.faiss"):
        KnowledgeBase.open(out, verify="none")


def test_newer_format_and_non_kb_dirs_refused(kb_dir, tmp_path):
    newer = copy_dir(kb_dir, tmp_path / "newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KnowledgeBaseError, match=r"format version 99.*up to 5"):
        KnowledgeBase.open(newer)
    with pytest.raises(KnowledgeBaseError, match="not a kb_dir"):
        KnowledgeBase.open(tmp_path)


def as_format_1(kb_dir):
    """Rewrite a kb_dir's manifest as format 1 wrote it (no name index parameters, less per kind of vectors)."""
    manifest = json.loads((kb_dir / "manifest.json").read_text())
    manifest["format_version"] = 1
    del manifest["name_index"]
    for info in manifest["vectors"].values():
        del info["normalized"], info["max_length"]
    (kb_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return kb_dir


def test_format_1_kb_dirs_still_open(kb_dir, tmp_path, gazetteer_executor):
    old = as_format_1(copy_dir(kb_dir, tmp_path / "v1"))
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(old)
    assert executor.kb.name_index().ngram == 3
    assert run(executor) == run(gazetteer_executor)
    manifest = json.loads((kb_dir / "manifest.json").read_text())
    del manifest["name_index"]  # format 2 records it: a manifest without it is refused
    (tmp_path / "v1" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KnowledgeBaseError, match=r"manifest\.json: key 'name_index' must be \{ngram"):
        KnowledgeBase.open(tmp_path / "v1")


def test_interrupted_build_keeps_previous_index(kb_dir, tmp_path, example_kb_path, monkeypatch):
    target = copy_dir(kb_dir, tmp_path / "target")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    import glinker.kb.storage as storage

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(storage, "_swap_into_place", crash)
    with pytest.raises(KeyboardInterrupt):
        build_kb_dir([{"entity_id": "N", "label": "new"}], target, MINILM, progress=False)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert len(KnowledgeBase.open(target)) == 49


def test_rebuild_replaces_atomically(tmp_path, example_kb_path):
    out = tmp_path / "kb"
    build_kb_dir([{"entity_id": "A", "label": "alpha"}], out, MINILM, progress=False)
    build_kb_dir(example_kb_path, out, MINILM, progress=False)
    assert len(KnowledgeBase.open(out)) == 49
    (tmp_path / "notkb").mkdir()
    with pytest.raises(KnowledgeBaseError, match="not a kb_dir"):
        build_kb_dir(example_kb_path, tmp_path / "notkb", MINILM, progress=False)


def test_incremental_add_extends_faiss_index(kb_dir):
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(kb_dir)
    run(executor)
    index = executor.kb.vector_store.indexes[("names", MINILM, "{label}")]
    size = index.size
    report = executor.load_entities([{"entity_id": "X1", "label": "Danube", "aliases": ["Donau"],
                                      "description": "River in Central Europe"}])
    assert report.loaded == 1
    links, _ = run(executor, ["The Danube flows through Vienna."])
    assert links == [[("Danube", "X1")]]
    assert executor.kb.vector_store.indexes[("names", MINILM, "{label}")] is index and index.size == size + 2


def test_overwrite_retires_old_row(kb_dir):
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities(kb_dir)
    executor.load_entities([{"entity_id": "Q3884", "label": "Amazon.com, Inc.", "aliases": ["Amazon"],
                             "description": "American online retailer"}], overwrite=True)
    _, cands = run(executor, ["Jeff Bezos founded Amazon."])
    for groups in cands:
        for ids in groups:
            assert ids.count("Q3884") <= 1
    assert "Q3884" in cands[0][1]
    assert len(executor.kb) == 49


def test_save_after_overwrite_compacts(tmp_path, example_kb_path):
    kb = KnowledgeBase()
    kb.load(example_kb_path)
    kb.load([{"entity_id": "Q90", "label": "Paris", "description": "French capital"}], overwrite=True)
    kb.save_dir(tmp_path / "c")
    reopened = KnowledgeBase.open(tmp_path / "c")
    assert len(reopened) == 49 and reopened.store.num_rows == 49
    assert reopened.store.descriptions[reopened.store.row_of("Q90")] == "French capital"


def test_fusion_puts_exact_hits_first_and_dedups(gazetteer_executor):
    ctx = gazetteer_executor.execute({"texts": ["Washington"], "entities": [[{"text": "Washington", "start": 0, "end": 10}]]})
    group = ctx.get("l2_result").candidates[0][0]
    ids = [c.entity_id for c in group.candidates]
    assert len(ids) == len(set(ids))
    exact = {"Q1223", "Q61", "Q23"}
    assert set(ids[:3]) == exact
    assert [c.entity_id for c in group.candidates[:3]] == ["Q61", "Q23", "Q1223"]  # ties: popularity desc
    assert all(c.score == 1.0 for c in group.candidates[:3])
    assert all("dict" in c.source for c in group.candidates[:3])
    assert any(c.source == "faiss" for c in group.candidates[3:])


def test_faiss_query_with_context(example_kb_path):
    text = "The singer Mercury fronted the rock band Queen."
    ranked = {}
    for query in ("mention", "mention_context"):
        builder = dense_builder(None)
        builder._l2_layers = [{"type": "faiss", "priority": 0, "top_k": 5, "query": query}]
        executor = DAGExecutor(builder.build())
        executor.load_entities(example_kb_path)
        ctx = executor.execute({"texts": [text], "entities": [[{"text": "Mercury", "start": 11, "end": 18}]]})
        ranked[query] = [c.entity_id for c in ctx.get("l2_result").candidates[0][0].candidates]
    assert len(ranked["mention_context"]) == 5 and ranked["mention"] != ranked["mention_context"]
    with_context = ranked["mention_context"]
    assert "Q15862" in with_context[:2]  # the band, named only in the context
    assert with_context.index("Q15869") < min(with_context.index(e) for e in ("Q308", "Q925") if e in with_context)
