"""End to end through ConfigBuilder -> DAGExecutor -> L0 with the real offline models (spaCy, MiniLM)."""

import numpy as np
import orjson
import pytest

from glinker import DAGExecutor, ProcessorFactory
from tests.conftest import MINILM, dense_builder

pytestmark = pytest.mark.slow


def links(context):
    return [
        [(e.mention_text, e.linked_entity.entity_id if e.is_linked else None) for e in per_text]
        for per_text in context.get("l0_result").entities
    ]


def link_of(context, text_index, mention):
    for e in context.get("l0_result").entities[text_index]:
        if e.mention_text == mention:
            return e.linked_entity.entity_id if e.is_linked else None
    raise AssertionError(f"{mention!r} not found among {links(context)[text_index]}")


def test_paris_france_vs_paris_texas(spacy_executor):
    ctx = spacy_executor.execute({"texts": [
        "Paris is the capital of France and the Eiffel Tower stands on the Champ de Mars.",
        "Paris is a small city in Lamar County in northeast Texas, about a hundred miles from Dallas.",
    ]})
    assert link_of(ctx, 0, "Paris") == "Q90"
    assert link_of(ctx, 1, "Paris") == "Q830149"
    assert link_of(ctx, 1, "Texas") == "Q1439"


def test_ambiguous_names_follow_context(gazetteer_executor):
    ctx = gazetteer_executor.execute({"texts": [
        "Jeff Bezos founded Amazon as an online bookstore before it grew into a cloud computing giant.",
        "The Amazon flows across South America and carries more water than any other river.",
        "Guido van Rossum created Python, a programming language now used for data science.",
        "Atlanta is the capital of Georgia, a state in the Southeastern United States.",
    ]})
    assert link_of(ctx, 0, "Amazon") == "Q3884"
    assert link_of(ctx, 1, "Amazon") == "Q3783"
    assert link_of(ctx, 2, "Python") == "Q28865"
    assert link_of(ctx, 3, "Georgia") == "Q1428"


def test_l0_records_are_complete_and_consistent(spacy_executor, example_texts):
    ctx = spacy_executor.execute({"texts": example_texts})
    result = ctx.get("l0_result")
    assert len(result.entities) == len(example_texts)
    assert result.stats["total_mentions"] == sum(len(r) for r in result.entities) > 0
    for text, records in zip(example_texts, result.entities, strict=True):
        for e in records:
            assert text[e.mention_start : e.mention_end] == e.mention_text
            assert e.left_context == text[max(0, e.mention_start - 50) : e.mention_start]
            assert e.num_candidates >= len(e.candidates)
            if e.is_linked:
                assert e.linked_entity.entity_id in e.candidate_scores
                assert e.linked_entity.score == e.candidate_scores[e.linked_entity.entity_id]
                assert e.linked_entity.score == max(e.candidate_scores.values())
                assert e.linked_entity.confidence == e.linked_entity.score
                assert e.pipeline_stage == "l3_linked"
    assert set(ctx.timings()) == {"l1", "l2", "l3", "l0"}
    assert orjson.loads(ctx.to_json())["outputs"]["l0_result"]["stats"] == result.stats


def test_batch_equals_one_by_one(gazetteer_executor, example_texts):
    together = links(gazetteer_executor.execute({"texts": example_texts}))
    alone = [links(gazetteer_executor.execute({"texts": [t]}))[0] for t in example_texts]
    assert together == alone


def test_yaml_round_trip_gives_same_output(tmp_path, example_kb_path, example_texts, spacy_executor):
    path = tmp_path / "pipeline.yaml"
    dense_builder("spacy").save(path)
    executor = ProcessorFactory.create_pipeline(path)
    executor.load_entities(example_kb_path)
    assert links(executor.execute({"texts": example_texts})) == links(spacy_executor.execute({"texts": example_texts}))


