"""GLiNER NER (L1), GLiNER and cross-encoder linking (L3), the chunked reranker (L4).

No trained GLiNER or cross-encoder weights can be had here: tiny random models are built once per
session and loaded by folder name through the real code path. The tests check structure and
invariants (offsets, links among the mention's own candidates, windows, batching, chunking,
precomputed vectors), never quality.
"""

import dataclasses
from itertools import pairwise

import numpy as np
import orjson
import pytest

from glinker import ConfigBuilder, DAGExecutor, LimitError, ProcessorFactory
from glinker.kb import KnowledgeBase
from glinker.types import Mention, MentionCandidates
from tests.conftest import DATA
from tests.tiny_models import tiny_bert, tiny_cross_encoder, tiny_gliner

pytestmark = pytest.mark.slow

TEMPLATE = "{label}: {description}"
TEXTS = [
    "Paris is the capital of France and the Eiffel Tower stands on the Champ de Mars.",
    "Paris is a small city in Lamar County in northeast Texas, about a hundred miles from Dallas.",
    "Jeff Bezos founded Amazon as an online bookstore.",
    "",
    "The Amazon flows across South America.",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    backbone = tiny_bert(root / "bert")
    return {
        "bi": tiny_gliner(root / "bi", backbone, bi_encoder=True),
        "uni": tiny_gliner(root / "uni", backbone, bi_encoder=False),
        "ce": tiny_cross_encoder(root / "ce"),
        "ce2": tiny_cross_encoder(root / "ce2", num_labels=2),
    }


@pytest.fixture(scope="session")
def entities():
    return [orjson.loads(line) for line in (DATA / "entities.jsonl").read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def kb(entities):
    kb = KnowledgeBase()
    kb.load(entities)
    return kb


def gold_mentions(texts, names=("Paris", "France", "Texas", "Amazon", "Dallas", "Jeff Bezos", "South America")):
    """Every occurrence of a few KB names, as input entities."""
    out = []
    for text in texts:
        found = []
        for name in names:
            start = text.find(name)
            while start != -1:
                found.append({"text": name, "start": start, "end": start + len(name)})
                start = text.find(name, start + 1)
        out.append(sorted(found, key=lambda m: m["start"]))
    return out


def groups_for(kb, texts, max_candidates=6):
    """Mentions with candidates: each KB entity whose name shares a word with the mention, then a few others."""
    store = kb.store
    rows = list(range(store.num_rows))
    groups = []
    for per_text in gold_mentions(texts):
        per = []
        for m in per_text:
            near = [r for r in rows if m["text"].split()[0] in store.label(r)]
            other = [r for r in rows if r not in near][: max_candidates - len(near)]
            per.append(MentionCandidates(Mention(m["text"], m["start"], m["end"]),
                                         [store.candidate(r) for r in near + other]))
        groups.append(per)
    return groups


def check_records(texts, context, stage=None):
    """Offsets point into the text; every link is one of the mention's own candidates."""
    records = context.get("l0_result").entities
    assert len(records) == len(texts)
    for text, per_text in zip(texts, records, strict=True):
        for e in per_text:
            assert 0 <= e.mention_start < e.mention_end <= len(text)
            assert text[e.mention_start : e.mention_end] == e.mention_text
            assert all(0.0 <= s <= 1.0 for s in e.candidate_scores.values())
            if e.is_linked:
                assert e.linked_entity.entity_id in e.candidate_scores
                if stage:
                    assert e.pipeline_stage.startswith(stage)
    return records


def assert_scores_close(a, b, atol=1e-5):
    for per_a, per_b in zip(a, b, strict=True):
        for x, y in zip(per_a, per_b, strict=True):
            np.testing.assert_allclose(x, y, atol=atol)


# --------------------------------------------------------------------------- label vectors


def test_dynamic_padding_gives_the_padded_label_vectors(models):
    from glinker.models.gliner import get_gliner

    gliner = get_gliner(models["bi"])
    labels = ["disease", "a much longer label: with a description of several words", "x", "heart failure"]
    ours = gliner.encode_labels(labels, batch_size=3)
    padded = gliner.model.encode_labels(labels, batch_size=2).float().numpy()  # GLiNER pads each to 512 tokens
    assert ours.shape == (4, gliner.label_dim)
    assert np.abs(ours - padded).max() <= 1e-5


def test_models_load_once_per_kind_model_and_options(models, kb):
    from pathlib import Path

    from glinker.linking.cross_encoder import CrossEncoderScorer
    from glinker.linking.gliner import GlinerLinkScorer
    from glinker.models.cross_encoder import get_pair_classifier
    from glinker.models.encoder import get_encoder
    from glinker.models.gliner import get_gliner

    ce = CrossEncoderScorer(models["ce"], TEMPLATE).classifier
    assert CrossEncoderScorer(models["ce"], "{label}", batch_size=3).classifier is ce is get_pair_classifier(models["ce"])
    assert GlinerLinkScorer(kb, models["bi"], TEMPLATE).gliner is get_gliner(models["bi"])
    bert = str(Path(models["bi"]).parent / "bert")
    assert get_encoder(bert, max_length=64) is get_encoder(bert, max_length=64)
    assert get_encoder(bert, max_length=64) is not get_encoder(bert, max_length=128)
    assert get_encoder(models["ce"]) is not ce  # the same folder loaded as another kind of model


# --------------------------------------------------------------------------- L1


def test_l1_gliner_offsets_and_batches(models):
    from glinker.ner import GlinerNER

    for name in ("bi", "uni"):
        ner = GlinerNER(models[name], ["city", "person", "company"], threshold=0.4)
        batch = ner.predict(TEXTS)
        for spans, text in zip(batch, TEXTS, strict=True):
            (alone,) = ner.predict([text])
            assert [s[:3] for s in spans] == [s[:3] for s in alone]
            assert np.allclose([s[3] for s in spans], [s[3] for s in alone], atol=1e-5)
        for text, spans in zip(TEXTS, batch, strict=True):
            for start, end, label, score, _ in spans:
                assert 0 <= start < end <= len(text) and label in {"city", "person", "company"} and 0.4 <= score <= 1
            assert all(a[1] <= b[0] for a, b in pairwise(spans))  # flat_ner: no overlaps


def test_windows_lose_no_mention_on_a_5000_word_text(models):
    from glinker.ner import GlinerNER

    words = [f"w{i % 97}" for i in range(5000)]
    text = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    ner = GlinerNER(models["bi"], ["thing"], threshold=0.0, flat_ner=False, max_length=96, overlap=8)
    assert len(ner.gliner.windows(ner.gliner.words([text])[0], ner.budget, ner.overlap)) > 100
    spans = ner.predict([text])[0]
    # nested spans stay when flat_ner is off, so every one-word span must come back exactly once
    assert len({(s, e) for s, e, *_ in spans}) == len(spans)
    single = [(s, e) for s, e, *_ in spans if " " not in text[s:e]]
    assert single == [(int(s), int(s) + len(w)) for s, w in zip(starts, words, strict=True)]
    assert all(text[s:e].count(" ") < ner.gliner.max_width for s, e, *_ in spans)
    flat = GlinerNER(models["bi"], ["thing"], threshold=0.3, max_length=96).predict([text])[0]
    assert all(a[1] <= b[0] for a, b in pairwise(flat))
    assert flat and flat[-1][0] > 0.9 * len(text)


def test_l1_gliner_drops_spans_across_sentences_or_with_an_unclosed_bracket(models):
    from glinker.config import L1GlinerConfig
    from glinker.ner import GlinerNER
    from glinker.text import well_formed
    from layers.l1_gliner import GlinerMentions

    assert well_formed("hemorrhagic cystitis (HC)") and well_formed("E. coli sepsis") and well_formed("Dr. Smith")
    assert not well_formed("toxicity. Acute toxicity") and not well_formed("dystrophy (Steinert")
    texts = ["Acute renal failure. Severe (late onset hepatitis in Paris) and [chronic pain."]
    options = {"model": models["uni"], "labels": ["disease"], "threshold": 0.0, "flat_ner": False}
    raw = GlinerNER(models["uni"], ["disease"], threshold=0.0, flat_ner=False).predict(texts)[0]
    kept = GlinerMentions(L1GlinerConfig(**options)).__call__(texts).entities[0]
    every = GlinerMentions(L1GlinerConfig(**options, well_formed=False)).__call__(texts).entities[0]
    spans = {(s.start, s.end) for s in raw if len(texts[0][s.start:s.end].strip()) >= 2}  # min_entity_length
    assert {(m.start, m.end) for m in every} == spans
    assert {(m.start, m.end) for m in kept} == {(a, b) for a, b in spans if well_formed(texts[0][a:b])}
    assert len(kept) < len(every)


def test_uni_encoder_prompt_over_half_the_window_is_a_limit_error(models):
    from glinker.ner import GlinerNER

    with pytest.raises(LimitError, match="max_length"):
        GlinerNER(models["uni"], [f"label number {i}" for i in range(40)], max_length=128)


def test_l1_l2_l3_gliner_pipeline(models, entities):
    builder = ConfigBuilder(name="gliner")
    builder.l1.gliner(model=models["bi"], labels=["city", "country", "company"], threshold=0.0, flat_ner=False)
    builder.l2.add("dict", priority=1)
    builder.l3.configure(model=models["bi"], threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    assert executor.precompute_embeddings()["l3"] == len(entities)
    ctx = executor.execute({"texts": TEXTS})
    records = check_records(TEXTS, ctx, stage="l3")
    linked = [e.mention_text for per_text in records for e in per_text if e.is_linked]
    assert "Paris" in linked and "Amazon" in linked


def test_batch_of_64_texts_equals_one_by_one(models, entities):
    builder = ConfigBuilder()
    builder.l1.gliner(model=models["bi"], labels=["city", "company"], threshold=0.0, flat_ner=False)
    builder.l3.configure(model=models["bi"], threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    texts = [TEXTS[i % len(TEXTS)] + f" Item {i}." for i in range(64)]
    batch = check_records(texts, executor.execute({"texts": texts}))
    assert sum(e.is_linked for per_text in batch for e in per_text) > 64
    for i in (0, 1, 2, 33, 63):
        (single,) = executor.execute({"texts": [texts[i]]}).get("l0_result").entities
        assert [(e.mention_start, e.mention_end) for e in single] == [(e.mention_start, e.mention_end) for e in batch[i]]
        for a, b in zip(single, batch[i], strict=True):
            assert a.candidate_scores.keys() == b.candidate_scores.keys()
            assert np.allclose(list(a.candidate_scores.values()), list(b.candidate_scores.values()), atol=1e-5)


# --------------------------------------------------------------------------- L3 scorers


@pytest.mark.parametrize("kind", ["bi", "uni"])
def test_link_scores_equal_gliner_inference_with_fixed_spans(models, kb, kind, monkeypatch):
    from glinker.linking.gliner import GlinerLinkScorer
    from glinker.models import gliner as gl

    scorer = GlinerLinkScorer(kb, models[kind], TEMPLATE)
    groups = groups_for(kb, TEXTS, max_candidates=5)
    ours = scorer.score(TEXTS, groups)
    model = scorer.gliner.model
    for text, per_text, per_scores in zip(TEXTS, groups, ours, strict=True):
        for g, scores in zip(per_text, per_scores, strict=True):
            labels = [f"{c.label}: {c.description}" for c in g.candidates]
            (found,) = model.inference([text], labels, threshold=0.0, flat_ner=False, return_class_probs=True,
                                       input_spans=[[{"start": g.mention.start, "end": g.mention.end}]])
            probs = found[0]["class_probs"]  # the top 5 labels
            for label, score in zip(labels, scores, strict=True):
                assert abs(probs[label] - score) <= 1e-5
    assert scorer.gliner.ends_only  # markerV0: spans from their end words alone ...
    monkeypatch.setattr(scorer.gliner, "ends_only", False)  # ... from all words ...
    assert_scores_close(scorer.score(TEXTS, groups), ours)
    monkeypatch.setattr(gl, "MARKER_SPAN_MODES", ())  # ... and GLiNER's full forward pass agree
    assert_scores_close(scorer.score(TEXTS, groups), ours)


@pytest.mark.parametrize("kind", ["bi", "uni"])
def test_token_inputs_equal_the_collated_batch(models, kind):
    from glinker.models.gliner import Row, get_gliner

    gliner = get_gliner(models[kind])
    texts = [t for t in TEXTS if t] + [" ".join(["anti-inflammatory Paris, Texas"] * 60)]
    words = gliner.words(texts)
    rows = [Row(t, lo, hi, labels=["city: a town", "country"][: 1 + t % 2])
            for t, w in enumerate(words) for lo, hi in gliner.windows(w, 40, 0)]
    assert any(r.lo > 0 for r in rows)
    ours = gliner.token_inputs(rows, words)
    collated = gliner.collate(rows, words, [] if gliner.is_bi else [r.labels for r in rows], gliner.is_bi)
    for key in ("input_ids", "attention_mask", "words_mask", "text_lengths"):
        assert ours[key].tolist() == collated[key].tolist(), key
    assert ours["token_lengths"] == ours["attention_mask"].sum(-1).tolist()


def test_precomputed_label_vectors_equal_computed_on_the_fly(models, kb):
    from glinker.linking.gliner import GlinerLinkScorer

    groups = groups_for(kb, TEXTS)
    precomputed = GlinerLinkScorer(kb, models["bi"], TEMPLATE)
    assert precomputed.precompute() == len(kb)
    on_the_fly = GlinerLinkScorer(kb, models["bi"], TEMPLATE, use_precomputed=False)
    cached = GlinerLinkScorer(kb, models["bi"], TEMPLATE, use_precomputed=False, cache_embeddings=True)
    reference = precomputed.score(TEXTS, groups)
    assert_scores_close(on_the_fly.score(TEXTS, groups), reference)
    assert_scores_close(cached.score(TEXTS, groups), reference)
    assert len(cached.labels.cache) == len({c.entity_id for per in groups for g in per for c in g.candidates})
    outside = [[MentionCandidates(g.mention, [dataclasses.replace(c, entity_id=f"outside:{c.entity_id}") if i % 2
                                              else c for i, c in enumerate(g.candidates)]) for g in per]
               for per in groups]  # every other candidate missing from the KB: embedded from its own fields
    assert_scores_close(precomputed.score(TEXTS, outside), reference)
    kb_vectors = kb.vectors(precomputed.labels.encoder, "entities", TEMPLATE).matrix
    direct = precomputed.gliner.model.encode_labels(kb.store.render(range(len(kb)), TEMPLATE)).float().numpy()
    assert np.abs(kb_vectors - direct).max() <= 1e-5


@pytest.mark.parametrize("kind", ["bi", "uni", "ce"])
def test_scores_of_a_batch_equal_one_by_one(models, kb, kind):
    from glinker.linking.cross_encoder import CrossEncoderScorer
    from glinker.linking.gliner import GlinerLinkScorer

    texts = TEXTS * 13
    groups = groups_for(kb, texts)
    if kind == "ce":
        scorer = CrossEncoderScorer(models["ce"], TEMPLATE, batch_size=7)
    else:
        scorer = GlinerLinkScorer(kb, models[kind], TEMPLATE, batch_size=7)
    batch = scorer.score(texts, groups)
    assert_scores_close(batch, [scorer.score([t], [g])[0] for t, g in zip(texts, groups, strict=True)])
    assert all(len(s) == len(g.candidates) and ((s >= 0) & (s <= 1)).all()
               for per_s, per_g in zip(batch, groups, strict=True) for s, g in zip(per_s, per_g, strict=True))


def test_mentions_of_a_5000_word_text_are_all_scored(models, kb):
    from glinker.linking.gliner import GlinerLinkScorer

    text = " ".join(["filler words here"] * 1500 + [TEXTS[0]] + ["more filler"] * 400 + [TEXTS[1]])
    (groups,) = groups_for(kb, [text])
    assert len(text.split()) > 5000 and groups[-1].mention.start > 0.9 * len(text)
    for kind in ("bi", "uni"):
        scorer = GlinerLinkScorer(kb, models[kind], TEMPLATE, max_length=200, max_labels=2)
        (scores,) = scorer.score([text], [groups])
        assert len(scores) == len(groups) and all((s > 0).all() for s in scores)


def test_cross_encoder_two_classes_scores_positive_class(models, kb):
    from glinker.linking.cross_encoder import CrossEncoderScorer

    groups = groups_for(kb, TEXTS[:2])
    scorer = CrossEncoderScorer(models["ce2"], TEMPLATE)
    assert scorer.classifier.num_labels == 2 and scorer.classifier.positive == 1
    scores = scorer.score(TEXTS[:2], groups)
    assert all(((s > 0) & (s < 1)).all() for per in scores for s in per)


@pytest.mark.parametrize("backend", ["gliner", "cross_encoder"])
def test_linking_only_l3_links_among_own_candidates(models, entities, backend):
    builder = ConfigBuilder()
    model = models["bi"] if backend == "gliner" else models["ce"]
    builder.l3.configure(model=model, backend=backend, threshold=0.0, top_k=4)
    builder.l0.configure(return_all_candidates=True)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    mentions = gold_mentions(TEXTS)
    records = check_records(TEXTS, executor.execute({"texts": TEXTS, "entities": mentions}), stage="l3")
    assert [len(r) for r in records] == [len(m) for m in mentions]
    for e in (e for per_text in records for e in per_text):
        assert len(e.candidate_scores) <= 4
        assert e.is_linked == bool(e.candidate_scores)  # "Dallas" is not in the KB: no candidate, not linked
        if e.is_linked:
            assert e.linked_entity.entity_id in {c.entity_id for c in e.candidates}


# --------------------------------------------------------------------------- L4


def test_uni_encoder_chunks_score_like_the_same_labels_alone(models, kb):
    from glinker.linking.gliner import GlinerLinkScorer

    groups = groups_for(kb, TEXTS, max_candidates=7)
    chunked = GlinerLinkScorer(kb, models["uni"], TEMPLATE, max_labels=3).score(TEXTS, groups)
    whole = GlinerLinkScorer(kb, models["uni"], TEMPLATE, max_labels=50)
    for text, per_text, per_scores in zip(TEXTS, groups, chunked, strict=True):
        for g, scores in zip(per_text, per_scores, strict=True):
            for lo in range(0, len(g.candidates), 3):
                part = MentionCandidates(g.mention, g.candidates[lo : lo + 3])
                (alone,) = whole.score([text], [[part]])
                np.testing.assert_allclose(alone[0], scores[lo : lo + 3], atol=1e-5)


@pytest.mark.parametrize("kind", ["bi", "ce"])
def test_l4_chunked_equals_unchunked(models, entities, kind):
    backend = "gliner" if kind == "bi" else "cross_encoder"
    results = []
    for max_labels in (2, 100):
        builder = ConfigBuilder()
        builder.l4.configure(model=models[kind], backend=backend, threshold=0.0, max_labels=max_labels)
        executor = DAGExecutor(builder.build())
        executor.load_entities(entities)
        results.append(executor.execute({"texts": TEXTS, "entities": gold_mentions(TEXTS)}))
    small, large = (check_records(TEXTS, r, stage="l4") for r in results)
    for a, b in zip(small, large, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.candidate_scores.keys() == y.candidate_scores.keys()
            assert np.allclose(list(x.candidate_scores.values()), list(y.candidate_scores.values()), atol=1e-5)


def test_l4_merges_repeated_candidates(models, kb):
    from glinker.linking.gliner import GlinerLinkScorer

    (groups,) = groups_for(kb, TEXTS[:1], max_candidates=4)
    g = groups[0]
    repeated = MentionCandidates(g.mention, g.candidates + g.candidates[:2])
    scorer = GlinerLinkScorer(kb, models["uni"], TEMPLATE, max_labels=2)
    (scores,) = scorer.score(TEXTS[:1], [[repeated]])
    (plain,) = scorer.score(TEXTS[:1], [[g]])
    np.testing.assert_allclose(scores[0][:4], plain[0], atol=1e-5)
    np.testing.assert_allclose(scores[0][4:], plain[0][:2], atol=1e-5)


def test_l1_l2_l3_l4_topology(models, entities):
    builder = ConfigBuilder()
    builder.l1.gliner(model=models["uni"], labels=["city", "country"], threshold=0.0, flat_ner=False)
    builder.l3.configure(model=models["bi"], threshold=0.0)
    builder.l4.configure(model=models["uni"], threshold=0.0, max_labels=2)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    ctx = executor.execute({"texts": TEXTS})
    records = check_records(TEXTS, ctx, stage="l4")
    assert any(e.is_linked for per_text in records for e in per_text)
    l3, l4 = ctx.get("l3_result").entities, ctx.get("l4_result").entities
    assert [[(e.start, e.end) for e in p] for p in l3] == [[(e.start, e.end) for e in p] for p in l4]


def test_create_simple_with_gliner_and_reranker(models, entities):
    executor = ProcessorFactory.create_simple(
        model_name=models["bi"], template=TEMPLATE, entities=entities, precompute_embeddings=True, threshold=0.0,
        reranker_model=models["uni"], reranker_max_labels=2, reranker_threshold=0.0,
    )
    processors = [n.processor for n in executor.nodes]
    assert processors == ["l2_chain", "l3_batch", "l4_reranker", "l0_aggregator"]
    records = check_records(TEXTS, executor.execute({"texts": TEXTS}), stage="l4")
    assert {"Paris", "Amazon"} <= {e.mention_text for per_text in records for e in per_text if e.is_linked}
    external = ProcessorFactory.create_simple(model_name=models["bi"], entities=entities, external_entities=True,
                                              threshold=0.0, reranker_model=models["ce"])
    mentions = gold_mentions(TEXTS)
    records = check_records(TEXTS, external.execute({"texts": TEXTS, "entities": mentions}), stage="l4")
    assert [[(e.mention_start, e.mention_end) for e in r] for r in records] == \
        [[(m["start"], m["end"]) for m in per] for per in mentions]


def test_gliner_linker_over_a_minilm_kb_dir(models, entities, tmp_path):
    """A kb_dir built for the faiss layer's encoder serves a GLiNER linker too: its label vectors are
    another kind, made on the fly, never mixed with the stored ones."""
    from glinker.kb.build import build_kb_dir

    kb_dir = tmp_path / "kb"
    build_kb_dir(entities, kb_dir, "sentence-transformers/all-MiniLM-L6-v2", kinds=("names",), progress=False)
    builder = ConfigBuilder()
    builder.l2.add("dict", priority=1).add("faiss", priority=0)
    builder.l2.embeddings(enabled=True, model_name="sentence-transformers/all-MiniLM-L6-v2")
    builder.l3.configure(model=models["bi"], threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(kb_dir)
    assert executor.precompute_embeddings()["l3"] == len(entities)
    ctx = executor.execute({"texts": TEXTS})
    check_records(TEXTS, ctx, stage="l3")
    assert executor.kb.manifest["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
