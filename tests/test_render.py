"""glinker render: one colour per entity type with a legend, the type in each mention's tag."""

import re

from glinker.jobs.render import render_page, type_colours

TYPES = ["city", "country", "person", "company", "river", "band", "language", "film", "planet", "<b>disease</b>"]


def page_with_types(types: list[str]) -> str:
    text = " ".join(f"w{i}" for i in range(len(types))) + " <script>x</script>"
    entities, start = [], 0
    for i, kind in enumerate(types):
        end = start + len(f"w{i}")
        linked = i % 3 != 0
        entities.append({"start": start, "end": end, "text": f"w{i}", "label": kind,
                         "entity_id": f"Q{i}" if linked else None, "entity_label": f"<i>E{i}</i>" if linked else None,
                         "score": 0.9 if linked else None})
        start = end + 1
    return render_page([("doc", text, entities)], {})


def test_ten_types_get_ten_colours_a_legend_and_tags():
    page = page_with_types(TYPES)
    rules = dict(re.findall(r"mark\.(t\d+) \{ background: (hsl\([^)]*\)); \}", page))
    assert len(rules) == 10 and len(set(rules.values())) == 10
    legend = re.search(r'<section class="legend"><h2>Types</h2>(.*?)</section>', page).group(1)
    entries = re.findall(r'<mark class="(t\d+)">([^<]*)</mark>', legend)
    assert sorted(name for _, name in entries) == sorted(t.replace("<", "&lt;").replace(">", "&gt;") for t in TYPES)
    assert {css for css, _ in entries} == set(rules)
    for i, kind in enumerate(TYPES):  # each mention: its type's class, and its type in the tag
        css = next(c for c, name in entries if name == kind.replace("<", "&lt;").replace(">", "&gt;"))
        mark = re.search(rf'<mark class="{css}( unlinked)?"[^>]*>(<a [^>]*>)?w{i}(</a>)?<span class="tag">([^<]*)</span>', page)
        assert mark and mark.group(4) == kind.replace("<", "&lt;").replace(">", "&gt;")
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page and "&lt;script&gt;" in page


def test_colours_are_distinct_for_many_types_and_depend_only_on_the_set():
    many = [f"type{i}" for i in range(40)]
    assert len(set(type_colours(many).values())) == 40
    assert type_colours(["b", "a", "a"]) == type_colours(["a", "b"])
