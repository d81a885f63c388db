"""Name normalisation, exact and fuzzy lookup, the gazetteer, abbreviations."""

import numpy as np
import pytest

from glinker import KnowledgeBase
from glinker.kb.columns import StringColumn, span_hashes, string_hash
from glinker.kb.gazetteer import Gazetteer
from glinker.kb.normalize import normalize_name
from glinker.text import abbreviations, char_windows, expanded


def kb_of(*rows):
    kb = KnowledgeBase()
    kb.load([{"entity_id": r[0], "label": r[1], "aliases": list(r[2:])} for r in rows])
    return kb


def test_normalize_folds_case_accents_punctuation():
    assert normalize_name("Crohn's  Disease") == normalize_name("CROHN’S-disease") == "crohn s disease"
    assert normalize_name("Türkiye") == "turkiye"
    assert normalize_name("  ") == ""


def test_hashes_are_stable_and_positional_free(monkeypatch):
    import glinker.kb.columns as columns

    col = StringColumn.from_strings(["abc", "xabc", "abc", "", "ünï", "abc"])
    h = col.hashes()
    assert h[0] == h[2] == string_hash("abc") and h[0] != h[1]
    codes = np.frombuffer(b"xabc", dtype=np.uint8)
    assert span_hashes(codes, np.array([1]), np.array([4]))[0] == h[0]
    for block in (1, 2, 4):  # hashed a block of strings at a time: the same hashes
        monkeypatch.setattr(columns, "HASH_BLOCK", block)
        assert col.hashes().tolist() == h.tolist()


def test_exact_and_similar():
    kb = kb_of(("D1", "Breast Neoplasms", "Breast Cancer", "breast carcinoma"), ("D2", "Parkinson Disease"),
               ("D3", "Liver Injury"))
    index = kb.name_index()
    key = index.exact("BREAST-cancer")
    assert [kb.store.ids[int(r)] for r in index.entity_rows(key)] == ["D1"]
    assert index.exact("breast") is None
    keys, scores = index.similar("parkinsons disease", k=3, min_similarity=0.3)
    assert index.keys[int(keys[0])] == "parkinson disease" and 0.5 < scores[0] < 1.0
    assert list(scores) == sorted(scores, reverse=True)
    keys, scores = index.similar("zzzz", k=3, min_similarity=0.3)
    assert len(keys) == 0


def test_similar_sums_postings_the_same_way_dense_or_sparse(example_kb_path, monkeypatch):
    import glinker.kb.names as names

    kb = KnowledgeBase()
    kb.load(example_kb_path)
    index = kb.name_index()
    queries = ["paris texas", "amazon rivr", "georgia", "new yrok", "x", "washington state univ"]
    results = {}
    for factor in (0, 10**9):  # 0: always sort the postings; 10**9: always one pass over every key
        monkeypatch.setattr(names, "DENSE_POSTINGS", factor)
        results[factor] = [index.similar(q, 10, 0.2) for q in queries]
    for (k0, s0), (k1, s1) in zip(results[0], results[10**9], strict=True):
        assert k0.tolist() == k1.tolist() and s0.tolist() == s1.tolist()
    assert any(len(k) for k, _ in results[0])


