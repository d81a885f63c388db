"""Corrupted kb_dirs: random damage to any file or to the manifest.

Property: opening gives a KnowledgeBaseError naming the damaged file (or the manifest), or a KB whose
lookups all run; with verify="full" every damaged file is refused. FAISS reads files in C++, so
damaged FAISS indexes are opened in a subprocess: a crash there would be a segfault, not an exception.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import KnowledgeBase, KnowledgeBaseError
from glinker.kb.gazetteer import Gazetteer
from tests.conftest import DATA, ROOT, costly


class HashEncoder:
    """A model-free stand-in for a sentence encoder: a fixed random unit vector per text."""

    model_id = "test/hash-encoder"
    dim = 16

    def encode(self, texts, batch_size=64, progress=False, desc=""):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def build(out: Path, kind: str) -> Path:
    """A kb_dir with an index of ``kind``: flat, hnsw, ivf, or ivf-sq8 (hits re-scored against 8-bit codes)."""
    index_type, _, refine = kind.partition("-")
    kb = KnowledgeBase()
    kb.load(DATA / "entities.jsonl")
    kb.vector_store.configure(refine=refine or "vectors")
    encoder = HashEncoder()
    kb.vectors(encoder, "entities", "{label}: {description}")
    kb.vector_index(encoder, "names", index_type=index_type)
    kb.save_dir(out, encoder.model_id, "{label}: {description}", index_type=index_type)
    return out


@pytest.fixture(scope="module")
def kb_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kb_dirs")
    return {kind: build(root / kind, kind) for kind in ("flat", "hnsw", "ivf", "ivf-sq8")}


def exercise(kb: KnowledgeBase) -> None:
    """Everything a pipeline reads from a KB."""
    store = kb.store
    for row in range(store.num_rows):
        store.fields(row)
        store.candidate(row)
    store.rows_of(["Q90", "Q60", "missing"])
    names = kb.name_index()
    for query in ("Paris", "Amazon River", "Georgia", "new york", "Washington"):
        key = names.exact(query)
        if key is not None:
            names.entity_rows(key)
        for key in names.similar(query, 10, 0.2)[0]:
            names.entity_rows(int(key))
        names.canonical(query)
    text = "Paris, Texas and the Amazon River (AR), Atlanta in Georgia, New York City"
    assert all(text[m.start : m.end] == m.text for m in Gazetteer(kb).find(text))
    for key, index in kb.vector_store.indexes.items():
        queries = HashEncoder().encode(["Paris", "Amazon"])
        _, ids = index.search(queries, 5)
        assert ((ids >= -1) & (ids < len(kb.vector_store.sets[key].matrix))).all()


def damage(path: Path, data) -> None:
    """Truncate, or overwrite a few bytes (anywhere, or in the header) with random values."""
    raw = bytearray(path.read_bytes())
    how = data.draw(st.sampled_from(["truncate", "overwrite", "header"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    else:
        hi = min(len(raw), 128) if how == "header" else len(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, hi - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))


def names_the_file(message: str, kb_dir: Path, name: str) -> bool:
    return str(kb_dir / name) in message or f"{kb_dir}: entities.popularity.npy or entities.name_start.npy" in message


@given(st.sampled_from(["flat", "hnsw", "ivf-sq8"]), st.sampled_from(["size", "none"]), st.data())
def test_damaged_arrays_are_named_or_harmless(kb_dirs, kind, verify, data):
    source = kb_dirs[kind]
    name = data.draw(st.sampled_from(sorted(p.name for p in source.glob("*.npy"))))
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        shutil.copytree(source, kb_dir)
        damage(kb_dir / name, data)
        try:
            kb = KnowledgeBase.open(kb_dir, verify=verify)
        except KnowledgeBaseError as exc:
            assert names_the_file(str(exc), kb_dir, name), str(exc)
            return
        exercise(kb)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivf-sq8"])
def test_full_verification_refuses_every_damaged_file(kb_dirs, kind, tmp_path):
    files = sorted(p.name for p in kb_dirs[kind].iterdir() if p.name != "manifest.json")
    assert (kind == "flat") != ("index.names.faiss" in files)
    for name in files:
        for cut in (False, True):
            kb_dir = tmp_path / f"{name}-{cut}"
            shutil.copytree(kb_dirs[kind], kb_dir)
            raw = bytearray((kb_dir / name).read_bytes())
            raw = raw[:-1] if cut else raw[:-1] + bytes([raw[-1] ^ 1])
            (kb_dir / name).write_bytes(bytes(raw))
            with pytest.raises(KnowledgeBaseError, match=rf"{kb_dir / name}: (checksum mismatch|\d+ bytes, the manifest)"):
                KnowledgeBase.open(kb_dir)


json_value = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats() | st.text(max_size=25),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                    max_size=3), max_leaves=6)
file_name = st.sampled_from(["vectors.names.npy", "entities.ids.data.npy", "../outside.npy", "/etc/passwd", "", ".",
                             "index.names.faiss", "manifest.json", "nope.npy"])


def manifest_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from manifest_paths(child, (*prefix, key))


@given(st.sampled_from(["flat", "hnsw", "ivf-sq8"]), st.sampled_from(["full", "size", "none"]), st.data())
def test_damaged_manifests_are_named_or_harmless(kb_dirs, kind, verify, data):
    source = kb_dirs[kind]
    manifest = json.loads((source / "manifest.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in manifest_paths(manifest) if p]))
        parent = manifest
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(st.one_of(json_value, file_name))
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        shutil.copytree(source, kb_dir)
        (kb_dir / "manifest.json").write_text(json.dumps(manifest))
        try:
            kb = KnowledgeBase.open(kb_dir, verify=verify)
        except KnowledgeBaseError as exc:
            assert str(exc).startswith(str(kb_dir)), str(exc)
            return
        exercise(kb)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m["files"].update({"../../etc/passwd": {"bytes": 1, "sha256": "0"}}),
         r"manifest\.json: key 'files' must be names of files inside the kb_dir, not '\.\./\.\./etc/passwd'"),
        (lambda m: m["vectors"]["names"].update(file="/etc/passwd"), r"manifest\.json: key 'vectors\.names' must be"),
        (lambda m: m["files"].pop("names.key_hash.npy"), r"names\.key_hash\.npy: not listed in the manifest"),
        (lambda m: m.update(files=[]), r"manifest\.json: key 'files' must be a mapping"),
        (lambda m: m.update(count="49"), r"manifest\.json: key 'count' must be a non-negative integer"),
        (lambda m: m["index"].update(type="annoy"), r"manifest\.json: key 'index' must be null or"),
        (lambda m: m["index"].pop("file"), r"manifest\.json: key 'index' must be null or"),
        (lambda m: m["vectors"]["entities"].pop("template"), r"manifest\.json: key 'vectors\.entities' must be"),
        (lambda m: m["vectors"]["entities"].update(file=[]), r"manifest\.json: key 'vectors\.entities' must be"),
        (lambda m: m["index"].update(file=["index.names.faiss"]), r"manifest\.json: key 'index' must be null or"),
    ],
)
def test_manifest_regressions(kb_dirs, tmp_path, mutate, message):
    """Regressions: a manifest naming files outside the kb_dir was read; one with a file left out of its
    list skipped that file's checksum; wrong types or missing keys crashed with TypeError/AttributeError/KeyError."""
    kb_dir = shutil.copytree(kb_dirs["hnsw"], tmp_path / "kb")
    manifest = json.loads((kb_dir / "manifest.json").read_text())
    mutate(manifest)
    (kb_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase.open(kb_dir)


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("entities.ids.offsets.npy", lambda a: a * 2, r"entities\.ids\.data\.npy: \d+ bytes, but \S*entities\.ids\.offsets\.npy ends at"),
        ("entities.ids.offsets.npy", lambda a: np.concatenate([a[:1], a[2:3], a[1:2], a[3:]]),
         r"entities\.ids\.offsets\.npy: not an increasing index"),
        ("entities.name_start.npy", lambda a: a[::-1], r"entities\.name_start\.npy: not an increasing index"),
        ("names.name_entity.npy", lambda a: a + 1000, r"names\.name_entity\.npy: expected 130 row numbers below 49"),
        ("names.key_names.npy", lambda a: -a, r"names\.key_names\.npy: expected 130 row numbers"),
        ("entities.names.data.npy", lambda a: a | 0x80, r"entities\.names\.data\.npy: not UTF-8 text"),
        ("vectors.names.npy", lambda a: a.astype(np.int32), r"vectors\.names\.npy: a int32 array of shape"),
        # found by the long run: the check that fails is on the other file of the pair, so both are named
        ("names.key_names.npy", lambda a: a[:-1], r"names\.key_name_offsets\.npy: .* sizes from \S*names\.key_names\.npy"),
        ("names.key_hash.npy", lambda a: a[:-1], r"sizes from \S*names\.key_hash\.npy \(one of them is corrupted\)"),
    ],
)
def test_consistent_looking_but_wrong_arrays_are_named_without_checksums(kb_dirs, tmp_path, name, edit, message):
    """Regressions: with verify='size' or 'none' these loaded, then failed at query time with IndexError or
    UnicodeDecodeError (and a damaged .npy header with tokenize.TokenError at load)."""
    for verify in ("size", "none"):
        kb_dir = shutil.copytree(kb_dirs["hnsw"], tmp_path / f"kb-{verify}")
        path = kb_dir / name
        np.save(path, edit(np.load(path)))
        manifest = json.loads((kb_dir / "manifest.json").read_text())
        manifest["files"][name]["bytes"] = path.stat().st_size
        (kb_dir / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(KnowledgeBaseError, match=message):
            KnowledgeBase.open(kb_dir, verify=verify)


def test_faiss_index_of_another_dimension_is_named(kb_dirs, tmp_path):
    """Found by the long run: a damaged header changed the index's dimension; the search then failed
    with a bare AssertionError inside FAISS."""
    import faiss

    kb_dir = shutil.copytree(kb_dirs["hnsw"], tmp_path / "kb")
    other = faiss.IndexHNSWFlat(8, 32, faiss.METRIC_INNER_PRODUCT)
    other.add(np.random.default_rng(0).normal(size=(130, 8)).astype(np.float32))
    faiss.write_index(other, str(kb_dir / "index.names.faiss"))
    manifest = json.loads((kb_dir / "manifest.json").read_text())
    manifest["files"]["index.names.faiss"]["bytes"] = (kb_dir / "index.names.faiss").stat().st_size
    (kb_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(KnowledgeBaseError, match=r"index\.names\.faiss: index of 8-d vectors, but the name vectors are 16-d"):
        KnowledgeBase.open(kb_dir, verify="size")


FAISS_WORKER = """
import sys
from pathlib import Path
from glinker import KnowledgeBase, KnowledgeBaseError
from glinker.kb.gazetteer import Gazetteer
from tests.test_fuzz_kb_dir import exercise
kb_dir = Path(sys.argv[1])
try:
    exercise(KnowledgeBase.open(kb_dir, verify=sys.argv[2]))
    print("opened")
except KnowledgeBaseError as exc:
    print("refused", exc)
"""


@costly(20)
@given(st.sampled_from(["hnsw", "ivf"]), st.sampled_from(["size", "none"]), st.data())
def test_damaged_faiss_index_never_crashes_the_process(kb_dirs, kind, verify, data):
    with tempfile.TemporaryDirectory() as tmp:
        kb_dir = Path(tmp) / "kb"
        shutil.copytree(kb_dirs[kind], kb_dir)
        damage(kb_dir / "index.names.faiss", data)
        done = subprocess.run([sys.executable, "-c", FAISS_WORKER, str(kb_dir), verify], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
        assert done.stdout.startswith("opened") or f"refused {kb_dir / 'index.names.faiss'}" in done.stdout, done.stdout
