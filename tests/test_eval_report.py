"""glinker eval's explanations: outcome categories, threshold sweep, comparison of runs, HTML report.

Hand-built gold and predicted mentions, and a gazetteer + tiny random cross-encoder pipeline on the
example KB for the sweep against real re-runs (no trained model).
"""

import re
import sys

import orjson
import pytest
import yaml

from glinker.cli import main
from glinker.errors import InputError
from glinker.evaluation.calibration import at_threshold, best_threshold, reliability
from glinker.evaluation.compare import compare, load_run
from glinker.evaluation.outcomes import CATEGORIES, Scored
from glinker.jobs.evaluate import EvalRun, GoldMention, evaluate
from glinker.jobs.reader import Doc
from tests.conftest import DATA, model_free_config
from tests.tiny_models import tiny_cross_encoder

G = GoldMention
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "br", "div", "span", "code",
             "mark", "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption"}
TEXT = "".join(f"m{i:02d}  +++++ " for i in range(10))  # mention i at 10*i .. 10*i + 5


def one_of_each() -> tuple[list[GoldMention], list[Scored]]:
    """One unit of each category at threshold 0.5 (partial_span twice: its gold and its prediction)."""
    gold = [G(0, 5, ("A",)), G(10, 15, ("B",)), G(20, 25, ("C",)), G(40, 45, ("D",)), G(50, 55, ("E",)),
            G(60, 65, ()), G(70, 75, ("F",)), G(80, 85, ()), G(90, 95, ())]
    scored = [
        Scored(0, 5, "A", 0.9, ("A", "X"), (("A", 0.9), ("X", 0.1))),            # correct
        Scored(21, 25, "C", 0.8, ("C",), (("C", 0.8),)),                           # partial span (and G3)
        Scored(30, 35, "Z", 0.9, ("Z",), (("Z", 0.9),)),                           # spurious
        Scored(40, 45, "X", 0.9, ("X", "Y"), (("X", 0.9), ("Y", 0.2))),            # not in candidates
        Scored(50, 55, "X", 0.9, ("X", "E"), (("X", 0.9), ("E", 0.7))),            # wrong rank (2)
        Scored(60, 65, "X", 0.9, ("X",), (("X", 0.9),)),                           # linked NIL
        Scored(70, 75, "F", 0.3, ("F",), (("F", 0.3),)),                           # threshold too high
        Scored(80, 85, "X", 0.2, ("X",), (("X", 0.2),)),                           # NIL left unlinked
    ]
    return gold, scored


def hand_report(threshold: float = 0.5, text: str = TEXT, doc_id="d1", describe=None, labels=None) -> dict:
    run = EvalRun(threshold, describe or (lambda i: (f"label {i}", "type")), group_by="split")
    gold, scored = one_of_each()
    run.add_scored(Doc(1, doc_id, text, {"split": "test"}), gold, scored, labels or {})
    return {**run.report("l3"), "mode": "end_to_end", "split": None}


def test_one_case_per_category_gives_exactly_those_counts():
    report = hand_report()
    assert report["outcomes"] == {"correct": 3, "missed_mention": 1, "partial_span": 2, "spurious_mention": 1,
                                  "not_in_candidates": 1, "wrong_rank": 1, "linked_nil": 1, "threshold_too_high": 1}
    assert report["outcome_check"] == {"gold": 9, "predicted": 8, "matched": 6, "units": 11, "sum": 11, "ok": True}
    by_span = {(m["start"], m["end"]): m for m in report["mentions"]}
    assert by_span[50, 55]["gold_rank"] == 2 and by_span[50, 55]["l2_rank"] == 2
    assert by_span[20, 25]["category"] == by_span[21, 25]["category"] == "partial_span"
    assert by_span[90, 95]["category"] == "correct" and by_span[90, 95]["predicted"] is None
    assert report["inkb"] == {"precision": 0.2, "recall": pytest.approx(1 / 6, abs=1e-4), "f1": pytest.approx(0.1818, abs=1e-4)}
    assert report["nil"] == {"precision": 0.5, "recall": pytest.approx(1 / 3, abs=1e-4)}
    assert report["outcomes_by_group"] == {"test": report["outcomes"]}
    assert report["outcomes_by_type"]["NIL"]["linked_nil"] == 1
    assert report["recall_curve"] == [pytest.approx(2 / 6, abs=1e-4), 0.5]  # A and F first, E second


