"""GLiClass linking (L3/L4 ``backend: gliclass``) against gliclass's own pipeline, on tiny random models.

The mention, marked in its context, is the text; its candidates rendered with the template are the
classes. Our scores must equal ``ZeroShotClassificationPipeline`` on the same texts, classes and
threshold (uni-encoders per chunk of ``max_labels`` candidates), with the same best candidate.
"""

import functools
import json
import shutil

import numpy as np
import pytest

from glinker import ConfigBuilder, ConfigError, DAGExecutor, LimitError
from glinker.linking.inputs import candidate_text, marked_context
from glinker.types import MentionCandidates
from tests import test_gliner_layers as gliner_tests

gliclass = pytest.importorskip("gliclass")

pytestmark = pytest.mark.slow

one_thread, entities, kb = gliner_tests.one_thread, gliner_tests.entities, gliner_tests.kb
gold_mentions, groups_for = gliner_tests.gold_mentions, gliner_tests.groups_for

TEMPLATE = "{label}: {description}"
TEXTS = [
    "Paris is the capital of France and the Eiffel Tower stands on the Champ de Mars.",
    "Paris is a small city in Lamar County in northeast Texas, about a hundred miles from Dallas.",
    "Jeff Bezos founded Amazon as an online bookstore.",
    "The Amazon flows across South America.",
]
NAMES = ("Paris", "France", "Texas", "Amazon", "Jeff Bezos", "South America")


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    from tests.tiny_gliclass import tiny_gliclass

    root = tmp_path_factory.mktemp("gliclass")
    return {"uni": tiny_gliclass(root / "uni"), "bi": tiny_gliclass(root / "bi", bi_encoder=True)}


def run(model, entities, node, **options):
    """A linking-only pipeline (L2 -> L3 or L4 -> L0) over TEXTS, the backend guessed from the model."""
    builder = ConfigBuilder()
    builder.set_schema_template(TEMPLATE)
    if node == "l3":
        builder.l3.configure(model=model, threshold=0.0, consistency=False, **options)
    else:
        builder.l4.configure(model=model, threshold=0.0, **options)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    return executor, executor.execute({"texts": TEXTS, "entities": gold_mentions(TEXTS, NAMES)})


@functools.cache
def library_pipeline(model):
    from gliclass import GLiClassModel, ZeroShotClassificationPipeline

    return ZeroShotClassificationPipeline(GLiClassModel.from_pretrained(model), model, device="cpu", progress_bar=False)


def library_scores(model, text, mention, candidates, chunk):
    """gliclass's own pipeline on the marked mention: each chunk of distinct candidates as the classes."""
    pipe = library_pipeline(model)
    context = marked_context(text, mention.start, mention.end, 100)
    unique = list({c.entity_id: c for c in candidates}.values())
    scores = {}
    for lo in range(0, len(unique), chunk or len(unique)):
        texts = {c.entity_id: candidate_text(c, TEMPLATE) for c in unique[lo : lo + (chunk or len(unique))]}
        (predictions,) = pipe(context, list(dict.fromkeys(texts.values())), threshold=0.0)
        by_text = {p["label"]: p["score"] for p in predictions}
        scores.update({k: by_text[x] for k, x in texts.items()})
    return scores


def assert_library_scores(model, chunk, scored):
    """``scored``: (text, mention's candidate group, our score per entity id, our link or None) of at least
    six mentions; each score within 1e-4 of the library's, the link one of the library's best."""
    worst, compared = 0.0, 0
    for text, group, ours, link in scored:
        expected = library_scores(model, text, group.mention, group.candidates, chunk)
        assert ours.keys() == expected.keys()
        worst = max(worst, max(abs(ours[k] - v) for k, v in expected.items()))
        if link is not None:
            assert expected[link] >= max(expected.values()) - 1e-4
        compared += 1
    assert compared >= 6
    assert worst <= 1e-4


@pytest.mark.parametrize(("kind", "node", "max_labels"), [("uni", "l3", None), ("bi", "l3", None),
                                                          ("uni", "l4", 2), ("bi", "l4", 3)])
def test_layer_scores_equal_the_gliclass_pipeline(models, entities, kind, node, max_labels):
    _, ctx = run(models[kind], entities, node, max_labels=max_labels)
    scored = [(text, g, link.class_probs, link.entity_id)
              for text, per_groups, per_links in zip(TEXTS, ctx.get("l2_result").candidates,
                                                     ctx.get(f"{node}_result").entities, strict=True)
              for g, link in zip(per_groups, per_links, strict=True) if g.candidates]
    assert_library_scores(models[kind], max_labels if kind == "uni" else None, scored)


