"""L2 retrieval with the dict layer (no model): tiers, abbreviations, hierarchy, filters, determinism."""

import numpy as np
import pytest

from glinker import DAGExecutor

KB = [
    {"entity_id": "D1", "label": "Neoplasms, Breast", "aliases": ["Breast Cancer"], "parent_ids": ["D0"]},
    {"entity_id": "D0", "label": "Neoplasms"},
    {"entity_id": "D2", "label": "Duchenne muscular dystrophy", "parent_ids": ["D3"]},
    {"entity_id": "D3", "label": "Muscular Dystrophies", "parent_ids": ["D9"]},
    {"entity_id": "D9", "label": "Muscular Diseases"},
    {"entity_id": "K0", "label": "Kidney Diseases"},
    {"entity_id": "K1", "label": "Diabetic Nephropathies", "parent_ids": ["K0"]},
    {"entity_id": "K2", "label": "IgA nephropathy", "parent_ids": ["K0"]},
    {"entity_id": "K3", "label": "Nephropathy, hereditary", "parent_ids": ["K0"], "popularity": -1},
    {"entity_id": "H1", "label": "Hypertension"},
    {"entity_id": "H2", "label": "Hypertension, Malignant", "parent_ids": ["H1"]},
]


def executor(**config):
    cfg = {"nodes": [{
        "id": "l2", "processor": "l2_chain",
        "inputs": {"mentions": {"source": "$input", "fields": "entities"}, "texts": {"source": "$input", "fields": "texts"}},
        "output": {"key": "l2_result"},
        "config": {"layers": [{"type": "dict"}], **config},
    }]}
    ex = DAGExecutor(cfg)
    ex.load_entities(KB)
    return ex


def candidates(ex, text, mention):
    start = text.index(mention)
    ctx = ex.execute({"texts": [text], "entities": [[{"text": mention, "start": start, "end": start + len(mention)}]]})
    return ctx.get("l2_result").candidates[0][0].candidates


def ids(cands):
    return [c.entity_id for c in cands]


def test_exact_then_canonical_then_fuzzy():
    ex = executor()
    assert ids(candidates(ex, "breast cancer", "breast cancer"))[0] == "D1"
    cands = candidates(ex, "breast neoplasm in women", "breast neoplasm")
    assert cands[0].entity_id == "D1" and cands[0].score == pytest.approx(0.95)
    cands = candidates(ex, "a hypertensive patient", "hypertensive")
    assert cands[0].entity_id == "H1" and cands[0].source == "dict"
    assert all(a.score >= b.score for a, b in zip(cands[1:], cands[2:], strict=False))


def test_abbreviation_defined_in_text():
    text = "Duchenne muscular dystrophy (DMD) is rare. In DMD, muscles weaken."
    start = text.rindex("DMD")
    ctx = executor().execute({"texts": [text], "entities": [[{"text": "DMD", "start": start, "end": start + 3}]]})
    assert ids(ctx.get("l2_result").candidates[0][0].candidates)[0] == "D2"
    ctx = executor(abbreviations=False).execute({"texts": [text], "entities": [[{"text": "DMD", "start": start, "end": start + 3}]]})
    assert "D2" not in ids(ctx.get("l2_result").candidates[0][0].candidates)


def test_abbreviations_inside_a_mention_are_written_out():
    """A mention holding a defined short form as a word ("malignant HT") is also searched with it written out."""
    text = "Patients with hypertension (HT) were seen. Some had malignant HT later."
    assert ids(candidates(executor(), text, "malignant HT"))[0] == "H2"
    assert "H2" not in ids(candidates(executor(abbreviations=False), text, "malignant HT"))


def test_hierarchy_adds_shared_ancestors():
    plain = ids(candidates(executor(), "a nephropathy", "nephropathy"))
    assert "K0" not in plain and {"K1", "K2", "K3"} & set(plain)
    cands = candidates(executor(hierarchy={"field": "parent_ids", "max_added": 2}), "a nephropathy", "nephropathy")
    added = [c for c in cands if c.source == "hierarchy"]
    assert [c.entity_id for c in added] == ["K0"]
    assert cands[-1].entity_id == "K0"
    top = max(c.score for c in cands if c.source != "hierarchy")
    assert added[0].score <= 0.9 * top + 1e-6


