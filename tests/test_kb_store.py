"""EntityStore: reading, validation (raise and skip modes), columns, overwrite."""

import gzip
import json

import numpy as np
import pytest

from glinker import EntityStore, KnowledgeBaseError


def write_jsonl(path, rows, raw_lines=()):
    lines = [json.dumps(r) for r in rows] + list(raw_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    {"entity_id": "E1", "label": "Paris", "aliases": ["City of Light"], "description": "capital of France",
     "entity_type": "city", "popularity": 10, "wikidata": "Q90"},
    {"entity_id": "E2", "label": "Paris, Texas", "aliases": ["Paris"], "popularity": 2},
]


def test_loads_jsonl_gz_list_and_dict(tmp_path):
    path = tmp_path / "kb.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in GOOD) + "\n")
    for source in (path, GOOD, {"E1": GOOD[0], "E2": {k: v for k, v in GOOD[1].items() if k != "entity_id"}}):
        store = EntityStore()
        report = store.load(source)
        assert report.loaded == 2 and len(store) == 2
        row = store.row_of("E1")
        assert store.label(row) == "Paris" and store.aliases(row) == ["City of Light"]
        assert store.descriptions[row] == "capital of France" and store.types[row] == "city"
        assert store.popularity[row] == 10
    assert store.metadata(store.row_of("E1")) == {"wikidata": "Q90"}
    assert store.row_of("E3") is None


def test_columns_are_arrays_not_objects(tmp_path):
    store = EntityStore()
    store.load([{"entity_id": f"id{i}", "label": f"name {i}", "aliases": ["x", "y"]} for i in range(1000)])
    assert isinstance(store.ids.data, np.ndarray) and store.ids.data.dtype == np.uint8
    assert store.names.offsets.dtype == np.int64 and len(store.names) == 3000
    assert store.popularity.dtype == np.int64
    assert store.row_of("id999") == 999 and store.aliases(999) == ["x", "y"]


def test_bom_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD[0]).encode() + b"\r\n\r\n" + json.dumps(GOOD[1]).encode() + b"\r\n")
    store = EntityStore()
    assert store.load(path).loaded == 2


