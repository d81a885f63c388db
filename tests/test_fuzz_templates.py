"""Templates are data: only plain field names are substituted, and entity values are never re-read as
templates. Property-based over random template strings and random entity values."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glinker import ConfigError, DAGPipeline
from glinker.kb.store import EntityStore
from glinker.templates import MAX_TEMPLATE_CHARS, parse_template, render_template
from tests.conftest import model_free_config

template_text = st.text(st.sampled_from(list("{}[]!:.>0_ labeldscriptonx_\u00e9")), max_size=30)


def expected(template: str, fields: dict) -> str:
    """What a template renders to, computed without str.format: literal text and plain field values."""
    out, i = [], 0
    while i < len(template):
        if template.startswith(("{{", "}}"), i):
            out.append(template[i])
            i += 2
        elif template[i] == "{":
            end = template.index("}", i)
            value = fields.get(template[i + 1 : end])
            out.append("" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value))
            i = end + 1
        else:
            out.append(template[i])
            i += 1
    return "".join(out).strip().rstrip(":;,-|").rstrip()


json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=6)


@given(template_text, st.dictionaries(st.sampled_from(["label", "description", "x", "_", "l0"]), json_value))
def test_any_template_is_refused_or_substitutes_plain_fields_only(template, fields):
    try:
        pieces = parse_template(template)
    except ConfigError as exc:
        assert repr(template) in str(exc) or "template" in str(exc)
        return
    assert all(name is None or name.isidentifier() for _, name in pieces)
    assert render_template(template, fields) == expected(template, fields)


HOSTILE = ["{label.__class__.__mro__}", "{0.__globals__}", "{label[0]}", "{!r}", "{label!r}", "{label!s}",
           "{label:>10}", "{label:{description}}", "{label.upper}", "{}", "{0}", "{ label}", "{label",
           "label}", "{{label}", "{label}}", "{la{bel}}", "{\u00e9t\u00e9.x}", "{label[__class__]}"]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_templates_are_refused_by_the_config(template):
    config = model_free_config()
    config["nodes"][1]["schema"]["template"] = template
    with pytest.raises(ConfigError, match=r"node 'l2': key 'schema\.template': template .*"):
        DAGPipeline(config)


def test_a_very_long_template_is_refused():
    config = model_free_config()
    config["nodes"][1]["schema"]["template"] = "{label} " * (MAX_TEMPLATE_CHARS // 8 + 1)
    with pytest.raises(ConfigError, match=r"key 'schema\.template': template has 10,008 characters, more than 10,000"):
        DAGPipeline(config)


@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40))
def test_entity_values_are_inserted_verbatim_never_formatted(value):
    """A KB value that looks like a template (or like an attack on one) is just text."""
    store = EntityStore()
    store.load([{"entity_id": "E", "label": value.strip() or "L", "description": "{label.__class__}" + value,
                 "note": "{0.__globals__}"}])
    rendered = store.render([0], "{label}: {description} [{note}] {{literal}}")
    assert rendered == [f"{value.strip() or 'L'}: {{label.__class__}}{value} [{{0.__globals__}}] {{literal}}"]
