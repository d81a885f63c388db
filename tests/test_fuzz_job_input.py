"""Property-based tests of bulk-job input: any bytes, line by line.

Property: every line is a document, a reject naming its line, or (JSONL only) a skipped blank line;
nothing is lost or duplicated, a document's text is exactly what the line held, and the byte offsets
after each line (what a resumed job seeks to) add up; batches hold the same items in the same order.
"""

import io
import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from glinker.jobs.reader import Doc, InputOptions, Reject, iter_batches, iter_items

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
doc_line = st.builds(lambda t, i: json.dumps({"id": i, "text": t}, ensure_ascii=False).encode(), text,
                     st.one_of(st.integers(), text))
line = st.one_of(doc_line, st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
                 st.sampled_from([b"", b"  ", b"\xef\xbb\xbf{}", b'{"text": 5}', b'{"text": "a", "id": [1]}', b"[]"]))


@given(st.lists(line, max_size=12), st.sampled_from([b"\n", b"\r\n"]), st.sampled_from(["jsonl", "txt"]),
       st.integers(1, 80), st.integers(1, 5))
def test_every_line_is_a_document_a_reject_or_blank(lines, newline, fmt, max_chars, batch_size):
    data = b"".join(x + newline for x in lines)
    options = InputOptions(format=fmt, max_text_chars=max_chars)
    items = list(iter_items(io.BytesIO(data), options))
    assert [number for _, number, _ in items] == list(range(1, len(lines) + 1))
    offset = 0
    for (item, number, end), raw in zip(items, lines, strict=True):
        offset += len(raw) + len(newline)
        assert end == offset
        if item is None:
            assert fmt == "jsonl" and not raw.removeprefix(b"\xef\xbb\xbf" if number == 1 else b"").strip()
        elif isinstance(item, Reject):
            assert item.line == number and item.reason
        else:
            assert isinstance(item, Doc) and item.line == number and len(item.text) <= max_chars
            if fmt == "txt":
                bom = b"\xef\xbb\xbf" if number == 1 else b""
                assert item.text.encode() == (raw + newline).removeprefix(bom).rstrip(b"\r\n")
            else:
                assert item.text == orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))["text"]
    batches = list(iter_batches(io.BytesIO(data), options, batch_size))
    assert [i for b in batches for i in b.items] == [item for item, _, _ in items if item is not None]
    assert all(len(b.docs) == batch_size for b in batches[:-1])