BAD_LINES = [
    ("{not json", "<json>", "invalid JSON"),
    ('["a list"]', "<row>", "expected a JSON object"),
    ('{"label": "no id"}', "entity_id", "required field is missing"),
    ('{"entity_id": "X", "label": ""}', "label", "must not be empty"),
    ('{"entity_id": 5, "label": "int id"}', "entity_id", "expected a string, got int"),
    ('{"entity_id": "X", "label": "L", "aliases": "one"}', "aliases", "expected a list of strings"),
    ('{"entity_id": "X", "label": "L", "aliases": [1]}', "aliases", "found int"),
    ('{"entity_id": "X", "label": "L", "popularity": "high"}', "popularity", "expected an integer"),
    ('{"entity_id": "X", "label": "L", "embedding": [0.1, NaN]}', "<json>", "invalid JSON"),
    ('{"entity_id": "X", "label": "L", "embedding": [0.1, "a"]}', "embedding", "expected numbers"),
    ('{"entity_id": "X", "label": "L", "description": 3}', "description", "expected a string"),
    ('{"entity_id": "E1", "label": "duplicate"}', "entity_id", "duplicate id 'E1'"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_LINES)
def test_bad_row_raises_with_file_line_and_field(tmp_path, line, field, reason):
    path = write_jsonl(tmp_path / "kb.jsonl", GOOD, [line])
    with pytest.raises(KnowledgeBaseError) as info:
        EntityStore().load(path)
    message = str(info.value)
    assert f"{path}, line 3" in message and f"field {field!r}" in message and reason in message


def test_skip_mode_keeps_every_valid_row(tmp_path):
    lines = [line for line, _, _ in BAD_LINES]
    rows = [json.dumps({"entity_id": f"G{i}", "label": f"good {i}"}) for i in range(len(lines))]
    mixed = [x for pair in zip(lines, rows, strict=True) for x in pair]
    path = write_jsonl(tmp_path / "kb.jsonl", GOOD, mixed)
    rejects = tmp_path / "rejects.jsonl"
    store = EntityStore()
    report = store.load(path, on_error="skip", rejects_path=rejects)
    assert report.loaded == 2 + len(rows)
    assert all(f"G{i}" in store for i in range(len(rows)))
    assert len(report.rejected) == len(BAD_LINES)
    assert [r.line for r in report.rejected] == list(range(3, 3 + 2 * len(lines), 2))
    written = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert [w["field"] for w in written] == [f for _, f, _ in BAD_LINES]


def test_wrong_dimension_and_nan_vectors(tmp_path):
    rows = [{"entity_id": "A", "label": "a", "embedding": [0.1, 0.2]},
            {"entity_id": "B", "label": "b", "embedding": [0.1, 0.2, 0.3]}]
    with pytest.raises(KnowledgeBaseError, match=r"list, line 2: field 'embedding': has 3 dimensions"):
        EntityStore().load(rows)
    with pytest.raises(KnowledgeBaseError, match="NaN or infinity"):
        EntityStore().load([{"entity_id": "A", "label": "a", "embedding": [float("nan")]}])
    store = EntityStore()
    store.load([rows[0], {"entity_id": "C", "label": "c"}])
    matrix, _ = store.row_vectors["entities"]
    assert matrix.shape == (2, 2) and np.isnan(matrix[1]).all()


def test_overwrite_and_skip_existing():
    store = EntityStore()
    store.load(GOOD)
    report = store.load([{"entity_id": "E1", "label": "Paris (new)"}])
    assert report.skipped_existing == 1 and store.label(store.row_of("E1")) == "Paris"
    report = store.load([{"entity_id": "E1", "label": "Paris (new)"}, {"entity_id": "E3", "label": "Lyon"}], overwrite=True)
    assert (report.loaded, report.overwritten) == (1, 1)
    assert store.label(store.row_of("E1")) == "Paris (new)"
    assert len(store) == 3 and store.num_rows == 4


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="not found"):
        EntityStore().load(tmp_path / "nope.jsonl")
    with pytest.raises(KnowledgeBaseError, match="is a directory"):
        EntityStore().load(tmp_path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "kb.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps({"entity_id": f"E{i}", "label": f"l{i}"}) for i in range(2000)))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(KnowledgeBaseError, match=r"kb\.jsonl\.gz: cannot read"):
        EntityStore().load(path)


def test_one_reject_record_for_entity_rows_and_job_lines():
    from glinker.errors import Reject
    from glinker.jobs import reader as job_reader
    from glinker.kb import Reject as KbReject

    assert job_reader.Reject is KbReject is Reject
    row = Reject(3, "required field is missing", source="kb.jsonl", field="label")
    assert list(row.to_dict().items()) == [("source", "kb.jsonl"), ("line", 3), ("field", "label"),
                                           ("reason", "required field is missing")]
    assert row.message() == "kb.jsonl, line 3: field 'label': required field is missing"
    line = Reject(4, "invalid JSON", "{not json")
    assert line.to_json() == b'{"line":4,"reason":"invalid JSON","raw":"{not json"}\n'


def test_compact_drops_retired_rows_in_place():
    from glinker import KnowledgeBase

    class LengthEncoder:
        model_id, dim = "test/length", 2

        def encode(self, texts, batch_size=64, progress=False, desc=""):
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    kb = KnowledgeBase()
    kb.load(GOOD)
    kb.load([{"entity_id": "E1", "label": "Paris (new)"}], overwrite=True)
    encoder = LengthEncoder()
    kb.vector_index(encoder, "names")
    store = kb.store
    kb.compact()
    assert kb.store is not store and kb.store.num_rows == len(kb) == 2 and kb.store.alive.all()
    assert [kb.store.label(r) for r in range(2)] == ["Paris, Texas", "Paris (new)"]
    names = kb.vector_store.sets[("names", "test/length", "{label}")].matrix
    assert names[:, 0].tolist() == [len(n) for n in kb.store.names.tolist()]  # name vectors follow their rows
    assert kb.vector_store.indexes == {}  # rebuilt on next use
    assert kb.vector_index(encoder, "names").size == len(kb.store.names)
