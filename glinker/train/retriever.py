"""``task: retriever``: adapt the sentence encoder to a KB with mined hard negatives.

Training runs in rounds of ``eval_steps`` steps. Each round encodes every entity label with the
current model, samples anchors (KB names, and gold mentions when annotated documents are given),
takes for each anchor a wrong entity among its nearest labels as the hard negative, and trains
``MultipleNegativesRankingLoss`` (in-batch negatives plus the mined one) with sentence-transformers'
trainer. Between rounds the dev set is scored (acc@1, recall@k against the KB labels); the best
round's model is the output. Each round's data and checkpoints stay in ``rounds/N`` so ``--resume``
continues at the last checkpoint's step.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..atomic import replace_bytes
from ..errors import ConfigError, KnowledgeBaseError
from .data import KBEntity, Rejects, gold_mentions, read_docs, read_kb
from .run import TrainRun

KS = (1, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class Anchor:
    text: str
    entity: int  # index into the entity list


def anchors_and_dev(run: TrainRun, entities: list[KBEntity], rejects: Rejects) -> tuple[list[Anchor], list[Anchor]]:
    """Training anchors (KB names of entities with more than one name, gold train mentions, each
    ``mention_weight`` times) and dev anchors (held out before the mentions are repeated)."""
    weight = run.options["mention_weight"]
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ConfigError(f"training.mention_weight: {weight!r}; expected a whole number of 1 or more")
    data, where = run.config.data, {e.entity_id: i for i, e in enumerate(entities)}
    pool = [(Anchor(name, i), False) for i, e in enumerate(entities) if len(e.names) > 1 for name in e.names]
    if data.train_data is not None:
        docs = read_docs(data.train_data, data.train_split, data, rejects, data.max_docs)
        pool += [(anchor, True) for anchor in _linked(gold_mentions(docs), where)]
    dev: list[Anchor] = []
    if data.val_data is not None:
        docs = read_docs(data.val_data, data.val_split, data, rejects, data.val_max_docs)
        dev = list(dict.fromkeys(_linked(gold_mentions(docs), where)))
    else:  # hold out KB names and mentions: up to 1000, and at most a fifth
        random.Random(run.seed).shuffle(pool)
        held = min(1000, len(pool) // 5)
        dev, pool = list(dict.fromkeys(a for a, _ in pool[:held])), pool[held:]
    if not pool:
        raise KnowledgeBaseError(f"{data.kb}: nothing to train on: no entity has two or more names and no annotated "
                                 "mention links to the KB (data.train_data)")
    train = [a for a, _ in pool] + [a for a, mention in pool if mention] * (weight - 1)
    random.Random(run.seed + 1).shuffle(dev)
    return train, dev[: run.options["eval_max_mentions"]]


def _linked(pairs, where: dict[str, int]) -> list[Anchor]:
    return [Anchor(text, where[eid]) for text, eid in pairs if eid in where]


class Retriever:
    def __init__(self, run: TrainRun):
        self.run = run
        rejects = run.rejects
        self.model_cfg = run.config.model_section()
        self.entities = read_kb(run.config.data.kb, self.model_cfg.template, rejects)
        self.train, self.dev = anchors_and_dev(run, self.entities, rejects)
        rejects.flush()
        self.labels = [e.names[0] for e in self.entities]
        self.ancestors = ancestors(self.entities) if run.options["skip_related_negatives"] else None
        self.batch = int(run.args.get("per_device_train_batch_size", 64))
        self.steps_per_round = int(run.args.get("eval_steps") or 200)
        self.label_vectors: np.ndarray | None = None  # of the current weights; reset when they change

    def total_steps(self) -> int:
        if self.run.max_steps:
            return self.run.max_steps
        epochs = float(self.run.args.get("num_train_epochs", 1))
        return max(1, math.ceil(epochs * len(self.train) / self.batch))

    # ------------------------------------------------------------------ rounds

    def fit(self) -> dict[str, Any]:
        from sentence_transformers import SentenceTransformer

        run = self.run
        state = run.load_state()
        start = run.latest_model() or self.model_cfg.model_name
        model = SentenceTransformer(run.resolve(start), device=run.device)
        model.max_seq_length = self.model_cfg.max_seq_length
        model[0].model = run.with_lora(model[0].model)
        rounds = math.ceil(self.total_steps() / self.steps_per_round)
        if state["round"] == 0 and not state["history"]:
            state["history"].append({"step": 0, **self.evaluate(model)})
            run.report(state["history"][-1])
        while state["round"] < rounds:
            self.train_round(model, state, rounds)
            state["round"] += 1
            metrics = {"step": min(state["round"] * self.steps_per_round, self.total_steps()), **self.evaluate(model)}
            state["history"].append(metrics)
            run.report(metrics)
            run.save_round(plain(model), state, better=self.better(metrics, state))
        best = run.out / ("best" if (run.out / "best").exists() else "last")
        return run.finish(state["best"], state["history"], lambda path: shutil.copytree(best, path),
                          state.get("resumed", []))

    def better(self, metrics: dict[str, Any], state: dict[str, Any]) -> bool:
        key = (metrics["acc@1"], metrics[f"recall@{KS[-1]}"])
        if state["best"] is None or key > tuple(state["best"]["key"]):
            state["best"] = {"key": list(key), "step": metrics["step"]}
            return True
        return False

    def train_round(self, model, state: dict[str, Any], rounds: int) -> None:
        """Mine negatives with the current model (or reuse the saved round data) and train one round."""
        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer
        from sentence_transformers.losses import MultipleNegativesRankingLoss

        number = state["round"]
        folder = self.run.round_dir(number)
        data_file = folder / "train.jsonl"
        if not data_file.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            rows = self.mine(model, number)
            replace_bytes(data_file, b"".join(orjson.dumps(r) + b"\n" for r in rows))
        rows = [orjson.loads(line) for line in data_file.read_bytes().splitlines()]
        dataset = Dataset.from_list(rows)
        steps = min(self.steps_per_round, self.total_steps() - number * self.steps_per_round)
        args = self.run.training_arguments(folder, steps, first_round=number == 0, own_evaluation=True,
                                           per_device_train_batch_size=self.batch)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                            loss=MultipleNegativesRankingLoss(model))
        checkpoint, step = self.run.last_checkpoint(folder)
        if checkpoint:
            state.setdefault("resumed", []).append({"round": number, "step": number * self.steps_per_round + step})
        self.run.describe(f"round {number + 1}/{rounds}: {len(rows)} mined triplets"
                          + (f", resuming at step {step}" if checkpoint else ""))
        self.label_vectors = None
        trainer.train(resume_from_checkpoint=checkpoint)

    def mine(self, model, number: int) -> list[dict[str, str]]:
        """``{anchor, positive, negative}`` rows: a wrong entity among the anchor's nearest labels is the negative."""
        rng = random.Random(self.run.seed * 1000 + number)
        need = self.steps_per_round * self.batch
        anchors = [self.train[rng.randrange(len(self.train))] for _ in range(need)]
        top = self.nearest(model, [a.text for a in anchors], self.run.options["mine_top_k"] + 1)
        rows = []
        for anchor, near in zip(anchors, top, strict=True):
            entity = self.entities[anchor.entity]
            others = [int(j) for j in near if j != anchor.entity]
            unrelated = [j for j in others if not self.related(anchor.entity, j)]
            wrong = (unrelated or others)[: max(1, self.run.options["negative_pool"])]  # or related to all it is near
            negative = self.entities[rng.choice(wrong)]
            use_text = rng.random() < 0.5  # half the positives are the entity text the dense L3 compares with
            positives = [n for n in entity.names if n != anchor.text] or entity.names
            rows.append({
                "anchor": anchor.text,
                "positive": entity.text if use_text else rng.choice(positives),
                "negative": negative.text if use_text else negative.names[0],
            })
        return rows

    def related(self, a: int, b: int) -> bool:
        """With ``skip_related_negatives``: whether one entity is an ancestor of the other (a parent is a
        coarser link of the same thing, not a wrong one)."""
        return self.ancestors is not None and (b in self.ancestors[a] or a in self.ancestors[b])

    def nearest(self, model, texts: list[str], k: int) -> np.ndarray:
        """Indices of the ``k`` entities whose label is nearest to each text (cosine), best first."""
        if self.label_vectors is None:
            self.label_vectors = self._encode(model, self.labels)
        labels = self.label_vectors
        queries = self._encode(model, texts)
        k = min(k, len(self.labels))
        out = np.empty((len(texts), k), dtype=np.int64)
        for lo in range(0, len(texts), 4096):
            scores = queries[lo:lo + 4096] @ labels.T
            part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.take_along_axis(scores, part, 1).argsort(axis=1)[:, ::-1]
            out[lo:lo + 4096] = np.take_along_axis(part, order, 1)
        return out

    def _encode(self, model, texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=256, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=self.run.progress)

    def evaluate(self, model) -> dict[str, Any]:
        """Dev acc@1 and recall@k of the gold entity among the nearest KB labels."""
        if not self.dev:
            return {}
        top = self.nearest(model, [a.text for a in self.dev], KS[-1])
        gold = np.array([a.entity for a in self.dev])[:, None]
        hits = top == gold
        metrics = {"acc@1": round(float(hits[:, 0].mean()), 4)}
        metrics.update({f"recall@{k}": round(float(hits[:, :k].any(1).mean()), 4) for k in KS})
        return metrics


def ancestors(entities: list[KBEntity]) -> list[frozenset[int]]:
    """Each entity's ancestors (indices), through the parents the KB lists; cycles are cut."""
    where = {e.entity_id: i for i, e in enumerate(entities)}
    parents = [[where[p] for p in e.parents if p in where] for e in entities]

    def walk(start: int) -> frozenset[int]:
        seen, stack = set(), list(parents[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(parents[node])
        seen.discard(start)
        return frozenset(seen)

    return [walk(i) for i in range(len(entities))]


def plain(model):
    """The sentence encoder with its LoRA adapters (if any) merged: a folder ``AutoModel`` loads as it is."""
    if not hasattr(model[0].model, "merge_and_unload"):
        return model
    import copy

    model = copy.deepcopy(model)
    model[0].model = model[0].model.merge_and_unload()
    return model


def train_retriever(run: TrainRun) -> dict[str, Any]:
    return Retriever(run).fit()