def test_sweep_rows_equal_counting_again_at_each_threshold():
    sweep = hand_report()["threshold"]["sweep"]
    assert [row["threshold"] for row in sweep] == [0.9, 0.8, 0.3, 0.2]
    for t in (0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.8, 0.85, 0.9, 0.95):
        again = hand_report(threshold=t)
        row = at_threshold(sweep, t)
        assert (row["precision"], row["recall"], row["f1"], row["links"]) == (
            again["precision"], again["recall"], again["f1"], again["predicted_links"]), t


def test_best_threshold_is_the_shortest_decimal_linking_the_same_mentions():
    rows = [{"threshold": 0.8731, "f1": 0.5}, {"threshold": 0.61, "f1": 0.7}, {"threshold": 0.6049, "f1": 0.7},
            {"threshold": 0.2, "f1": 0.1}]
    best = best_threshold(rows)
    assert best["score"] == 0.61 and best["threshold"] == 0.61  # ties: the higher threshold; 0.6 would add 0.6049
    assert best_threshold(rows[2:])["threshold"] == 0.6
    assert best_threshold([]) is None
    curve = reliability([(0.95, True), (0.91, False), (0.15, False)])
    assert curve["bins"][9] == {"low": 0.9, "high": 1.0, "count": 2, "confidence": 0.93, "accuracy": 0.5}
    assert curve["ece"] == pytest.approx((abs(1.86 - 1) + 0.15) / 3, abs=1e-4)


def test_compare_of_a_run_with_itself_shows_no_changes(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(orjson.dumps(hand_report()))
    b.write_bytes(orjson.dumps(hand_report(threshold=0.2)))
    same = compare(load_run(a), load_run(a))
    assert (same["changed"], same["fixed"], same["broken"], same["transitions"], same["mentions"]) == (0, 0, 0, [], [])
    assert all(row["net"] == 0 for row in same["outcomes"].values())
    diff = compare(load_run(a), load_run(b))
    assert {(t["from"], t["to"]): t["count"] for t in diff["transitions"]} == {
        ("threshold_too_high", "correct"): 1, ("correct", "linked_nil"): 1}
    assert (diff["fixed"], diff["broken"]) == (1, 1)
    assert main(["eval", "--compare", str(a), str(a), "--json"]) == 0
    with pytest.raises(InputError):
        load_run(DATA / "entities.jsonl")


def test_hostile_text_in_the_data_stays_escaped(tmp_path):
    pytest.importorskip("matplotlib")
    from glinker.evaluation.report import compare_page, eval_page

    hostile = '<script>alert("x")</script>'
    text = TEXT.replace("m00", "<b>").replace("m05", hostile[:3]) + f' "{hostile}" \'q\''
    describe = lambda i: (f'<img src=x onerror=alert("{i}")>', "<i>type</i>")  # noqa: E731
    report = hand_report(text=text, doc_id=hostile, describe=describe, labels={"X": hostile, "A": '"><svg onload=1>'})
    report["mentions"][0]["group"] = report["split"] = hostile
    pages = [eval_page(report, title=hostile), compare_page(compare(report, hand_report(threshold=0.2),
                                                                    names=(hostile, "b")))]
    for page in pages:
        assert page.count("<svg") >= 1
        html = re.sub(r"<svg.*?</svg>", "", page, flags=re.S)  # matplotlib's plots: numbers and category names only
        assert set(re.findall(r"</?([a-zA-Z][\w-]*)", html)) <= PAGE_TAGS
        assert not re.search(r"<[^>]*\son\w+=", html) and "src=" not in re.sub(r"&lt;.*?&gt;", "", html)
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(&quot;A&quot;)&gt;" in pages[0]


def test_eval_arguments_and_missing_matplotlib_are_refused_before_running(monkeypatch, capsys, tmp_path):
    assert main(["eval", "--kb", "kb_dir"]) == 2
    assert "needs --config, --gold (or --compare A.json B.json)" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["eval", "--config", "x.yaml", "--kb", "kb_dir", "--gold", "g.jsonl", "--report", "r.html"]) == 2
    assert 'needs matplotlib: pip install -e ".[report]"' in capsys.readouterr().err


