"""Property-based tests of the entity reader: hostile JSONL files and Python rows.

Property: a load either succeeds or raises KnowledgeBaseError naming the file, line and field; in
skip mode it never raises, every valid row is present with its fields, and every bad line is a reject.
"""

import gzip
import json
import math
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import EntityStore, KnowledgeBase, KnowledgeBaseError
from glinker.kb import reader

WHERE = re.compile(r"^(?P<source>.+), line (?P<line>\d+): field (?P<field>'.*?'|\".*?\"): .+", re.S)

# Text as users write it: any code point but NUL and lone surrogates (those are tested as hostile).
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
name = text.filter(lambda s: s.strip())
vector = st.lists(st.floats(-1e30, 1e30, allow_nan=False), min_size=3, max_size=3)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def valid_rows(draw, index: int) -> dict:
    row = {"entity_id": f"id{index}:{draw(text)}", "label": draw(name)}
    if draw(st.booleans()):
        row["aliases"] = draw(st.lists(text, max_size=3))
    if draw(st.booleans()):
        row["description"] = draw(text)
    if draw(st.booleans()):
        row["entity_type"] = draw(text)
    if draw(st.booleans()):
        row["popularity"] = draw(st.integers(-(2**63), 2**63 - 1))
    if draw(st.booleans()):
        row["wikidata"] = draw(json_value)
    if draw(st.booleans()):
        row["embedding"] = draw(vector)
    return row


WRONG = {
    "entity_id": [5, "", "   ", None, ["a"], {"a": 1}, True, "x" * 1001, "a\x00b"],
    "label": [5, "", "\t\x1f ", ["a"], {"a": 1}, False, "x" * 1001],
    "aliases": ["one", [1], [None], {"a": "b"}, ["x" * 1001], [""] * 10_001, ["a\x00"]],
    "description": [3, [], {}, "x" * 100_001],
    "entity_type": [1.5, ["a"], "x" * 1001],
    "popularity": ["high", 1.5, True, [], 2**64, -(2**64), 1e300],
    "embedding": [[], "v", [True, 1.0, 2.0], ["a", 1.0, 2.0], [1e39, 0.0, 0.0], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0]],
    "embedding_model_id": [5, ["m"]],
}


