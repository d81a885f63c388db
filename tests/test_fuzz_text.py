"""Property-based tests of text inputs through real pipelines: offsets are Python string indices.

Texts mix KB names (in other cases, full-width, with combining accents) with random Unicode, emoji,
control characters and odd whitespace. Property: every mention, record and link satisfies
``text[start:end] == mention_text``, every L1 mention reaches L0, and a text's records do not depend on
the batch it came in. Model-free pipeline (gazetteer -> names -> L0) and the dense MiniLM one.
"""

import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import DAGExecutor, InputError, LimitError
from tests.conftest import DATA, costly, model_free_config

ROWS = [orjson.loads(line) for line in (DATA / "entities.jsonl").read_bytes().splitlines() if line.strip()]
NAMES = sorted({name for r in ROWS for name in [r["label"], *r.get("aliases", [])]})
SPECIAL = ["\u0301", "e\u0301", "\U0001f469\u200d\U0001f469\u200d\U0001f467", "\U0001f44d\U0001f3fd", "\U0001f1eb\U0001f1f7",
           "\u200d", "\u200b", "\ufeff", "\u202e", "\x00", "\x1f", "\x7f", "\r\n", "\u2028", "\u0085", "\u00a0",
           "\u3000", "\u0130", "\u00df", "\ufb01", "\u01c5", "\u2126", "\t", " ", ". ", "(", ")", "\n\n"]


def full_width(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def accented(s: str) -> str:
    return "".join(c + "\u0301" if c.isalpha() else c for c in s)


name = st.builds(lambda n, f: f(n), st.sampled_from(NAMES),
                 st.sampled_from([str, str.upper, str.lower, str.title, full_width, accented]))
fragment = st.one_of(name, st.sampled_from(SPECIAL), st.text(st.characters(exclude_categories=["Cs"]), max_size=12))
text = st.lists(fragment, max_size=25).map("".join)
texts = st.lists(text, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def model_free(example_kb_path):
    executor = DAGExecutor(model_free_config())
    executor.load_entities(example_kb_path)
    return executor


def check(texts: list[str], context, l0_key: str = "l0_result") -> list[list[tuple]]:
    """Assert the offset invariants on every layer's output; return the records as plain tuples."""
    for t, mentions in enumerate(context.get("l1_result").entities):
        for m in mentions:
            assert texts[t][m.start : m.end] == m.text and m.text.strip()
    for t, groups in enumerate(context.get("l2_result").candidates):
        for g in groups:
            assert texts[t][g.mention.start : g.mention.end] == g.mention.text
    out = []
    records = context.get(l0_key).entities
    assert len(records) == len(texts)
    for t, per_text in enumerate(records):
        text = texts[t]
        for r in per_text:
            assert text[r.mention_start : r.mention_end] == r.mention_text
            assert text[: r.mention_start].endswith(r.left_context) and text[r.mention_end :].startswith(r.right_context)
            if r.linked_entity is not None:
                link = r.linked_entity
                assert text[link.start : link.end] == link.matched_text
        l1 = {(m.start, m.end) for m in context.get("l1_result").entities[t]}
        assert {(r.mention_start, r.mention_end) for r in per_text} == l1, "an L1 mention was lost before L0"
        out.append([(r.mention_start, r.mention_end, r.linked_entity and r.linked_entity.entity_id,
                     [c.entity_id for c in r.candidates]) for r in per_text])
    return out


@given(texts)
def test_model_free_offsets_and_batch_independence(model_free, batch):
    together = check(batch, model_free.execute({"texts": batch}))
    for t, single in enumerate(batch):
        assert check([single], model_free.execute({"texts": [single]})) == [together[t]]


@costly(5)
@given(texts)
def test_dense_pipeline_offsets(gazetteer_executor, batch):
    check(batch, gazetteer_executor.execute({"texts": batch}))


def test_a_megabyte_of_text(model_free):
    """About 1 MB of mixed text in one document: linear time, every offset right."""
    filler = " lorem ipsum dolor sit amet \u00e9t\u00e9 \U0001f600 consectetur adipiscing elit sed do eiusmod \u200b\r\n"
    pieces = [f"{NAMES[i % len(NAMES)]}{SPECIAL[i % len(SPECIAL)]}{filler * 2}" for i in range(6_000)]
    big = "".join(pieces)[:1_000_000]
    started = time.perf_counter()
    records = check([big], model_free.execute({"texts": [big]}))[0]
    assert len(records) > 4_000 and time.perf_counter() - started < 60


@given(st.lists(st.text(max_size=40), min_size=1, max_size=5), st.integers(0, 30))
def test_text_length_limit_names_the_first_text_over_it(example_kb_path, batch, limit):
    executor = DAGExecutor(model_free_config(), max_text_chars=limit)
    over = [i for i, t in enumerate(batch) if len(t) > limit]
    if not over:
        check(batch, executor.execute({"texts": batch}))
        return
    with pytest.raises(LimitError, match=rf"texts\[{over[0]}\] has {len(batch[over[0]])} characters, more than "
                                         rf"max_text_chars={limit}"):
        executor.execute({"texts": batch})


@given(st.lists(text, max_size=3), st.integers(0, 3), st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                                                               min_size=1, max_size=2))
def test_lone_surrogates_are_input_errors(model_free, batch, where, surrogate):
    """Regression: a lone surrogate reached the tokenizer of the dense pipeline and crashed it (TypeError)."""
    where = min(where, len(batch))
    batch = batch[:where] + ["Paris " + surrogate] + batch[where:]
    with pytest.raises(InputError, match=rf"texts\[{where}\] has a lone surrogate at character 6"):
        model_free.execute({"texts": batch})


def test_empty_and_blank_texts(model_free):
    batch = ["", " ", "\n\t\u3000\u2028", "\u200b"]
    assert check(batch, model_free.execute({"texts": batch})) == [[], [], [], []]
    assert model_free.execute({"texts": []}).get("l0_result").entities == []