def test_name_index_built_in_chunks_equals_one_pass(example_kb_path, monkeypatch):
    """The index is built a block of names at a time (memory at 10M names); any block size gives the
    same arrays and keys, to the bit (a key shorter than an n-gram once padded has no postings)."""
    import glinker.kb.names as names

    kb = KnowledgeBase()
    kb.load(example_kb_path)
    store = kb.store
    extra = ["", "x", "Ünïcode  Name", "x"]  # an empty name, a one-gram key, accents, a repeated key
    column = StringColumn.concat_all([store.names, StringColumn.from_strings(extra)])
    entity = np.concatenate([store.name_entity_rows(), np.zeros(len(extra), np.int64)])
    monkeypatch.setattr(names, "BUILD_CHUNK", len(column))
    whole = names.NameIndex.build(column, entity)
    for chunk in (1, 2, 7):
        monkeypatch.setattr(names, "BUILD_CHUNK", chunk)
        index = names.NameIndex.build(column, entity)
        assert index.keys.tolist() == whole.keys.tolist()
        for key, array in index._arrays.items():
            assert array.dtype == whole._arrays[key].dtype and np.array_equal(array, whole._arrays[key]), key
    offsets, posts = whole._arrays["gram_offsets"], whole._arrays["post_keys"]
    assert all(np.all(np.diff(posts[a:b]) > 0) for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    keys = whole.keys.tolist()
    assert keys.index("") not in posts and keys.index("x") in posts  # "" has no 3-gram, " x " has one
    assert whole.exact("Ünïcode name") is not None and len(whole.canonical("name unicode"))


@pytest.mark.parametrize("dense", [0, 10**9])
def test_similar_many_equals_one_query_at_a_time(example_kb_path, monkeypatch, dense):
    import glinker.kb.names as names

    kb = KnowledgeBase()
    kb.load(example_kb_path)
    index = kb.name_index()
    queries = ["paris texas", "", "amazon rivr", "zzzz", "georgia", "new yrok", "x", "washington state univ", "paris"]
    monkeypatch.setattr(names, "DENSE_POSTINGS", dense)
    one_by_one = [index.similar(q, 4, 0.1) for q in queries]
    monkeypatch.setattr(names, "SIMILAR_CHUNK", 3)  # chunks that split the queries
    batched = index.similar_many(queries, 4, 0.1)
    assert len(batched) == len(queries)
    for (k0, s0), (k1, s1) in zip(one_by_one, batched, strict=True):
        assert k0.tolist() == k1.tolist() and s0.tolist() == s1.tolist()
        assert len(k0) <= 4 and (s0 >= 0.1).all()
        assert all((-a, x) <= (-b, y) for a, b, x, y in zip(s0, s0[1:], k0, k0[1:], strict=False))  # ties by key
    assert len(one_by_one[1][0]) == len(one_by_one[3][0]) == 0 < len(one_by_one[0][0])


def test_name_index_api():
    kb = kb_of(("A", "alpha", "al"), ("B", "beta"))
    index = kb.name_index()
    name_rows = index.name_rows(index.exact("AL"))
    assert name_rows.tolist() == [1] and index.entities_of(name_rows).tolist() == [0]
    assert index.entity_rows(index.exact("beta")).tolist() == [1]
    assert kb.store.label_name_rows().tolist() == [0, 2]  # "alpha" and "beta"; "al" is an alias
    assert index.params == {"ngram": 3} and not hasattr(index, "a")


def test_index_follows_loads():
    kb = kb_of(("A", "alpha"))
    assert kb.name_index().exact("beta") is None
    kb.load([{"entity_id": "B", "label": "beta"}])
    assert kb.name_index().exact("beta") is not None


def test_gazetteer_longest_match_offsets_and_filters():
    kb = kb_of(("C", "cancer"), ("BC", "breast cancer"), ("AS", "AS", "ankylosing spondylitis"), ("T", "The"),
               ("PD", "Parkinson's disease"))
    text = "Women with breast cancer, as well as men with AS or Parkinson’s Disease; the end."
    found = Gazetteer(kb, min_chars=2).find(text)
    assert [(m.text, m.start) for m in found] == [
        ("breast cancer", text.index("breast")), ("AS", text.index("AS")),
        ("Parkinson’s Disease", text.index("Parkinson")),
    ]
    for m in found:
        assert text[m.start : m.end] == m.text
    assert [m.text for m in Gazetteer(kb, use_default_stop_words=False).find("The cancer")] == ["The", "cancer"]
    assert [m.text for m in Gazetteer(kb, stop_words=["cancer"]).find("The cancer")] == []


def test_abbreviation_definitions():
    text = ("Duchenne muscular dystrophy (DMD) is rare. Heart failure (HF) follows. "
            "5-fluorouracil (5-FU) was given. Results (p < 0.05) held (n=12).")
    assert abbreviations(text) == {
        "DMD": "Duchenne muscular dystrophy", "HF": "Heart failure", "5-FU": "5-fluorouracil",
    }
    # the short form ends at ";" or ","; a plural one defines its singular too, even when only that matches
    text = ("Patients with myelodysplastic syndrome (MDS; n = 5) and ventricular septal defects (VSDs). "
            "Excited delirium (EDDs, 12 cases) was seen. Treated with insulin alone (i.e., no metformin).")
    assert abbreviations(text) == {
        "MDS": "myelodysplastic syndrome", "VSDs": "ventricular septal defects", "VSD": "ventricular septal defects",
        "EDDs": "Excited delirium", "EDD": "Excited delirium",
    }


def test_short_forms_followed_by_more_in_their_parenthesis_need_a_capital_and_a_content_word():
    text = "The risk of stroke (OR, 2.3; 95% CI 1.1-4.0) rose in elderly patients taking drugs (eg, warfarin)."
    assert abbreviations(text) == {}


def test_expanded_writes_out_the_short_forms_a_mention_holds_as_words():
    defined = {"GI": "gastrointestinal", "AEs": "adverse events", "HT": "hypertension",
               "CT": "computed tomography", "CTA": "CT angiography"}
    assert expanded("GI AEs", defined) == "gastrointestinal adverse events"
    assert expanded("HT", defined) == "hypertension"
    assert expanded("CTA scan", defined) == "CT angiography scan"  # the longest short form, once
    assert expanded("5-HT syndrome", defined) is None  # part of a hyphenated name
    assert expanded("HTN", defined) is None and expanded("GI", {}) is None


def test_char_windows_cover_text_exactly():
    text = ("Sentence one here. " * 40 + "\n\n") * 5
    windows = list(char_windows(text, 300))
    assert "".join(piece for _, piece in windows) == text
    assert all(len(piece) <= 300 for _, piece in windows)
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in windows)


def test_gazetteer_follows_abbreviations_defined_in_text():
    kb = kb_of(("MI", "Myocardial Infarction"), ("AS", "Aortic Stenosis", "AS"), ("CHF", "heart failure", "CHF"))
    text = ("After a myocardial infarction (MI), patients with MI and CHF were studied. "
            "Acetylsalicylic acid (AS) was given; AS lowered the risk.")
    found = [(m.text, m.start) for m in Gazetteer(kb, min_chars=2).find(text)]
    assert ("myocardial infarction", text.index("myocardial")) in found
    assert [t for t, _ in found].count("MI") == 2  # "MI" is no KB name, but its long form is
    assert ("CHF", text.index("CHF")) in found  # an acronym not redefined in the text stays
    assert "AS" not in [t for t, _ in found]  # defined here as something that is not in the KB
    plain = [m.text for m in Gazetteer(kb, min_chars=2, abbreviations=False).find(text)]
    assert "MI" not in plain and plain.count("AS") == 2


def test_gazetteer_canonical_windows_are_optional():
    kb = kb_of(("H", "Hypertension"), ("N", "Neoplasms, Breast"))
    text = "Hypertensive women with breast neoplasm."
    assert Gazetteer(kb).find(text) == []
    found = Gazetteer(kb, canonical_tokens=3).find(text)
    assert [m.text for m in found] == ["Hypertensive", "breast neoplasm"]