def test_executor_accepts_dict_pipeline_and_path(tmp_path, example_kb_path):
    from glinker import DAGPipeline

    cfg = dense_builder("dictionary").build()
    path = tmp_path / "p.yaml"
    dense_builder("dictionary").save(path)
    outputs = []
    for source in (cfg, DAGPipeline(cfg), path, str(path)):
        executor = DAGExecutor(source)
        executor.load_entities(example_kb_path)
        outputs.append(links(executor.execute({"texts": ["Marie Curie discovered polonium."]})))
    assert outputs[0] == [[("Marie Curie", "Q7181"), ("polonium", "Q979")]]
    assert all(o == outputs[0] for o in outputs)


def test_linking_only_uses_input_mentions(example_kb_path):
    executor = DAGExecutor(dense_builder(None).build())
    executor.load_entities(example_kb_path)
    texts = ["Freddie Mercury sang with Queen.", "Old thermometers held mercury, a liquid metal."]
    ctx = executor.execute({"texts": texts, "entities": [
        [{"text": "Mercury", "start": 8, "end": 15}, {"text": "Queen", "start": 26, "end": 31}],
        [{"text": "mercury", "start": 22, "end": 29}],
    ]})
    assert links(ctx) == [[("Mercury", "Q15869"), ("Queen", "Q15862")], [("mercury", "Q925")]]


def test_create_simple_dense_external_entities(example_kb_path):
    executor = ProcessorFactory.create_simple(
        model_name=MINILM, threshold=0.6, template="{label}: {description}",
        entities=str(example_kb_path), precompute_embeddings=True, external_entities=True,
    )
    assert executor.count_entities()["dict"] == 49
    text = "Freddie Mercury sang with Queen."
    ctx = executor.execute({"texts": [text], "entities": [[{"text": "Freddie Mercury", "start": 0, "end": 15}]]})
    assert links(ctx) == [[("Freddie Mercury", "Q15869")]]


def test_create_simple_without_mentions_links_kb_names(example_kb_path):
    executor = ProcessorFactory.create_simple(model_name=MINILM, template="{label}: {description}", threshold=0.6)
    executor.load_entities([{"entity_id": "Q7181", "label": "Marie Curie", "description": "physicist"}])
    executor.load_entities({"Q979": {"label": "polonium", "description": "chemical element"}})
    ctx = executor.execute({"texts": ["Marie Curie discovered polonium."]})
    assert links(ctx) == [[("Marie Curie", "Q7181"), ("polonium", "Q979")]]
    executor.clear_databases()
    assert executor.count_entities()["dict"] == 0
    assert links(executor.execute({"texts": ["Marie Curie discovered polonium."]})) == [[]]


def test_loading_more_entities_updates_links(example_kb_path):
    executor = DAGExecutor(dense_builder("dictionary").build())
    executor.load_entities([{"entity_id": "X1", "label": "Nile", "description": "river in Africa"}])
    assert links(executor.execute({"texts": ["The Nile and the Danube."]})) == [[("Nile", "X1")]]
    executor.load_entities([{"entity_id": "X2", "label": "Danube", "description": "river in Europe"}])
    assert links(executor.execute({"texts": ["The Nile and the Danube."]})) == [[("Nile", "X1"), ("Danube", "X2")]]


def test_dense_scores_a_candidate_missing_from_the_kb_from_its_own_fields(gazetteer_executor):
    import dataclasses

    from glinker.types import MentionCandidates

    text = "Paris is a small city in Lamar County in northeast Texas."
    scorer = gazetteer_executor.processors["l3"].scorer
    l2 = gazetteer_executor.execute({"texts": [text]}).get("l2_result").candidates
    groups = [[g for g in l2[0] if len(g.candidates) >= 2]]
    assert groups[0]
    copies = [[MentionCandidates(g.mention, [dataclasses.replace(c, entity_id=f"outside:{c.entity_id}")
                                             for c in g.candidates]) for g in groups[0]]]
    in_kb, outside = scorer.score([text], groups), scorer.score([text], copies)
    for a, b in zip(in_kb[0], outside[0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert len(a) >= 2 and ((a >= 0) & (a <= 1)).all()