@pytest.mark.parametrize("kind", ["uni", "bi"])
def test_seven_candidates_in_chunks_of_three_equal_the_pipeline(models, kb, kind):
    """Uni-encoder prompts of 3, 3 and 1 candidates (one of them repeated); the bi-encoder scores them at once."""
    from glinker.linking.gliclass import GliclassLinkScorer

    groups = groups_for(kb, TEXTS, max_candidates=7)
    groups = [[MentionCandidates(g.mention, g.candidates + g.candidates[:1]) for g in per_text] for per_text in groups]
    scores = GliclassLinkScorer(kb, models[kind], TEMPLATE, max_labels=3).score(TEXTS, groups)
    scored = []
    for text, per_text, per_scores in zip(TEXTS, groups, scores, strict=True):
        for g, s in zip(per_text, per_scores, strict=True):
            ours = {c.entity_id: float(x) for c, x in zip(g.candidates, s, strict=True)}
            assert s[-1] == s[0]  # the repeated candidate is scored once
            scored.append((text, g, ours, None))
    assert_library_scores(models[kind], 3 if kind == "uni" else None, scored)


def test_backend_is_guessed_from_the_model_files(models, entities):
    from glinker.models.resolve import detect_backend

    assert detect_backend(models["uni"]) == detect_backend(models["bi"]) == "gliclass"
    executor, _ = run(models["uni"], entities, "l4")
    (node,) = [n for n in executor.nodes if n.processor == "l4_reranker"]
    assert executor.processors[node.id].backend == "gliclass"


def test_bi_encoder_class_vectors_are_made_once_for_the_kb(models, entities, monkeypatch):
    from glinker.models.gliclass import GliclassModel

    builder = ConfigBuilder()
    builder.set_schema_template(TEMPLATE)
    builder.l3.configure(model=models["bi"], threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(entities)
    assert sum(executor.precompute_embeddings().values()) == len(entities)
    embedded = []
    original = GliclassModel.encode_classes
    monkeypatch.setattr(GliclassModel, "encode_classes",
                        lambda self, texts, **kw: embedded.append(len(texts)) or original(self, texts, **kw))
    first = executor.execute({"texts": TEXTS, "entities": gold_mentions(TEXTS, NAMES)}).get("l3_result").entities
    second = executor.execute({"texts": TEXTS[::-1], "entities": gold_mentions(TEXTS[::-1], NAMES)}).get("l3_result").entities
    assert embedded == []
    for x, y in zip(first[0], second[-1], strict=True):
        assert x.class_probs == pytest.approx(y.class_probs, abs=1e-6)


def test_precomputed_class_vectors_equal_computed_on_the_fly(models, entities):
    scores = [run(models["bi"], entities, "l3", use_precomputed_embeddings=flag)[1].get("l3_result").entities
              for flag in (True, False)]
    for a, b in zip(*scores, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.class_probs.keys() == y.class_probs.keys()
            np.testing.assert_allclose(list(x.class_probs.values()), list(y.class_probs.values()), atol=1e-6)


def test_a_prompt_longer_than_max_length_is_a_limit_error(models, entities):
    with pytest.raises(LimitError, match="max_labels"):
        run(models["uni"], entities, "l3", max_length=16)


@pytest.mark.parametrize("change", ["auto_map", "encoder_type"])
def test_a_model_that_would_run_its_own_code_is_refused(models, entities, tmp_path, change):
    folder = tmp_path / "model"
    shutil.copytree(models["uni"], folder)
    config = json.loads((folder / "config.json").read_text())
    if change == "auto_map":
        config["auto_map"] = {"AutoModel": "modeling.Model"}
    else:
        config["encoder_config"]["model_type"] = "my-remote-encoder"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="auto_map" if change == "auto_map" else "my-remote-encoder"):
        run(str(folder), entities, "l3", backend="gliclass")


@pytest.mark.parametrize("kind", ["uni", "bi"])
def test_int8_scores_stay_close_to_float32(models, kb, kind, tmp_path):
    from glinker.linking.gliclass import GliclassLinkScorer

    folder = shutil.copytree(models[kind], tmp_path / kind)
    groups = groups_for(kb, TEXTS, max_candidates=4)
    fp32, int8 = (GliclassLinkScorer(kb, str(folder), TEMPLATE, quantize=mode, use_precomputed=False)
                  for mode in ("none", "int8"))
    assert int8.model.model_id.endswith("+int8")
    for a, b in zip(fp32.score(TEXTS, groups), int8.score(TEXTS, groups), strict=True):
        for x, y in zip(a, b, strict=True):  # random tiny weights (hidden 32): int8 runs and stays close, no
            np.testing.assert_allclose(x, y, atol=0.15)  # more; measured up to 0.114 (per-tensor scales 0.094)
