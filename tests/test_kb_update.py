"""kb_dir updates in place (issue 15): generations, only changed texts embedded, equality with a build from
scratch over random upserts and deletes, a reader of the previous generation, SIGKILL during updates, bad
input refused with the kb_dir unchanged, ``glinker kb update/compact/info`` and ``executor.save_kb``."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import DAGExecutor, KnowledgeBase, KnowledgeBaseError
from glinker.cli import main
from glinker.kb.storage import sha256_file
from glinker.kb.update import compact_kb_dir, kb_info, update_kb_dir
from glinker.locks import LockedError, exclusive
from tests.conftest import DATA, ROOT, costly, model_free_config

TEMPLATE = "{label}: {description}"
TEXTS = ["Paris is in France and Texas.", "Amazon and Amazon River.", "Atlanta, Georgia and Tbilisi."]


class HashEncoder:
    """A model-free sentence encoder: a fixed random unit vector per text; counts the texts it embeds."""

    model_id = "test/hash-encoder"
    dim = 16
    max_length = 128

    def __init__(self):
        self.texts = []

    def encode(self, texts, batch_size=64, progress=False, desc=""):
        self.texts += texts
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def build(out: Path, rows) -> Path:
    """A kb_dir built from scratch: names and entity vectors of the hash encoder, exact index."""
    kb = KnowledgeBase()
    kb.load(rows)
    encoder = HashEncoder()
    kb.vectors(encoder, "names")
    kb.vectors(encoder, "entities", TEMPLATE)
    kb.save_dir(out, encoder.model_id, TEMPLATE, index_type="flat")
    return out


def example_rows() -> list[dict]:
    return [orjson.loads(line) for line in (DATA / "entities.jsonl").read_bytes().splitlines() if line.strip()]


def snapshot(kb_dir: Path) -> dict[str, str]:
    """Every file of a kb_dir and its checksum (to prove it unchanged)."""
    return {p.name: sha256_file(p) for p in sorted(kb_dir.iterdir())}


def outcome(executor: DAGExecutor, kb: KnowledgeBase) -> tuple:
    """Candidates and links of the model-free pipeline on TEXTS, and the vector search of a few names."""
    ctx = executor.execute({"texts": TEXTS})
    links = [[(e.mention_text, e.linked_entity and e.linked_entity.entity_id) for e in r]
             for r in ctx.get("l0_result").entities]
    cands = [[[(c.entity_id, round(c.score, 5)) for c in g.candidates] for g in r]
             for r in ctx.get("l2_result").candidates]
    encoder = HashEncoder()
    scores, rows = kb.vector_index(encoder, "names").search(encoder.encode(["Paris", "Amazon", "Georgia"]), 5)
    entity_of = kb.store.name_entity_rows()
    found = [[(kb.store.ids[int(entity_of[r])], round(float(s), 5)) for s, r in zip(ss, rr, strict=True)
              if r >= 0 and kb.store.alive[entity_of[r]]] for ss, rr in zip(scores, rows, strict=True)]
    return links, cands, found


@pytest.fixture
def kb_dir(tmp_path):
    return build(tmp_path / "kb", example_rows())


def test_update_writes_a_generation_and_embeds_only_changed_texts(kb_dir, tmp_path):
    parent = sha256_file(kb_dir / "manifest.json")
    paris = next(r for r in example_rows() if r["entity_id"] == "Q90")
    upsert = [{**paris, "description": "Capital of France"},  # entity text changes, its three names do not
              {"entity_id": "Qnew", "label": "Lutetia", "aliases": ["Paris"], "description": "Roman town"},
              next(r for r in example_rows() if r["entity_id"] == "Q142")]  # unchanged: nothing embedded
    encoder = HashEncoder()
    manifest = update_kb_dir(kb_dir, upsert=upsert, delete=["Q243"], encoder=encoder)
    assert manifest["generation"] == 1 and manifest["parent_sha256"] == parent
    # "Paris" had a vector (a name of the replaced row): only Lutetia and the two entity texts are new
    assert sorted(encoder.texts) == ["Lutetia", "Lutetia: Roman town", "Paris: Capital of France"]
    assert manifest["update"] | {"embed_seconds": 0} == {"added": 1, "replaced": 2, "deleted": 1, "rejected": 0,
                                                         "embedded": {"names": 1, "entities": 2}, "embed_seconds": 0,
                                                         "dead_dropped": 3}
    kb = KnowledgeBase.open(kb_dir, verify="full")
    assert len(kb) == 49 and "Q243" not in kb.store and kb.store.descriptions[kb.store.row_of("Q90")] == "Capital of France"
    info = kb_info(kb_dir)
    assert (info["generation"], info["live"], info["dead"], info["encoder"]) == (1, 49, 0, HashEncoder.model_id)
    assert info["bytes"] == sum(p.stat().st_size for p in kb_dir.iterdir())
    first = sha256_file(kb_dir / "manifest.json")
    second = update_kb_dir(kb_dir, delete=["Qnew"], encoder=HashEncoder())
    assert second["generation"] == 2 and second["parent_sha256"] == first


FIRST = [r["entity_id"] for r in example_rows()[:10]]
ENTITY_IDS = FIRST[:4] + ["E0", "E1"]
WORDS = ["Paris", "Texas", "Amazon", "River", "Georgia", "Atlanta", "France"]
names = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join)
entity = st.fixed_dictionaries({"label": names, "aliases": st.lists(names, max_size=2),
                                "description": st.sampled_from(["a city", "a river", "a country", ""]),
                                "popularity": st.integers(0, 3)})
step = st.one_of(st.tuples(st.just("upsert"), st.sampled_from(ENTITY_IDS), entity),
                 st.tuples(st.just("delete"), st.sampled_from(ENTITY_IDS), st.none()))

# 8 sequences of 1-4 steps in CI (about 1 s each on a loaded 2-core machine); 833 with HYPOTHESIS_PROFILE=long
@costly(12)
@given(st.lists(step, min_size=1, max_size=4))
def test_updates_equal_a_build_from_scratch(tmp_path_factory, steps):
    root = tmp_path_factory.mktemp("seq")
    current = {r["entity_id"]: r for r in example_rows()[:10]}
    kb_dir = build(root / "kb", list(current.values()))
    updated, scratch = DAGExecutor(model_free_config()), DAGExecutor(model_free_config())
    generation = 0
    for n, (op, entity_id, fields) in enumerate(steps):
        if op == "delete" and entity_id not in current:
            before = snapshot(kb_dir)
            with pytest.raises(KnowledgeBaseError, match="unknown id"):
                update_kb_dir(kb_dir, delete=[entity_id], encoder=HashEncoder())
            assert snapshot(kb_dir) == before
            continue
        if op == "upsert":
            current.pop(entity_id, None)  # a replaced entity moves to the end, as its new row does
            current[entity_id] = {"entity_id": entity_id, **fields}
            update_kb_dir(kb_dir, upsert=[current[entity_id]], encoder=HashEncoder())
        else:
            del current[entity_id]
            update_kb_dir(kb_dir, delete=[entity_id], encoder=HashEncoder())
        generation += 1
        reference = build(root / f"scratch{n}", list(current.values()))
        updated.load_entities(kb_dir)  # verify="full"
        scratch.load_entities(reference)
        assert updated.kb.manifest["generation"] == generation
        assert outcome(updated, updated.kb) == outcome(scratch, scratch.kb)
        for kind, template in (("names", "{label}"), ("entities", TEMPLATE)):
            key = (kind, HashEncoder.model_id, template)
            assert np.array_equal(updated.kb.vector_store.sets[key].matrix, scratch.kb.vector_store.sets[key].matrix)


def test_a_reader_of_the_previous_generation_keeps_working(kb_dir):
    reader = DAGExecutor(model_free_config())
    reader.load_entities(kb_dir)
    before = outcome(reader, reader.kb)
    update_kb_dir(kb_dir, delete=["Q90", "Q142"], encoder=HashEncoder())
    compact_kb_dir(kb_dir)
    assert outcome(reader, reader.kb) == before  # its files are gone from the folder, still mapped
    fresh = DAGExecutor(model_free_config())
    fresh.load_entities(kb_dir)
    assert outcome(fresh, fresh.kb) != before and "Q90" not in fresh.kb.store


CHILD = """
import zlib
import numpy as np
from glinker.kb.update import update_kb_dir