# --------------------------------------------------------------------------- a real pipeline, run again


def gold_file(tmp_path):
    texts = {orjson.loads(line)["id"]: orjson.loads(line)["text"] for line in (DATA / "texts.jsonl").read_bytes().splitlines()}
    gold = [("paris-france", "Paris", "Q90"), ("paris-texas", "Paris", "Q830149"), ("paris-texas", "Texas", "Q1439"),
            ("paris-france", "Eiffel Tower", "Q243"), ("paris-france", "Champ de Mars", "NIL"),
            ("amazon-river", "Amazon", "Q3783"), ("amazon-river", "South America", "Q18")]
    docs = {}
    for doc_id, surface, entity_id in gold:
        start = texts[doc_id].index(surface)
        docs.setdefault(doc_id, []).append({"start": start, "end": start + len(surface), "entity_id": entity_id})
    path = tmp_path / "gold.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"doc_id": d, "text": t, "mentions": docs.get(d, [])}) + b"\n"
                              for d, t in texts.items()))
    return path


def cross_encoder_config(model: str, threshold: float) -> dict:
    """Gazetteer L1 -> names L2 -> tiny cross-encoder L3 -> L0."""
    config = model_free_config()
    l1, l2, l0 = config["nodes"]
    l3 = {"id": "l3", "processor": "l3_batch", "requires": ["l2"],
          "inputs": {"texts": {"source": "$input", "fields": "texts"},
                     "candidates": {"source": "l2_result", "fields": "candidates"}},
          "output": {"key": "l3_result"}, "schema": {"template": "{label}: {description}"},
          "config": {"model": model, "backend": "cross_encoder", "threshold": threshold}}
    l0["requires"] = ["l2", "l3"]
    l0["inputs"]["l3_entities"] = {"source": "l3_result", "fields": "entities"}
    config["nodes"] = [l1, l2, l3, l0]
    return config


def test_threshold_sweep_equals_running_the_pipeline_at_each_threshold(tmp_path, capsys):
    model = tiny_cross_encoder(tmp_path / "ce")
    gold, kb = gold_file(tmp_path), DATA / "entities.jsonl"
    config, out = tmp_path / "pipeline.yaml", tmp_path / "best.yaml"
    config.write_text(yaml.safe_dump(cross_encoder_config(model, 0.5)))
    assert main(["eval", "--config", str(config), "--kb", str(kb), "--gold", str(gold), "--json", "--quiet",
                 "--write-threshold", str(out)]) == 0
    report = orjson.loads(capsys.readouterr().out)
    sweep, best = report["threshold"]["sweep"], report["threshold"]["best"]
    assert len(sweep) >= 4 and report["outcome_check"]["ok"] and set(report["outcomes"]) == set(CATEGORIES)
    assert at_threshold(sweep, 0.5)["f1"] == report["f1"]
    for t in (sweep[len(sweep) // 2]["threshold"], 0.0):
        again = evaluate(cross_encoder_config(model, t), kb, gold)
        row = at_threshold(sweep, t)
        assert (row["precision"], row["recall"], row["f1"], row["links"]) == (
            again["precision"], again["recall"], again["f1"], again["predicted_links"]), t
    written = yaml.safe_load(out.read_text())["nodes"][2]["config"]["threshold"]
    again = evaluate(out, kb, gold)
    assert written == best["threshold"] and (again["f1"], again["predicted_links"]) == (best["f1"], best["links"])
