"""Bad input to execute() is a ValueError naming the index; empty texts give empty results."""

import pytest

from glinker import InputError, LimitError

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"texts": "just one string"}, r"'texts' must be a list of strings, got str"),
        ({"texts": None}, r"'texts' must be a list"),
        ({"texts": ["ok", 42]}, r"texts\[1\] must be a string, got int"),
        ({}, r"no 'texts'"),
        ({"texts": ["a", "b"], "entities": [[]]}, r"'entities' has 1 lists but 'texts' has 2"),
        ({"texts": ["abc"], "entities": [[{"text": "abc", "start": 0, "end": 9}]]}, r"entities\[0\]\[0\]: span 0:9 is outside"),
        ({"texts": ["abc"], "entities": [[{"text": "xyz", "start": 0, "end": 3}]]}, r"entities\[0\]\[0\]: text 'xyz' does not match"),
        ({"texts": ["abc"], "entities": [[{"text": "a", "start": "0", "end": 1}]]}, r"entities\[0\]\[0\]\.start must be an integer"),
        ({"texts": ["abc", "de"], "entities": [[], ["de"]]}, r"entities\[1\]\[0\] must be a dict"),
        ({"texts": ["abc"], "entities": [[{"text": "", "start": 2, "end": 2}]]}, r"span 2:2 is outside the text .* or empty"),
    ],
)
def test_bad_input_names_the_index(gazetteer_executor, payload, message):
    with pytest.raises(ValueError, match=message) as info:
        gazetteer_executor.execute(payload)
    assert isinstance(info.value, InputError)


def test_non_dict_input(gazetteer_executor):
    with pytest.raises(InputError, match="takes a dict"):
        gazetteer_executor.execute(["Paris"])


def test_empty_texts_give_empty_lists(gazetteer_executor):
    ctx = gazetteer_executor.execute({"texts": ["", "   ", "Paris is in France."]})
    entities = ctx.get("l0_result").entities
    assert entities[0] == [] and entities[1] == []
    assert [e.mention_text for e in entities[2]] == ["Paris", "France"]
    assert gazetteer_executor.execute({"texts": []}).get("l0_result").entities == []


def test_text_length_limit(example_kb_path):
    from glinker import DAGExecutor
    from tests.conftest import dense_builder

    executor = DAGExecutor(dense_builder("dictionary").build(), max_text_chars=100)
    with pytest.raises(LimitError, match=r"texts\[1\] has 101 characters, more than max_text_chars=100"):
        executor.execute({"texts": ["short", "x" * 101]})
