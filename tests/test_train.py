"""glinker train: config validation, the retriever, NER and linker tasks on tiny models, resume after SIGKILL.

Tiny random models (tests/tiny_models.py) and the bundled example KB keep these fast; they assert
that training runs, lowers its loss, writes a model the pipeline loads, and resumes; never quality.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from glinker import ConfigBuilder, DAGExecutor, ProcessorFactory
from glinker.errors import ConfigError
from glinker.train import load_train_config, train

from .tiny_models import tiny_bert, tiny_cross_encoder, tiny_gliner

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

ROOT = Path(__file__).resolve().parents[1]
ENTITIES = ROOT / "data" / "entities.jsonl"
TEXTS = ROOT / "data" / "texts.jsonl"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert", hidden=32)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """The example texts annotated with every KB label and alias found in them (type = the entity's type)."""
    names = []
    for line in ENTITIES.read_bytes().splitlines():
        row = orjson.loads(line)
        names += [(n, row["entity_id"], row["entity_type"]) for n in [row["label"], *row.get("aliases", [])]]
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    with open(path, "wb") as out:
        for i, line in enumerate(TEXTS.read_bytes().splitlines()):
            text = orjson.loads(line)["text"]
            mentions, taken = [], set()
            for name, eid, etype in sorted(names, key=lambda n: -len(n[0])):
                start = text.find(name)
                if start >= 0 and not taken & set(range(start, start + len(name))):
                    taken |= set(range(start, start + len(name)))
                    mentions.append({"start": start, "end": start + len(name), "entity_id": eid, "label": etype})
            split = "dev" if i % 4 == 3 else "train"
            out.write(orjson.dumps({"text": text, "split": split, "mentions": mentions}) + b"\n")
        out.write(b"{not json\n")
        out.write(orjson.dumps({"text": "Paris.", "split": "train", "mentions": [{"start": 3, "end": 99}]}) + b"\n")
    return path


def retriever_config(backbone: str, docs: Path | None = None, **training) -> dict:
    data = {"kb": str(ENTITIES)}
    if docs is not None:
        data.update(train_data=str(docs), val_data=str(docs))
    return {"task": "retriever", "model": {"model_name": backbone, "max_seq_length": 32}, "data": data,
            "training": {"per_device_train_batch_size": 16, "learning_rate": 1e-3, "eval_steps": 10,
                         "save_steps": 5, "mine_top_k": 5, "logging_steps": 1, **training}}


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(("patch", "named"), [
    ({"model": {"max_widht": 12}}, "model.max_widht"),
    ({"training": {"lerning_rate": 1e-5}}, "did you mean 'learning_rate'"),
    ({"data": {"fields": {"txt": "text"}}}, "data.fields.txt"),
    ({"peft": {"rank": 8}}, "peft.rank"),
    ({"task": "nerr"}, "task"),
    ({"data": {"train_data": "/nonexistent/docs.jsonl"}}, "data.train_data: file not found"),
    ({"data": {"train_data": str(TEXTS), "long_doc_chunking": {"max_words": 10, "stride": 20}}}, "stride"),
    ({"model": {"span_mode": "token-level"}}, "model.span_mode"),
    ({"data": {}}, "data.train_data is required"),
    ({"task": "linker", "data": {"kb": str(ENTITIES), "train_data": str(TEXTS)}}, "data.pipeline is required"),
    ({"task": "linker", "model": {"backend": "dense"}}, "model.backend"),
])
def test_every_config_error_names_its_key(patch, named):
    config = {"task": "ner", "model": {}, "data": {"train_data": str(TEXTS)}, "training": {}}
    for key, value in patch.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) and value else value
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_train_config(config)


@pytest.mark.parametrize("training", [{"push_to_hub": True}, {"report_to": ["wandb"]}, {"hub_token": "x"},
                                      {"report_to": "wandb"}, {"hub_model_id": "me/model"}])
def test_network_only_keys_are_refused_offline(training):
    with pytest.raises(ConfigError, match="network"):
        load_train_config({"task": "retriever", "data": {"kb": str(ENTITIES)}, "training": training})


