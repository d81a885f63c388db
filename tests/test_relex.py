"""GLiNER-relex relations (``l5_relex``): equal to gliner's own relex inference, grounded in the links,
carried by L0, ``glinker link`` and ``glinker render``.

The relex models are tiny random ones built here (no trained weights): the tests check that our
relations and scores are gliner's, never their quality.
"""

import warnings
from pathlib import Path

import orjson
import pytest

from glinker.config import L0Config, L5RelexConfig
from glinker.errors import ConfigError
from glinker.jobs.pipeline import Linker
from glinker.jobs.render import render_page
from glinker.types import L3Entity, Mention, MentionCandidates, Relation, RelationEnd
from layers.l0_aggregator import Aggregator
from layers.l5_relex import RelexRelations
from tests.conftest import DATA, MINILM
from tests.tiny_models import tiny_bert, tiny_gliner

LABELS = ["person", "organization", "location"]
RELATIONS = ["founded", "located in"]
THRESHOLDS = {"threshold": 0.45, "relation_threshold": 0.5}
TEXTS = [
    "Jeff Bezos founded Amazon in Seattle, and Paris is the capital of France.",
    "Guido van Rossum created Python in Amsterdam.",
    "   ",
    "Atlanta is the capital of Georgia.",
]
NAMES = ["Jeff Bezos", "Amazon", "Seattle", "Paris", "France", "Guido van Rossum", "Python", "Amsterdam",
         "Atlanta", "Georgia"]


def tiny_relex(path: Path, backbone: str, span_mode: str) -> str:
    """A random GLiNER-relex (span or token level) on ``backbone``, saved to ``path``."""
    import torch
    from gliner import GLiNER, GLiNERConfig

    torch.manual_seed(0)
    config = GLiNERConfig(model_name=backbone, hidden_size=32, max_width=8, span_mode=span_mode,
                          relations_layer="dot")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GLiNER.from_config(config, backbone_from_pretrained=True).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    return tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def span_relex(tmp_path_factory, backbone) -> str:
    return tiny_relex(tmp_path_factory.mktemp("relex"), backbone, "markerV0")


def mentions_of(text: str) -> list[MentionCandidates]:
    """Every occurrence of the test names, as L2 groups without candidates."""
    found = []
    for name in NAMES:
        start = text.find(name)
        while start != -1:
            found.append(MentionCandidates(Mention.from_span(text, start, start + len(name)), []))
            start = text.find(name, start + 1)
    return sorted(found, key=lambda g: g.mention.start)


def keyed(relations: list[Relation]) -> dict[tuple, float]:
    return {(r.head.start, r.head.end, r.relation, r.tail.start, r.tail.end): r.score for r in relations}


def library(layer: RelexRelations, text: str, groups: list[MentionCandidates]) -> dict[tuple, float]:
    """gliner's own relex inference on ``text`` with its entities restricted to the mentions; a relation
    it lists twice (token-level models may) at its best score."""
    s = layer.settings
    spans = [{"start": g.mention.start, "end": g.mention.end} for g in groups]
    _, relations = layer.model.model.inference(
        [text], s.labels, relations=s.relations, threshold=s.threshold, relation_threshold=s.relation_threshold,
        flat_ner=s.flat_ner, input_spans=[spans],
    )
    out: dict[tuple, float] = {}
    for r in relations[0]:
        key = (r["head"]["start"], r["head"]["end"], r["relation"], r["tail"]["start"], r["tail"]["end"])
        out[key] = max(out.get(key, 0.0), r["score"])
    return out


def assert_equal(ours: dict[tuple, float], theirs: dict[tuple, float]) -> None:
    assert set(ours) == set(theirs)
    assert max((abs(ours[k] - theirs[k]) for k in ours), default=0.0) <= 1e-4


@pytest.mark.parametrize("span_mode", ["markerV0", "token_level"])
def test_relations_equal_gliner_inference(tmp_path, backbone, span_relex, span_mode):
    model = span_relex if span_mode == "markerV0" else tiny_relex(tmp_path / "relex", backbone, span_mode)
    layer = RelexRelations(L5RelexConfig(model=model, labels=LABELS, relations=RELATIONS, batch_size=2, **THRESHOLDS))
    groups = [mentions_of(text) for text in TEXTS]
    out = layer(TEXTS, groups).relations
    assert sum(len(r) for r in out) > 0
    for text, per_text, text_groups in zip(TEXTS, out, groups, strict=True):
        assert_equal(keyed(per_text), library(layer, text, text_groups))
        for r in per_text:
            for end in (r.head, r.tail):
                assert text[end.start : end.end] == end.text == text_groups[end.mention_index].mention.text
                assert end.entity_id is None  # no links given


def test_windowed_relations_equal_gliner_on_each_window(span_relex):
    text = " ".join([TEXTS[0], TEXTS[1], TEXTS[3]] * 2)
    layer = RelexRelations(L5RelexConfig(model=span_relex, labels=LABELS, relations=RELATIONS, max_length=48,
                                         window_overlap=0, **THRESHOLDS))
    groups = mentions_of(text)
    ours = keyed(layer([text], [groups]).relations[0])
    words = layer.model.words([text])[0]
    windows = layer.model.windows(words, layer.budget, layer.overlap)
    assert len(windows) > 2
    theirs: dict[tuple, list[float]] = {}
    for lo, hi in windows:
        start, end = int(words.starts[lo]), int(words.ends[hi - 1])
        inside = [MentionCandidates(Mention.from_span(text[start:end], g.mention.start - start, g.mention.end - start), [])
                  for g in groups if start <= g.mention.start and g.mention.end <= end]
        for (hs, he, label, ts, te), score in library(layer, text[start:end], inside).items():
            theirs.setdefault((hs + start, he + start, label, ts + start, te + start), []).append(score)
    assert ours and set(ours) == set(theirs)
    assert max(min(abs(ours[k] - s) for s in theirs[k]) for k in ours) <= 1e-4


