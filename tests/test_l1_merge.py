"""l1_merge: two L1 nodes' mentions as one list, overlaps resolved as configured."""

import pytest

from glinker import DAGExecutor
from glinker.errors import ConfigError
from glinker.types import Mention
from layers.l1_merge import merge
from tests.conftest import model_free_config


def span(start: int, end: int, label: str) -> Mention:
    return Mention(text="x" * (end - start), start=start, end=end, label=label)


FIRST = [span(0, 5, "a"), span(10, 14, "a")]
SECOND = [span(3, 12, "b"), span(20, 25, "b"), span(10, 14, "b"), span(30, 32, "b")]


@pytest.mark.parametrize("overlaps, expected", [
    ("first", [(0, 5, "a"), (10, 14, "a"), (20, 25, "b"), (30, 32, "b")]),
    ("longest", [(3, 12, "b"), (20, 25, "b"), (30, 32, "b")]),
    ("all", [(0, 5, "a"), (3, 12, "b"), (10, 14, "a"), (20, 25, "b"), (30, 32, "b")]),
])
def test_overlap_rules(overlaps, expected):
    merged = merge(FIRST, SECOND, overlaps)
    assert [(m.start, m.end, m.label) for m in merged] == expected


def test_longest_prefers_the_first_input_on_a_tie_and_keeps_nothing_crossing():
    merged = merge([span(0, 4, "a")], [span(2, 6, "b"), span(4, 8, "b")], "longest")
    assert [(m.start, m.end, m.label) for m in merged] == [(0, 4, "a"), (4, 8, "b")]


def merge_config(overlaps: str) -> dict:
    """The model-free pipeline with two gazetteers (one limited to short names) merged into L2's mentions."""
    config = model_free_config()
    texts = {"source": "$input", "fields": "texts"}
    short = {"id": "l1_short", "processor": "l1_dictionary", "inputs": {"texts": dict(texts)},
             "output": {"key": "l1_short_result"}, "config": {"max_name_tokens": 1}}
    merged = {"id": "l1_merge", "processor": "l1_merge", "requires": ["l1", "l1_short"],
              "inputs": {"first": {"source": "l1_short_result", "fields": "entities"},
                         "second": {"source": "l1_result", "fields": "entities"}},
              "output": {"key": "l1_merged"}, "config": {"overlaps": overlaps}}
    l2, l0 = config["nodes"][1], config["nodes"][2]
    l2["requires"], l2["inputs"]["mentions"]["source"] = ["l1_merge"], "l1_merged"
    l0["requires"], l0["inputs"]["l1_entities"]["source"] = ["l1_merge", "l2"], "l1_merged"
    return {**config, "nodes": [config["nodes"][0], short, merged, l2, l0]}


def test_merged_mentions_flow_through_the_pipeline(example_kb_path, example_texts):
    executor = DAGExecutor(merge_config("first"))
    executor.load_entities(str(example_kb_path))
    context = executor.execute({"texts": example_texts})

    def spans(key: str) -> list[list[tuple[int, int]]]:
        return [[(m.start, m.end) for m in per_text] for per_text in context.get(key).entities]

    short, full, merged = spans("l1_short_result"), spans("l1_result"), spans("l1_merged")
    assert merged != short and merged != full  # the example texts hold one- and multi-token names
    for a, b, m in zip(short, full, merged, strict=True):
        assert set(a) <= set(m) and set(m) <= set(a) | set(b)
    linked = [[(e.mention_start, e.mention_end) for e in per_text] for per_text in context.get("l0_result").entities]
    assert linked == merged


def test_unknown_overlap_rule_is_a_config_error():
    with pytest.raises(ConfigError, match="overlaps"):
        DAGExecutor(merge_config("shortest"))