class HashEncoder:
    model_id, dim, max_length = "test/hash-encoder", 16, 128

    def encode(self, texts, batch_size=64, progress=False, desc=""):
        out = np.asarray([np.random.default_rng(zlib.crc32(t.encode())).normal(size=16) for t in texts], np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

print("ready", flush=True)
for n in range(10**6):
    update_kb_dir({kb_dir!r}, upsert=[{{"entity_id": "Q90", "label": "Paris", "description": f"version {{n}}"}}],
                  encoder=HashEncoder())
    print("done", flush=True)
"""


def test_sigkill_during_updates_leaves_a_whole_generation(kb_dir):
    """Kill a process that updates the kb_dir in a loop at a random moment, 4 times: the kb_dir always opens
    and verifies, as the last generation the process finished or the one it was swapping in."""
    rng = random.Random(15)
    finished = 0
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(kb_dir=str(kb_dir))], stdout=subprocess.PIPE,
                                 text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert child.stdout.readline() == "ready\n"
        started = time.perf_counter()
        assert child.stdout.readline() == "done\n"  # one update takes this long: kill within the next two
        time.sleep(rng.uniform(0, 2 * (time.perf_counter() - started)))
        child.send_signal(signal.SIGKILL)
        finished += 1 + child.stdout.read().count("done")
        child.wait()
        kb = KnowledgeBase.open(kb_dir, verify="full")
        generation = kb.manifest["generation"]
        assert generation in (finished, finished + 1) and len(kb) == 49
        assert kb.store.descriptions[kb.store.row_of("Q90")].startswith("version ")
        finished = generation
    update_kb_dir(kb_dir, delete=["Q243"], encoder=HashEncoder())  # removes what the killed updates left behind
    assert [p.name for p in kb_dir.parent.iterdir() if p.name.startswith(".kb.")] == []


def test_bad_input_changes_nothing(kb_dir, tmp_path):
    before = snapshot(kb_dir)
    with pytest.raises(KnowledgeBaseError, match="unknown id.*'nope'"):
        update_kb_dir(kb_dir, upsert=[{"entity_id": "Qx", "label": "X"}], delete=["Q90", "nope"], encoder=HashEncoder())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"entity_id": "Qx", "label": "X"}\n{"label": "no id"}\n')
    with pytest.raises(KnowledgeBaseError, match="line 2"):
        update_kb_dir(kb_dir, upsert=bad, encoder=HashEncoder())

    class Other(HashEncoder):
        model_id = "test/other-encoder"

    with pytest.raises(KnowledgeBaseError, match="other-encoder"):
        update_kb_dir(kb_dir, upsert=[{"entity_id": "Qx", "label": "X"}], encoder=Other())
    embedded = [{"entity_id": "Qx", "label": "X", "embedding": [0.1] * 16, "embedding_model_id": "test/other-encoder"}]
    with pytest.raises(KnowledgeBaseError, match="embeddings"):
        update_kb_dir(kb_dir, upsert=embedded, encoder=HashEncoder())
    with exclusive(kb_dir), pytest.raises(LockedError):
        update_kb_dir(kb_dir, delete=["Q90"], encoder=HashEncoder())
    assert snapshot(kb_dir) == before
    rejects = tmp_path / "rejects.jsonl"
    manifest = update_kb_dir(kb_dir, upsert=bad, on_error="skip", rejects_path=rejects, encoder=HashEncoder())
    assert manifest["update"]["added"] == 1 and manifest["update"]["rejected"] == 1
    assert json.loads(rejects.read_text())["line"] == 2


def test_cli_update_compact_info(kb_dir, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("Q90\n\nQ142\n")
    same = tmp_path / "same.jsonl"  # unchanged rows: nothing to embed, so the hash encoder is never loaded
    same.write_text(orjson.dumps(example_rows()[5]).decode() + "\n")
    assert main(["kb", "update", str(kb_dir), "--upsert", str(same), "--delete", str(ids), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["generation"] == 1 and printed["count"] == 47 and printed["embedded"] == {"names": 0, "entities": 0}
    assert main(["kb", "compact", str(kb_dir), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["generation"] == 2
    assert main(["kb", "info", str(kb_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["generation"], info["live"], info["dead"], info["index"]["type"]) == (2, 47, 0, "flat")
    assert main(["kb", "update", str(kb_dir), "--delete", str(ids)]) == 2
    assert "unknown id" in capsys.readouterr().err


def test_executor_remove_entities_and_save_kb(kb_dir):
    executor = DAGExecutor(model_free_config())
    executor.load_entities(kb_dir)
    with pytest.raises(KnowledgeBaseError, match="unknown id"):
        executor.remove_entities(["Q90", "nope"])
    assert executor.remove_entities(["Q90"]) == 1
    assert "Q90" not in str(outcome(executor, executor.kb))
    executor.load_entities([{"entity_id": "Qnew", "label": "Paris", "description": "new"}])
    with pytest.raises(KnowledgeBaseError, match="not opened from a kb_dir"):
        DAGExecutor(model_free_config()).save_kb()
    executor.kb.vectors(HashEncoder(), "names")  # as a faiss layer with this encoder would have
    executor.kb.vectors(HashEncoder(), "entities", TEMPLATE)
    manifest = executor.save_kb()
    assert manifest["generation"] == 1 and manifest["update"]["embedded"] == {"names": 0, "entities": 0}
    reopened = DAGExecutor(model_free_config())
    reopened.load_entities(kb_dir)
    assert outcome(reopened, reopened.kb) == outcome(executor, executor.kb)
    update_kb_dir(kb_dir, delete=["Qnew"], encoder=HashEncoder())
    with pytest.raises(KnowledgeBaseError, match="changed since"):
        executor.save_kb()


@pytest.mark.parametrize("index_type", ["hnsw", "ivf"])
def test_approximate_indexes_follow_updates(tmp_path, index_type):
    kb = KnowledgeBase()
    kb.load(example_rows())
    kb.vectors(HashEncoder(), "entities", TEMPLATE)
    kb.vector_index(HashEncoder(), "names", index_type=index_type)
    kb_dir = tmp_path / "kb"
    kb.save_dir(kb_dir, HashEncoder.model_id, TEMPLATE, index_type=index_type)
    added = [{"entity_id": "Qnew", "label": "Lutetia", "description": "Roman town"}]
    for change in ({"upsert": added}, {"delete": ["Q90"]}, {}):  # appended to the index; rebuilt; compacted
        manifest = update_kb_dir(kb_dir, **change, encoder=HashEncoder()) if change else compact_kb_dir(kb_dir)
        assert manifest["index"]["type"] == index_type and manifest["index"]["ntotal"] == manifest["names"]
        opened = KnowledgeBase.open(kb_dir, verify="full")
        index = opened.vector_index(HashEncoder(), "names", index_type=index_type)
        _, rows = index.search(HashEncoder().encode(["Lutetia"]), 1)
        assert opened.store.names[int(rows[0, 0])] == "Lutetia"


def test_vector_search_finds_live_names_past_many_retired_ones(monkeypatch):
    """Overwritten and removed entities keep their names in the vector index until the KB is compacted;
    the faiss layer must search past them, not fill its top_k with them and return nothing live."""
    from glinker.retrievers import vectors

    monkeypatch.setattr(vectors, "get_encoder", lambda *args, **kwargs: HashEncoder())
    config = model_free_config()
    config["nodes"][1]["config"] = {"layers": [{"type": "faiss", "top_k": 1}],
                                    "embeddings": {"enabled": True, "model_name": "hash"}}
    executor = DAGExecutor(config)
    executor.load_entities([{"entity_id": f"P{i}", "label": "Paris", "description": "city"} for i in range(40)])
    executor.load_entities([{"entity_id": f"P{i}", "label": "Lutetia", "description": "old"} for i in range(20)],
                           overwrite=True)
    executor.remove_entities([f"P{i}" for i in range(20, 39)])
    ctx = executor.execute({"texts": ["Paris"]})
    candidates = [c.entity_id for g in ctx.get("l2_result").candidates[0] for c in g.candidates]
    assert candidates == ["P39"]  # the only live "Paris" (the 39 others retired behind it in the index)


def test_kb_build_options_fix_or_tune_the_ivf_search(tmp_path, monkeypatch):
    """`glinker kb build --nprobe/--k-factor` fix the search parameters (no tuning); `--recall-target` is what
    they are tuned to; both are recorded in the manifest and used when the kb_dir is opened."""
    monkeypatch.setattr("glinker.models.encoder.get_encoder", lambda *args, **kwargs: HashEncoder())
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b"\n".join(orjson.dumps({"entity_id": f"E{i}", "label": f"name {i}"}) for i in range(400)))
    base = ["kb", "build", "--entities", str(rows), "--index", "ivf", "--quiet", "--encoder", "hash"]
    assert main([*base, "--out", str(tmp_path / "fixed"), "--nprobe", "3", "--k-factor", "5"]) == 0
    params = orjson.loads((tmp_path / "fixed" / "manifest.json").read_bytes())["index"]["params"]
    assert params["nprobe"] == 3 and params["k_factor"] == 5 and "recall_target" not in params
    assert KnowledgeBase.open(tmp_path / "fixed").vector_index(HashEncoder(), "names", index_type="ivf").params[
        "nprobe"] == 3
    assert main([*base, "--out", str(tmp_path / "tuned"), "--recall-target", "0.99"]) == 0
    params = orjson.loads((tmp_path / "tuned" / "manifest.json").read_bytes())["index"]["params"]
    assert params["recall_target"] == 0.99 and params["recall"] >= 0.99
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "bad"), "--recall-target", "1.5"])


@pytest.mark.parametrize("suffix, quantize, runtime", [("", "none", "torch"), ("+int8", "int8", "torch"),
                                                       ("+onnx-int8", "int8", "onnx")])
def test_update_without_an_encoder_loads_the_one_the_manifest_names(tmp_path, monkeypatch, suffix, quantize, runtime):
    """A kb_dir built with `--quantize int8` (id `...+int8`) or ONNX int8 is updated by that same encoder."""
    import glinker.models.encoder as encoder_module

    class SuffixedEncoder(HashEncoder):
        model_id = HashEncoder.model_id + suffix

    loaded = []

    def get_encoder(name, **options):
        loaded.append((name, options.get("quantize", "none"), options.get("runtime", "torch")))
        return SuffixedEncoder()

    monkeypatch.setattr(encoder_module, "get_encoder", get_encoder)
    kb = KnowledgeBase()
    kb.load(example_rows())
    kb.vectors(SuffixedEncoder(), "names")
    kb.save_dir(tmp_path / "kb", SuffixedEncoder.model_id, TEMPLATE, index_type="flat")
    upsert = [{"entity_id": "Qnew", "label": "Lutetia", "description": "Roman town"}]
    manifest = update_kb_dir(tmp_path / "kb", upsert=upsert)
    assert loaded == [(HashEncoder.model_id, quantize, runtime)]
    assert manifest["encoder"] == SuffixedEncoder.model_id and manifest["update"]["embedded"]["names"] == 1