def test_links_ground_relations_and_l0_keeps_final_links(span_relex):
    layer = RelexRelations(L5RelexConfig(model=span_relex, labels=LABELS, relations=RELATIONS, **THRESHOLDS))
    text = TEXTS[0]
    groups = mentions_of(text)
    links = [L3Entity(g.mention.text, g.mention.start, g.mention.end, f"Q{j}" if j % 2 == 0 else None, "x",
                      0.3 + 0.1 * j, mention_index=j) for j, g in enumerate(groups)]
    relations = layer([text], [groups], [links]).relations
    assert relations[0]
    for r in relations[0]:
        for end in (r.head, r.tail):
            assert end.entity_id == (f"Q{end.mention_index}" if end.mention_index % 2 == 0 else None)
    # L0 reports each end with its mention's final link: min_confidence unlinks the low scores
    l0 = Aggregator(L0Config(min_confidence=0.45))([groups], [links], texts=[text], relations=relations)
    linked = {e.mention_index: e.linked_entity.entity_id for e in l0.entities[0] if e.is_linked}
    assert linked and len(linked) < len([x for x in links if x.entity_id])
    for r in l0.relations[0]:
        assert (r.head.entity_id, r.tail.entity_id) == (linked.get(r.head.mention_index), linked.get(r.tail.mention_index))
    assert Aggregator(L0Config())([groups], [links], texts=[text]).relations is None


def test_a_gliner_without_relations_is_refused(tmp_path, backbone):
    model = tiny_gliner(tmp_path / "ner", backbone, bi_encoder=False)
    with pytest.raises(ConfigError, match="not a relex model"):
        RelexRelations(L5RelexConfig(model=model, labels=LABELS, relations=RELATIONS))


def relex_pipeline(model: str) -> dict:
    def node(id_, processor, inputs, config, **extra):
        return {"id": id_, "processor": processor, "output": {"key": f"{id_}_result"}, "config": config,
                "inputs": {k: {"source": s, "fields": f} for k, (s, f) in inputs.items()}, **extra}

    texts = ("$input", "texts")
    return {"name": "relex", "nodes": [
        node("l1", "l1_dictionary", {"texts": texts}, {}),
        node("l2", "l2_chain", {"mentions": ("l1_result", "entities"), "texts": texts},
             {"layers": [{"type": "dict", "search_mode": ["exact"]}]}),
        node("l3", "l3_batch", {"texts": texts, "candidates": ("l2_result", "candidates")},
             {"model_name": MINILM, "backend": "dense", "threshold": 0.5, "max_length": 32}),
        node("l5", "l5_relex", {"texts": texts, "l2_candidates": ("l2_result", "candidates"),
                                "l3_entities": ("l3_result", "entities")},
             {"model": model, "labels": LABELS, "relations": RELATIONS, **THRESHOLDS}),
        node("l0", "l0_aggregator", {"l2_candidates": ("l2_result", "candidates"),
                                     "l3_entities": ("l3_result", "entities"), "relations": ("l5_result", "relations")},
             {}),
    ]}


def test_link_lines_and_render_carry_relations(span_relex):
    linker = Linker(relex_pipeline(span_relex), DATA / "entities.jsonl")
    texts = ["Jeff Bezos founded Amazon. Paris is the capital of France.", " "]
    lines = [orjson.loads(line) for line in linker.link(["a", "b"], texts).lines]
    assert lines[1] == {"id": "b", "entities": [], "relations": []}
    relations, entities = lines[0]["relations"], lines[0]["entities"]
    assert relations
    by_span = {(e["start"], e["end"]): e["entity_id"] for e in entities}
    for r in relations:
        assert set(r) == {"head", "relation", "tail", "score"} and r["relation"] in RELATIONS
        for end in (r["head"], r["tail"]):
            assert texts[0][end["start"] : end["end"]] == end["text"]
            assert end["entity_id"] == by_span[(end["start"], end["end"])]
    assert any(end["entity_id"] for r in relations for end in (r["head"], r["tail"]))
    page = render_page([("a", texts[0], entities)], {}, relations=[relations])
    assert page.count("<li>") == len(relations) and 'class="relation"' in page


def test_without_a_relations_layer_lines_have_no_relations_key():
    pipeline = relex_pipeline("unused")
    pipeline["nodes"] = [n for n in pipeline["nodes"] if n["id"] != "l5"]
    del pipeline["nodes"][-1]["inputs"]["relations"]
    linker = Linker(pipeline, DATA / "entities.jsonl")
    (line,) = linker.link(["a"], ["Paris is the capital of France."]).lines
    assert set(orjson.loads(line)) == {"id", "entities"}


def test_render_escapes_relation_text():
    relation = {"head": {"start": 0, "end": 3, "text": "<b>", "entity_id": None}, "relation": "<i>rel</i>",
                "tail": {"start": 4, "end": 5, "text": "x", "entity_id": "Q1"}, "score": 0.7}
    page = render_page([("d", "<b> x", [])], {}, relations=[[relation]])
    assert "<b>" not in page.split("<body>")[1] and "&lt;i&gt;rel&lt;/i&gt;" in page and "(unlinked)" in page


def test_relation_records_are_plain_dicts():
    end = RelationEnd("Paris", 0, 5, "Q90", 0)
    assert Relation(end, "capital of", end, 0.5).to_dict()["head"]["entity_id"] == "Q90"