def test_yaml_config_with_a_misspelt_key_names_file_and_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"task": "retriever", "data": {"kb": str(ENTITIES)}, "peft": {"enabeld": True}}))
    with pytest.raises(ConfigError, match=r"train\.yaml: peft\.enabeld"):
        load_train_config(path)


def test_output_folder_must_be_empty_unless_resumed(tmp_path, backbone):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        train(retriever_config(backbone), out=tmp_path)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(retriever_config(backbone), out=tmp_path, resume=True)
    assert (tmp_path / "x").read_text() == "keep me"


# --------------------------------------------------------------------------- retriever


def mnrl_loss(model_path: str, anchors: list[str], positives: list[str]) -> float:
    """MultipleNegativesRankingLoss (scale 20) of a batch: each anchor against every positive."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    a = model.encode(anchors, normalize_embeddings=True)
    p = model.encode(positives, normalize_embeddings=True)
    logits = 20 * a @ p.T
    logits -= logits.max(1, keepdims=True)
    return float(-np.mean(np.diag(logits) - np.log(np.exp(logits).sum(1))))


def test_retriever_lowers_its_loss_and_the_model_links(tmp_path, backbone, annotated):
    out = tmp_path / "run"
    summary = train(retriever_config(backbone, annotated), out=out, max_steps=20, quiet=True)
    rows = [orjson.loads(line) for line in ENTITIES.read_bytes().splitlines()]
    pairs = [(alias, r["label"]) for r in rows for alias in r.get("aliases", [])[:1]]
    before = mnrl_loss(backbone, *zip(*pairs, strict=True))
    after = mnrl_loss(summary["model"], *zip(*pairs, strict=True))
    assert after < before
    assert [h["step"] for h in summary["history"]] == [0, 10, 20]
    assert {"acc@1", "recall@30"} <= summary["history"][-1].keys()
    rejects = [orjson.loads(line) for line in (out / "rejects.jsonl").read_bytes().splitlines()]
    assert {(r["line"], r["field"]) for r in rejects} >= {(11, "<json>"), (12, "mentions[0]")}
    executor = ProcessorFactory.create_simple(model_name=summary["model"], entities=ENTITIES, threshold=0.0)
    (records,) = executor.execute({"texts": ["Paris is the capital of France."]}).get("l0_result").entities
    assert any(e.is_linked for e in records)


@pytest.mark.parametrize("held_out", [False, True])
def test_mention_weight_repeats_each_annotated_mention_among_the_anchors(tmp_path, annotated, held_out):
    from glinker.train.data import read_kb
    from glinker.train.retriever import anchors_and_dev
    from glinker.train.run import TrainRun

    def anchors(**training):
        config = retriever_config("unused", annotated, **training)
        if held_out:  # no val_data: the dev anchors are held out of the training ones
            del config["data"]["val_data"]
        run = TrainRun(load_train_config(config), tmp_path / "r")
        return anchors_and_dev(run, read_kb(run.config.data.kb, "{label}", run.rejects), run.rejects)

    (once, dev), (thrice, dev_again) = anchors(), anchors(mention_weight=3)
    assert dev == dev_again and len(dev) == len(set(dev))
    mentions, odd = divmod(len(thrice) - len(once), 2)  # names, then the mentions once, then their copies
    assert mentions > 0 and not odd
    if not held_out:
        assert thrice == once + once[len(once) - mentions :] * 2
    with pytest.raises(ConfigError, match="training.mention_weight"):
        anchors(mention_weight=0.5)


@pytest.mark.parametrize("skip", [False, True])
def test_mined_negatives_skip_ancestors_and_descendants_when_asked(tmp_path, monkeypatch, skip):
    from glinker.train.retriever import Retriever
    from glinker.train.run import TrainRun

    kb = tmp_path / "kb.jsonl"
    rows = [("D", "Diseases", []), ("N", "Neoplasms", ["D"]), ("B", "Breast Neoplasms", ["N"]), ("L", "Lung Neoplasms", ["N"])]
    kb.write_bytes(b"".join(orjson.dumps({"entity_id": i, "label": label, "aliases": [f"{label} (syn)"],
                                          "parent_ids": parents}) + b"\n" for i, label, parents in rows))
    config = retriever_config("unused", skip_related_negatives=skip, negative_pool=1)
    config["data"]["kb"] = str(kb)
    retriever = Retriever(TrainRun(load_train_config(config), tmp_path / "r"))
    nearest = np.array([1, 0, 3, 2])  # every anchor's nearest labels: Neoplasms, Diseases, Lung, Breast
    monkeypatch.setattr(Retriever, "nearest", lambda self, model, texts, k: np.tile(nearest, (len(texts), 1)))
    negatives = {(row["anchor"].split(" (")[0], row["negative"]) for row in retriever.mine(None, 0)}
    leaves = {pair for pair in negatives if pair[0] in ("Breast Neoplasms", "Lung Neoplasms")}
    if skip:  # the sibling, never the parent; an entity related to every other keeps the nearest
        assert leaves == {("Breast Neoplasms", "Lung Neoplasms"), ("Lung Neoplasms", "Breast Neoplasms")}
        assert {pair for pair in negatives if pair[0] == "Neoplasms"} == {("Neoplasms", "Diseases")}
    else:
        assert leaves == {("Breast Neoplasms", "Neoplasms"), ("Lung Neoplasms", "Neoplasms")}


def test_retriever_is_deterministic_with_a_seed(tmp_path, backbone):
    runs = [train(retriever_config(backbone, seed=7), out=tmp_path / str(i), max_steps=10, quiet=True)
            for i in range(2)]
    assert runs[0]["history"] == runs[1]["history"]


# --------------------------------------------------------------------------- ner


@pytest.mark.parametrize("bi_encoder", [True, False])
def test_ner_trains_and_loads_in_l1_gliner(tmp_path, backbone, annotated, bi_encoder):
    start = tiny_gliner(tmp_path / "start", backbone, bi_encoder=bi_encoder, max_width=6)
    config = {"task": "ner", "model": {"from_pretrained": start, "threshold": 0.3},
              "data": {"train_data": str(annotated), "val_data": str(annotated),
                       "long_doc_chunking": {"max_words": 12, "stride": 8}},
              "training": {"per_device_train_batch_size": 4, "learning_rate": 5e-3, "others_lr": 5e-3,
                           "eval_steps": 6, "logging_steps": 1}}
    summary = train(config, out=tmp_path / "run", max_steps=12, quiet=True)
    log = orjson.loads((Path(summary["best"]["checkpoint"]).parent / "checkpoint-12" / "trainer_state.json")
                       .read_bytes())["log_history"]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert [h["step"] for h in summary["history"]] == [6, 12]
    builder = ConfigBuilder(name="trained")
    builder.l1.gliner(model=summary["model"], labels=summary["best"]["labels"], threshold=0.0)
    builder.l3.configure(model=summary["model"], threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(ENTITIES)
    (records,) = executor.execute({"texts": ["Paris is the capital of France."]}).get("l0_result").entities
    assert records and all(0 <= e.mention_start < e.mention_end <= 31 for e in records)


# --------------------------------------------------------------------------- linker


def linker_config(tmp_path: Path, docs: Path) -> dict:
    """A cross-encoder linker task over a name-matching pipeline (fuzzy, so mentions get wrong candidates too)."""
    builder = ConfigBuilder(name="candidates")
    builder.l2.add("dict", priority=1, search_mode=["exact", "fuzzy"], fuzzy={"min_similarity": 0.3})
    builder.l3.configure(model=tiny_cross_encoder(tmp_path / "pipeline-ce"), backend="cross_encoder", threshold=0.0)
    pipeline = builder.save(tmp_path / "pipeline.yaml")
    return {"task": "linker", "model": {"model_name": tiny_bert(tmp_path / "start", hidden=32), "max_length": 64},
            "data": {"pipeline": str(pipeline), "kb": str(ENTITIES), "train_data": str(docs), "val_data": str(docs)},
            "training": {"per_device_train_batch_size": 4, "learning_rate": 2e-3, "eval_steps": 6, "logging_steps": 1,
                         "negatives": 3}}


def logged_losses(out: Path, step: int) -> list[float]:
    state = out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json"
    return [entry["loss"] for entry in orjson.loads(state.read_bytes())["log_history"] if "loss" in entry]


def link_with(model: str, backend: str, mentions: list[dict]) -> tuple[list, list]:
    """L3 links and L2 candidate groups of the given mentions of one sentence, ``model`` as L3 ``backend``."""
    builder = ConfigBuilder(name="trained")
    builder.l2.add("dict", priority=1, search_mode=["exact", "fuzzy"], fuzzy={"min_similarity": 0.3})
    builder.l3.configure(model=model, backend=backend, threshold=0.0)
    executor = DAGExecutor(builder.build())
    executor.load_entities(ENTITIES)
    context = executor.execute({"texts": ["Paris is the capital of France."], "entities": [mentions]})
    (links,) = context.get("l3_result").entities
    (groups,) = context.get("l2_result").candidates
    return links, groups


def test_linker_trains_and_links_as_the_l3_cross_encoder(tmp_path, annotated):
    summary = train(linker_config(tmp_path, annotated), out=tmp_path / "run", max_steps=24, quiet=True)
    losses = logged_losses(tmp_path / "run", 24)
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert [h["step"] for h in summary["history"]] == [6, 12, 18, 24]
    assert {"eval_acc@1", "eval_ceiling", "eval_pipeline_acc@1"} <= summary["history"][-1].keys()
    links, groups = link_with(summary["model"], "cross_encoder", [{"start": 0, "end": 5}])
    assert links[0].entity_id in {c.entity_id for c in groups[0].candidates}


@pytest.mark.parametrize("bi_encoder", [True, False])
def test_gliner_linker_trains_and_links_as_the_l3_gliner_backend(tmp_path, backbone, annotated, bi_encoder):
    config = linker_config(tmp_path, annotated)
    config["model"] = {"backend": "gliner", "context_words": 10,
                       "from_pretrained": tiny_gliner(tmp_path / "start", backbone, bi_encoder=bi_encoder)}
    config["training"].update(learning_rate=5e-3, others_lr=5e-3)
    summary = train(config, out=tmp_path / "run", max_steps=12, quiet=True)
    losses = logged_losses(tmp_path / "run", 12)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert [h["step"] for h in summary["history"]] == [6, 12]
    assert {"eval_acc@1", "eval_ceiling", "eval_pipeline_acc@1"} <= summary["history"][-1].keys()
    links, groups = link_with(summary["model"], "gliner", [{"start": 0, "end": 5}, {"start": 24, "end": 30}])
    assert len(links) == 2
    for link, group in zip(links, groups, strict=True):
        assert link.entity_id in {c.entity_id for c in group.candidates}


def test_gliner_linker_section_names_a_misspelt_key():
    config = {"task": "linker", "model": {"backend": "gliner", "max_widht": 12, "context_chars": 100},
              "data": {"kb": str(ENTITIES), "pipeline": str(ENTITIES), "train_data": str(TEXTS)}}
    with pytest.raises(ConfigError, match=r"model\.max_widht: Extra inputs.*model\.context_chars: Extra inputs"):
        load_train_config(config)
    config["model"] = {"backend": "cross_encoder", "max_width": 12}
    with pytest.raises(ConfigError, match=r"model\.max_width: Extra inputs"):
        load_train_config(config)


def test_linker_rows_put_the_gold_first_and_never_among_its_negatives():
    from glinker.train.data import Doc
    from glinker.train.linker import Group, label_sets, training_rows

    doc = Doc("docs.jsonl", 1, "Paris is far from Atlantis", [])
    groups = [Group(doc, 0, 5, ["Paris (Texas)", "Paris", "Paris (Texas)"], np.ones(3), 1, "Paris", False),
              Group(doc, 18, 26, ["Atlas"], np.ones(1), -1, "Atlantis", False)]
    labels = label_sets(groups, negatives=2, random_text=lambda rng: f"random {rng.random():.3f}", seed=0)
    rows = training_rows(groups, labels, context_chars=100)
    assert [r["query"] for r in rows] == ["[Paris] is far from Atlantis", "Paris is far from [Atlantis]"]
    assert [r["texts"][0] for r in rows] == ["Paris", "Atlantis"]
    assert rows[0]["texts"][1] == "Paris (Texas)" and rows[0]["texts"][2].startswith("random")
    assert rows[1]["texts"][1] == "Atlas" and all(len(r["texts"]) == 3 for r in rows)


def test_gliner_linker_rows_label_the_mention_with_its_gold_among_shuffled_candidates():
    from glinker.train.data import Doc, Rejects
    from glinker.train.linker import Group, gliner_rows

    doc = Doc("docs.jsonl", 3, "Far away, Paris meets Paris and Atlantis-like towns.", [])
    texts = [["Paris: France", "Paris: Texas", "Parma: Italy"], ["Paris: France", "Paris: Texas", "Parma: Italy"],
             ["Atlantis: myth", "Atlas: titan", "Paris: France"]]
    groups = [Group(doc, 10, 15, texts[0][:2], np.ones(2), 0, "Paris: France", False),
              Group(doc, 22, 27, texts[1][:2], np.ones(2), 0, "Paris: France", False),
              Group(doc, 32, 40, texts[2][:2], np.ones(2), 0, "Atlantis: myth", False)]  # "Atlantis" of "Atlantis-like"
    rejects = Rejects(None)
    rows = gliner_rows(groups, texts, max_width=12, context_words=2, rejects=rejects, seed=0)
    assert len(rows) == 2 and [r.line for r in rejects.rows] == [3] and "'Atlantis'" in rejects.rows[0].reason
    assert rows[0]["tokenized_text"] == ["away", ",", "Paris", "meets", "Paris"]
    assert rows[0]["ner"] == [[2, 2, "Paris: France"], [4, 4, "Paris: France"]]  # the same entity there too
    assert rows[1]["tokenized_text"] == ["Paris", "meets", "Paris", "and", "Atlantis-like"]
    for row, labels in zip(rows, texts, strict=False):
        assert sorted(row["ner_labels"]) == sorted(labels) and row["ner_negatives"] == labels[1:]


def test_the_cross_encoder_reads_the_mention_marked_in_its_context():
    from glinker.linking.inputs import context_window, marked_context

    text = "The capital, Paris, is large."
    assert marked_context(text, 13, 18, 100) == "The capital, [Paris], is large."
    assert context_window(text, 13, 18, 100) == text


# --------------------------------------------------------------------------- resume


def test_resume_after_sigkill_continues_at_the_checkpoint_step(tmp_path, backbone):
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(retriever_config(backbone, eval_steps=40, save_steps=5, learning_rate=1e-4)))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "glinker.cli", "train", str(config), "--out", str(out), "--max-steps", "40",
               "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    checkpoint = out / "rounds" / "0000" / "checkpoint-10" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "no checkpoint before the kill"
    done = subprocess.run([*command, "--resume"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = orjson.loads((out / "summary.json").read_bytes())
    resumed = summary["resumed"]
    assert resumed and resumed[0]["round"] == 0 and resumed[0]["step"] >= 10
    assert [h["step"] for h in summary["history"]] == [0, 40]


def test_a_second_run_on_the_same_output_fails_naming_the_holder(tmp_path, backbone):
    from glinker.locks import LockedError, exclusive

    out = tmp_path / "run"
    with exclusive(out, what="glinker train"), pytest.raises(LockedError, match=str(os.getpid())):
        train(retriever_config(backbone), out=out, max_steps=1, quiet=True)
    assert not out.exists()


def test_a_list_of_splits_reads_the_documents_of_each(annotated):
    from glinker.train.config import DataSection
    from glinker.train.data import Rejects, read_docs

    data = DataSection()
    train, dev = (read_docs(annotated, split, data, Rejects(None)) for split in ("train", "dev"))
    both = read_docs(annotated, ["train", "dev"], data, Rejects(None))
    assert len(train) and len(dev)
    assert sorted(d.text for d in both) == sorted(d.text for d in train + dev)
    with pytest.raises(ConfigError, match="train_split"):
        load_train_config({"task": "ner", "data": {"train_data": str(annotated), "train_split": []}})


# --------------------------------------------------------------------------- priors


def with_priors(tmp_path: Path, l2_priors: str | None = None, **l3) -> tuple[list, list]:
    """L3 links and L2 candidate groups of "Paris" and "France" in one sentence: L2 exact names (or, with
    ``l2_priors``, a ``priors`` layer alone), a tiny cross-encoder as the L3 model."""
    builder = ConfigBuilder(name="priors")
    if l2_priors is None:
        builder.l2.add("dict", priority=1, search_mode=["exact"])
    else:
        builder.l2.add("priors", priority=2, priors=l2_priors or None)
    builder.l3.configure(model=tiny_cross_encoder(tmp_path / "ce"), backend="cross_encoder", threshold=0.0, **l3)
    executor = DAGExecutor(builder.build())
    executor.load_entities(ENTITIES)
    mentions = [{"start": 0, "end": 5}, {"start": 24, "end": 30}]
    context = executor.execute({"texts": ["Paris is the capital of France."], "entities": [mentions]})
    return context.get("l3_result").entities[0], context.get("l2_result").candidates[0]


def test_priors_count_annotations_reject_unknown_ids_and_steer_l2_and_l3(tmp_path):
    from glinker.linking.priors import MentionPriors

    def doc(text: str, eid: str, split: str = "train") -> bytes:
        return orjson.dumps({"text": text, "split": split, "mentions": [{"start": 0, "end": 5, "entity_id": eid}]})

    rows = [doc("Paris is far.", "Q830149")] * 3 + [doc("PARIS!", "Q90"), doc("Paris.", "Q404"), doc("Paris.", "Q90", "dev")]
    (tmp_path / "docs.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    config = {"task": "priors", "model": {}, "data": {"kb": str(ENTITIES), "train_data": str(tmp_path / "docs.jsonl")}}
    summary = train(config, out=tmp_path / "run", quiet=True)
    priors = MentionPriors.load(summary["model"])
    assert priors.surfaces == {"paris": {"Q830149": 3, "Q90": 1}}  # one normalised surface; dev not counted
    assert priors.shares("Paris") == {"Q830149": 0.75, "Q90": 0.25} and priors.shares("Paris", min_count=5) is None
    rejects = [orjson.loads(line) for line in (tmp_path / "run" / "rejects.jsonl").read_bytes().splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(5, "entity_id")] and "Q404" in rejects[0]["reason"]
    plain, _ = with_priors(tmp_path)
    steered, _ = with_priors(tmp_path, priors=summary["model"], prior_weight=1.0)
    assert steered[0].entity_id == "Q830149" and steered[0].class_probs == {"Q90": 0.25, "Q830149": 0.75, "Q167646": 0.0}
    assert steered[1].class_probs == plain[1].class_probs  # "France" has no prior: its scores are the model's
    _, groups = with_priors(tmp_path, l2_priors=summary["model"])
    assert [[(c.entity_id, c.score) for c in g.candidates] for g in groups] == [[("Q830149", 0.75), ("Q90", 0.25)], []]
    with pytest.raises(ConfigError, match="type 'priors' needs 'priors'"):
        with_priors(tmp_path, l2_priors="")
    with pytest.raises(ConfigError, match="task 'priors'.*no training keys"):
        load_train_config({**config, "training": {"max_steps": 3}})
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="bad.json: not a glinker-mention-priors file"):
        with_priors(tmp_path, priors=str(tmp_path / "bad.json"))
