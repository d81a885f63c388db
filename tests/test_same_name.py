"""Many entities sharing one name (issue 17.4): L2 sorts only the rows that can reach the first
max_candidates, the gazetteer decides a match with numpy, kb build embeds a shared name once.
Each is checked against the full computation it replaces. No model."""

import random

import numpy as np
import pytest

from glinker import DAGExecutor, registry
from glinker.kb import KnowledgeBase
from glinker.kb.gazetteer import FIRST_ROWS, Gazetteer, _is_acronym
from glinker.kb.normalize import normalize_name
from glinker.retrievers import Hits, Retriever
from layers import l2_chain
from tests.conftest import model_free_config

NAMES = ["Paris", "paris", "PARIS", "Paris Hilton", "AS", "As", "as", "Texas", "Paris, Texas", "ALL"]


def same_name_kb(seed: int, n: int) -> tuple[list[dict], list[dict]]:
    """n entities, most named Paris in some case, popularity in few values (ties), parents for the
    hierarchy; and a tenth of them loaded again (overwritten: their first rows are dead)."""
    rnd = random.Random(seed)
    rows = [{"entity_id": f"E{rnd.randrange(10**6):06d}-{i}", "label": rnd.choice(NAMES),
             "aliases": rnd.sample(["Paris", "AS", "City of Light", "all", "paris texas"], rnd.randint(0, 2)),
             "popularity": rnd.choice([0, 0, 1, 5, -1]), "entity_type": rnd.choice(["city", "person", ""]),
             "parent_ids": [f"E{rnd.randrange(10**6):06d}-{rnd.randrange(n)}"]} for i in range(n)]
    return rows, [dict(r, popularity=3) for r in rnd.sample(rows, n // 10)]


class EveryTenth(Retriever):
    """A small second layer: every tenth entity row, in reverse, so that it lifts rows deep in the name hits."""

    def search(self, queries):
        out = []
        for _ in queries:
            hits = Hits()
            hits.extend(np.arange(self.kb.store.num_rows - 1, -1, -10), 0.5)
            out.append(hits)
        return out


RETRIEVER = EveryTenth

TEXTS = ["Paris is in France; PARIS, paris texas and Paris, Texas.", "AS and as, all of it, the City of Light.",
         "Paris Hilton in Texas"]

CASES = [
    {},
    {"max_candidates": 5},
    {"max_candidates": 3, "min_popularity": 1},
    {"max_candidates": 4, "hierarchy": {"field": "parent_ids", "from_top": 12, "max_added": 2}},
    {"max_candidates": 7, "layers": [{"type": "dict"}, {"type": "dict", "search_mode": ["fuzzy"]}]},
    {"max_candidates": 6, "layers": [{"type": "dict", "priority": 1}, {"type": "tenth"}]},
]


def candidates(seed: int, l2: dict) -> list:
    config = model_free_config()
    config["nodes"][1]["config"].update(l2)
    executor = DAGExecutor(config)
    rows, again = same_name_kb(seed, 400)
    executor.load_entities(rows)
    executor.load_entities(again, overwrite=True)
    groups = [g for per_text in executor.execute({"texts": TEXTS}).get("l2_result").candidates for g in per_text]
    return [(g.mention.start, [(c.entity_id, c.score, c.source) for c in g.candidates]) for g in groups]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_cut_keeps_what_the_full_sort_keeps(case, monkeypatch):
    monkeypatch.setitem(registry.RETRIEVERS, "tenth", __name__)
    cut = candidates(case, CASES[case])
    every_row = lambda self, tables, leaders: np.unique(  # noqa: E731 - the full sort: every valid row contends
        np.concatenate([t.rows for t in tables]))[self._valid(np.unique(np.concatenate([t.rows for t in tables])))]
    monkeypatch.setattr(l2_chain.CandidateRetriever, "_contenders", every_row)
    assert cut == candidates(case, CASES[case])
    assert any(len(c) >= 3 for _, c in cut)


def test_only_the_first_max_candidates_of_a_shared_name_are_sorted():
    executor = DAGExecutor(model_free_config())
    executor.load_entities([{"entity_id": f"P{i}", "label": "Paris", "popularity": i % 3} for i in range(20_000)])
    l2 = executor.processors["l2"]
    tables = [h.table() for h in l2.retrievers[0].search([l2_chain.Query(("Paris",))])]
    assert len(tables[0].rows) == 20_000
    assert len(l2._contenders(tables, {})) == 30  # max_candidates
    ranked = executor.execute({"texts": ["Paris"]}).get("l2_result").candidates[0][0].candidates
    assert [c.entity_id for c in ranked[:3]] == ["P2", "P5", "P8"]  # popularity 2 first, then rank


def test_hits_added_as_arrays_equal_hits_added_one_by_one():
    rnd = random.Random(0)
    for _ in range(50):
        adds = [(rnd.randrange(30), rnd.choice([0.1, 0.5, 0.9, 1.0])) for _ in range(rnd.randrange(60))]
        one_by_one, arrays = Hits(), Hits()
        reference: dict[int, tuple[int, float]] = {}
        for row, score in adds:
            one_by_one.add(row, score)
            rank, best = reference.get(row, (len(reference), score))
            reference[row] = (rank, max(best, score))
        cut = rnd.randrange(len(adds) + 1)
        for part in (adds[:cut], adds[cut:]):
            arrays.extend(np.array([r for r, _ in part], np.int64), np.array([s for _, s in part]))
        for hits in (one_by_one, arrays):
            table = hits.table()
            assert list(zip(table.rows.tolist(), table.scores.tolist(), strict=True)) == \
                [(row, best) for row, (_, best) in sorted(reference.items(), key=lambda item: item[1][0])]
            probe = np.arange(-1, 32)
            assert table.rank_of(probe).tolist() == [reference.get(r, (-1,))[0] for r in probe.tolist()]


def accepted_one_by_one(gazetteer: Gazetteer, surface: str, name_rows: np.ndarray) -> str | None:
    """What the gazetteer accepted before, looking at every name row in Python."""
    store, index = gazetteer.kb.store, gazetteer.kb.name_index()
    ok = [(int(n), int(e)) for n, e in zip(name_rows, index.entities_of(name_rows), strict=True)
          if store.alive[e] and (gazetteer.entity_types is None or store.types[e] in gazetteer.entity_types)]
    names = [store.names[n] for n, _ in ok]
    letters = [c for c in surface if c.isalpha()]
    if not any(not _is_acronym(n) or [c for c in n if c.isalpha()] == letters for n in names):
        return None
    if normalize_name(surface) in gazetteer.stop and not any(_is_acronym(n) for n in names):
        return None
    return store.types[ok[0][1]]


@pytest.mark.parametrize("entity_types", [None, ["person"]])
def test_the_gazetteer_accepts_what_it_accepted_row_by_row(entity_types):
    kb = KnowledgeBase()
    rows, again = same_name_kb(7, 300)
    many_as = [{"entity_id": f"AS{i}", "label": "AS", "entity_type": "city"} for i in range(FIRST_ROWS + 5)]
    kb.load(many_as + rows + [{"entity_id": "As-last", "label": "As", "entity_type": "person"}])
    kb.load(again, overwrite=True)
    gazetteer = Gazetteer(kb, entity_types=entity_types)
    index = kb.name_index()
    for name in ["Paris", "as", "all", "paris texas", "City of Light", "Texas"]:
        name_rows = index.name_rows(index.exact(name))
        for surface in {name, name.upper(), name.lower(), name.title()}:
            match = type("Match", (), {"name_rows": name_rows})
            assert gazetteer._accepted(surface, match) == accepted_one_by_one(gazetteer, surface, name_rows), surface


def test_a_name_shared_by_many_entities_is_embedded_once():
    class CountingEncoder:
        model_id, dim, texts = "counting", 4, []

        def encode(self, texts, batch_size=64, progress=False, desc=""):
            self.texts += texts
            return np.array([[len(t), 1.0, t.count("a"), 2.0] for t in texts], np.float32)

    kb = KnowledgeBase()
    kb.load([{"entity_id": f"P{i}", "label": "Paris", "aliases": ["City of Light"]} for i in range(500)]
            + [{"entity_id": "T", "label": "Texas"}])
    encoder = CountingEncoder()
    vectors = kb.vectors(encoder, "names").matrix
    assert sorted(encoder.texts) == ["City of Light", "Paris", "Texas"]
    assert vectors.shape == (1001, 4) and (vectors[0:1000:2] == vectors[0]).all() and vectors[-1][0] == 5


def test_names_longer_than_the_token_cap_are_found_when_it_is_raised():
    long_name = "autosomal recessive limb girdle muscular dystrophy type two with early onset and cardiac involvement"
    assert len(long_name.split()) == 14
    text = f"The patient had {long_name} since childhood."
    found = []
    for cap in (None, 14):
        config = model_free_config()
        if cap:
            config["nodes"][0]["config"] = {"max_name_tokens": cap}
        executor = DAGExecutor(config)
        executor.load_entities([{"entity_id": "D1", "label": long_name}, {"entity_id": "D2", "label": "childhood"}])
        found.append([e.mention_text for e in executor.execute({"texts": [text]}).get("l0_result").entities[0]])
    assert found == [["childhood"], [long_name, "childhood"]]