@st.composite
def bad_lines(draw, valid_ids: list[str]) -> tuple[bytes, str]:
    """A line the reader must reject, and the field its error names."""
    kind = draw(st.sampled_from(["bytes", "truncated", "wrong", "utf8", "nan", "not_object", "duplicate"]))
    base = draw(valid_rows(10**6 + draw(st.integers(0, 10**6))))
    base.pop("embedding", None)
    if kind == "duplicate" and valid_ids:
        return orjson.dumps({**base, "entity_id": draw(st.sampled_from(valid_ids))}), "entity_id"
    if kind == "bytes":
        return b"#" + draw(st.binary(max_size=40)).replace(b"\n", b""), "<json>"
    if kind == "truncated":
        line = orjson.dumps(base)
        return line[: draw(st.integers(1, len(line) - 1))], "<json>"
    if kind == "utf8":
        line = orjson.dumps(base)
        cut = line.index(b'"label":"') + 9
        return line[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80abc"])) + line[cut:], "<json>"
    if kind == "nan":
        return orjson.dumps(base)[:-1] + b',"embedding":[' + draw(st.sampled_from([b"NaN", b"Infinity", b"-inf"])) + b"]}", "<json>"
    if kind == "not_object":
        value = draw(st.one_of(st.lists(json_value), text, st.integers(-(2**63), 2**63 - 1), st.just(None)))
        return json.dumps(value, ensure_ascii=False).encode(), "<row>"
    field = draw(st.sampled_from(sorted(WRONG)))
    value = draw(st.sampled_from(WRONG[field]))
    if value is None:
        base.pop(field)
    else:
        base[field] = value
    return json.dumps(base, ensure_ascii=False).encode(), field


ANCHOR = {"entity_id": "anchor", "label": "Anchor", "embedding": [0.0, 0.6, 0.8]}


@st.composite
def kb_files(draw):
    """(file bytes, valid rows, {line: field} of the bad lines, suffix) with BOM/CRLF/blank lines/gzip."""
    valid, bad, lines = [ANCHOR], {}, [orjson.dumps(ANCHOR)]
    for i in range(draw(st.integers(0, 12))):
        choice = draw(st.sampled_from(["valid", "bad", "blank"]))
        if choice == "valid":
            row = draw(valid_rows(i))
            valid.append(row)
            lines.append(orjson.dumps(row))
        elif choice == "bad":
            line, field = draw(bad_lines([r["entity_id"] for r in valid]))
            bad[len(lines) + 1] = field
            lines.append(line)
        else:
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t"])))
    data = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    suffix = draw(st.sampled_from([".jsonl", ".jsonl.gz"]))
    if suffix == ".jsonl.gz":
        data = gzip.compress(data, mtime=0)
    return data, valid, bad, suffix


def expected_fields(row: dict) -> dict:
    return {
        "label": row["label"],
        "aliases": [a for a in row.get("aliases", []) if a.strip()],
        "description": row.get("description", ""),
        "entity_type": row.get("entity_type", ""),
        "popularity": row.get("popularity", 0),
        "metadata": {"wikidata": row["wikidata"]} if "wikidata" in row else {},
    }


def stored_fields(store: EntityStore, entity_id: str) -> dict:
    row = store.row_of(entity_id)
    assert row is not None, f"valid row {entity_id!r} was lost"
    return {
        "label": store.label(row),
        "aliases": store.aliases(row),
        "description": store.descriptions[row],
        "entity_type": store.types[row],
        "popularity": int(store.popularity[row]),
        "metadata": store.metadata(row),
    }


@contextmanager
def kb_file(data: bytes, suffix: str):
    """A temporary entity file holding ``data``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"kb{suffix}"
        path.write_bytes(data)
        yield path


@given(kb_files())
def test_skip_mode_keeps_every_valid_row_and_rejects_every_bad_line(case):
    data, valid, bad, suffix = case
    with kb_file(data, suffix) as path:
        store = EntityStore()
        report = store.load(path, on_error="skip", rejects_path=path.parent / "rejects.jsonl")
        assert report.loaded == len(valid) == len(store)
        for row in valid:
            assert stored_fields(store, row["entity_id"]) == expected_fields(row)
        assert {r.line: r.field for r in report.rejected} == bad
        assert all(r.source == str(path) for r in report.rejected)
        written = [orjson.loads(x) for x in (path.parent / "rejects.jsonl").read_bytes().splitlines()]
        assert [w["line"] for w in written] == sorted(bad)
        vectors, _ = store.row_vectors["entities"]
        assert vectors.shape == (len(valid), 3)
        for i, row in enumerate(valid):
            if "embedding" in row:
                assert vectors[i].tolist() == pytest.approx(row["embedding"], rel=1e-6)
            else:
                assert all(math.isnan(v) for v in vectors[i])


@given(kb_files())
def test_raise_mode_names_the_first_bad_line_and_changes_nothing(case):
    data, valid, bad, suffix = case
    with kb_file(data, suffix) as path:
        store = EntityStore()
        store.load([{"entity_id": "before", "label": "Before"}])
        if not bad:
            assert store.load(path).loaded == len(valid)
            return
        with pytest.raises(KnowledgeBaseError) as info:
            store.load(path)
        match = WHERE.match(str(info.value))
        first = min(bad)
        assert match and match["source"] == str(path), str(info.value)
        assert (int(match["line"]), match["field"]) == (first, repr(bad[first]))
        assert len(store) == 1 and "before" in store


@given(st.binary(max_size=300), st.sampled_from([".jsonl", ".jsonl.gz"]), st.booleans())
def test_random_bytes_are_rejects_or_errors_naming_the_file(data, suffix, compress):
    if suffix == ".jsonl.gz" and compress:
        packed = gzip.compress(data, mtime=0)
        data = packed[: len(packed) * 2 // 3] if data else packed
    with kb_file(data, suffix) as path:
        try:
            report = EntityStore().load(path, on_error="skip")
        except KnowledgeBaseError as exc:
            assert str(exc).startswith(f"{path}: cannot read"), str(exc)
            return
        lines = data.count(b"\n") + 1
        for reject in report.rejected:
            assert 1 <= reject.line <= lines and WHERE.match(reject.message())


surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_value = st.one_of(
    json_value,
    st.text(st.one_of(surrogate, st.characters()), min_size=1, max_size=5),
    st.integers(min_value=2**63) | st.integers(max_value=-(2**63)),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, object(), b"bytes", {1: 2}, (1, 2), {"a"}]),
)
hostile_fields = st.dictionaries(
    st.one_of(st.sampled_from(sorted(WRONG)), text, st.integers(), surrogate),
    st.one_of(hostile_value, st.lists(hostile_value, max_size=4)),
    max_size=3,
)
hostile_row = st.one_of(hostile_fields, st.builds(lambda row, extra: {**row, **extra}, valid_rows(0), hostile_fields))


@given(st.lists(st.one_of(hostile_row, valid_rows(0), hostile_value), max_size=8))
def test_python_rows_of_any_shape(rows):
    """Rows given as Python objects (lists, dicts of dicts): any value, including ones JSON cannot hold."""
    for source in (rows, {f"k{i}": r for i, r in enumerate(rows)}):
        store = EntityStore()
        try:
            report = store.load(source, on_error="skip")
        except KnowledgeBaseError as exc:
            raise AssertionError(f"skip mode raised: {exc}") from exc
        for reject in report.rejected:
            assert WHERE.match(reject.message()), reject.message()
        assert report.loaded + len(report.rejected) == len(rows)
        for entity_id in store.ids.tolist():
            row = store.row_of(entity_id)
            assert store.fields(row)["entity_id"] == entity_id
        try:
            store.load(source)
        except KnowledgeBaseError as exc:
            assert WHERE.match(str(exc)), str(exc)


@pytest.mark.parametrize("source", [5, None, 3.5, object()])
def test_unusable_source_is_an_error(source):
    with pytest.raises(KnowledgeBaseError, match="entities must be a .jsonl"):
        EntityStore().load(source)


def test_line_longer_than_the_limit_is_a_reject_and_the_next_line_loads(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_bytes(b'{"entity_id": "A", "label": "' + b"x" * 500 + b'"}\n{"entity_id": "B", "label": "b"}\n')
    with mock.patch.object(reader, "MAX_LINE_BYTES", 100):
        report = EntityStore().load(path, on_error="skip")
    assert report.loaded == 1 and [(r.line, r.field) for r in report.rejected] == [(1, "<line>")]


def test_corrupted_gzip_stream_names_the_file(tmp_path):
    path = tmp_path / "kb.jsonl.gz"
    packed = bytearray(gzip.compress(b"".join(orjson.dumps({"entity_id": f"E{i}", "label": f"n{i}"}) + b"\n"
                                               for i in range(3000)), mtime=0))
    packed[20:60] = bytes(40)
    path.write_bytes(bytes(packed))
    with pytest.raises(KnowledgeBaseError, match=re.escape(f"{path}: cannot read")):
        EntityStore().load(path)


@given(st.lists(valid_rows(0), min_size=1, max_size=5, unique_by=lambda r: r["entity_id"]))
def test_any_valid_text_survives_a_kb_dir_round_trip(rows):
    rows = [{k: v for k, v in r.items() if k != "embedding"} for r in rows]
    kb = KnowledgeBase()
    kb.load(rows)
    with tempfile.TemporaryDirectory() as tmp:
        kb.save_dir(Path(tmp) / "kb")
        reopened = KnowledgeBase.open(Path(tmp) / "kb")
        for row in rows:
            assert stored_fields(reopened.store, row["entity_id"]) == expected_fields(row)


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"entity_id": "\ud800", "label": "x"}, "entity_id", "lone surrogate"),
        ({"entity_id": "a", "label": "x", "aliases": ["ok", "b\udfff"]}, "aliases", "lone surrogate"),
        ({"entity_id": "a", "label": "x", "note": "\ud800"}, "note", "not storable as JSON"),
        ({"entity_id": "a", "label": "x", "note": object()}, "note", "not storable as JSON"),
        ({"entity_id": "a", "label": "x", "note": 10**30}, "note", "not storable as JSON"),
        ({"entity_id": "a", "label": "x", "note": {1: 2}}, "note", "not storable as JSON"),
        ({"entity_id": "a", "label": "x", 7: "seven"}, "<row>", "field name 7 is not a valid string"),
        ({"entity_id": "a", "label": "x", "embedding": [1e300, 0.0]}, "embedding", "beyond the float32 range"),
        ({"entity_id": "a", "label": "x", "embedding": [10**400]}, "embedding", "beyond the float32 range"),
    ],
)
def test_rows_json_cannot_hold_are_rejects_not_crashes(row, field, reason):
    """Regressions found by the properties above: these used to escape as TypeError, UnicodeEncodeError or
    OverflowError from deep inside the store, or (1e300) to load as an infinite vector."""
    good = {"entity_id": "g", "label": "good"}
    report = EntityStore().load([good, row], on_error="skip")
    assert report.loaded == 1
    assert [(r.line, r.field) for r in report.rejected] == [(2, field)] and reason in report.rejected[0].reason


def test_rows_with_vectors_of_another_model_are_rejected_by_line():
    rows = [{"entity_id": "a", "label": "a", "embedding": [1.0], "embedding_model_id": "m1"},
            {"entity_id": "b", "label": "b", "embedding": [1.0], "embedding_model_id": "m2"},
            {"entity_id": "c", "label": "c", "embedding": [0.5], "embedding_model_id": "m1"}]
    with pytest.raises(KnowledgeBaseError, match=r"list, line 2: field 'embedding_model_id': 'm2', earlier rows"):
        EntityStore().load(rows)
    store = EntityStore()
    assert store.load(rows, on_error="skip").loaded == 2 and store.row_vectors["entities"][1] == "m1"