def test_max_candidates_min_popularity_and_dedup():
    ex = executor(max_candidates=2, min_popularity=0)
    cands = candidates(ex, "nephropathy", "nephropathy")
    assert len(cands) <= 2 and "K3" not in ids(cands)
    cands = candidates(executor(), "Breast Cancer", "Breast Cancer")
    assert len(ids(cands)) == len(set(ids(cands)))


def test_results_do_not_depend_on_load_order():
    a = executor()
    b = DAGExecutor(a.pipeline)
    b.load_entities(list(reversed(KB)))
    for mention in ("nephropathy", "hypertension", "neoplasms"):
        assert ids(candidates(a, mention, mention)) == ids(candidates(b, mention, mention))


def test_no_mentions_means_gazetteer_over_text():
    cfg = executor().pipeline.to_dict()
    cfg["nodes"][0]["inputs"].pop("mentions")
    ex = DAGExecutor(cfg)
    ex.load_entities(KB)
    groups = ex.execute({"texts": ["Kidney diseases and hypertension."]}).get("l2_result").candidates[0]
    assert [(g.mention.text, g.candidates[0].entity_id) for g in groups] == [("Kidney diseases", "K0"), ("hypertension", "H1")]


def test_consistency_links_abbreviations_like_their_long_form():
    from glinker.linking import consistent_rankings
    from glinker.types import Candidate, Mention, MentionCandidates

    text = "Parkinson disease (PD) is common. In PD, tremor. Paris is not PD."
    def group(start, end, *ids):
        return MentionCandidates(Mention.from_span(text, start, end), [Candidate(i, i) for i in ids])
    long = group(0, 17, "PD1", "PD2")
    short1 = group(text.index("PD, "), text.index("PD, ") + 2, "PD2", "PD1", "X")
    short2 = group(text.rindex("PD"), text.rindex("PD") + 2, "X", "PD2")
    other = group(text.index("Paris"), text.index("Paris") + 5, "P")
    scores = [np.array([0.9, 0.5]), np.array([0.6, 0.55, 0.1]), np.array([0.7, 0.2]), np.array([0.8])]
    ranked = consistent_rankings(text, [long, short1, short2, other], scores)
    totals = {"PD1": 0.9 + 0.55, "PD2": 0.5 + 0.6 + 0.2, "X": 0.1 + 0.7}
    assert list(ranked[0]) == pytest.approx([totals["PD1"], totals["PD2"]])
    assert list(ranked[1]) == pytest.approx([totals["PD2"], totals["PD1"], totals["X"]])
    assert list(ranked[2]) == pytest.approx([totals["X"], totals["PD2"]])  # PD1 is not its candidate
    assert list(ranked[3]) == [0.8]


def test_vector_hits_of_an_abbreviation_and_its_long_form_are_ranked_together(example_kb_path):
    """The faiss layer searches an abbreviation and the long form the text defines for it; their hits are
    ranked by similarity together, so the long form's best names are not pushed out by the acronym's."""
    from glinker import ConfigBuilder, DAGExecutor
    from tests.conftest import MINILM

    builder = ConfigBuilder(name="abbrev")
    builder.l2.add("faiss", priority=0, top_k=3)
    builder.l2.embeddings(enabled=True, model_name=MINILM)
    builder.l2.configure(max_candidates=3)
    builder.l3.configure(model=MINILM, backend="dense", threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(example_kb_path)
    text = "We toured the Tour Eiffel (TE) at night; TE was lit."
    start = text.rindex("TE")
    context = executor.execute({"texts": [text], "entities": [[{"start": start, "end": start + 2}]]})
    (group,) = context.get("l2_result").candidates[0]
    scores = [c.score for c in group.candidates]
    assert group.candidates[0].entity_id == "Q243" and scores == sorted(scores, reverse=True)
