"""``task: linker``: fine-tune a cross-encoder to pick the gold entity among the pipeline's candidates.

Every gold mention of the annotated documents goes through the pipeline's own L2 (``data.pipeline``
over ``data.kb``, the gold spans given as mentions), so the model learns on the candidates it will
see. A training row is the mention marked in its context (``linking.inputs.marked_context``), its
gold entity and the ``negatives`` best-ranked wrong candidates (random KB entities when L2 gives
fewer), each rendered with ``model.template``. The loss is listwise (softmax cross-entropy of the
gold against its negatives) plus ``pointwise_weight`` x binary cross-entropy, so that the sigmoid of
a score can be compared with L3's threshold. Every ``eval_steps`` the dev mentions are scored
against all their candidates (acc@1, and acc@1 with the L2 score mixed in, beside the pipeline's own
L3 on the same mentions); the best checkpoint is the output, a folder ``backend: cross_encoder``
loads by path.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import read_docs
from .run import TrainRun, merged

DOC_BATCH = 32
MIX_WEIGHTS = (0.25, 0.5, 0.75)


@dataclass(slots=True)
class Group:
    """A gold mention with its L2 candidates."""

    query: str  # the mention marked in its context
    texts: list[str]  # its candidates rendered with the template, in L2 order
    retrieval: np.ndarray  # their L2 scores
    gold: int  # the gold entity's position among ``texts``; -1 when L2 missed it
    gold_text: str
    baseline: bool  # the pipeline's own L3 linked the mention to the gold entity


def mention_groups(run: TrainRun, linker, path, split: str | None, max_docs: int | None) -> list[Group]:
    """One group per gold mention (linked to a KB entity) of the documents of ``split``."""
    from tqdm.auto import tqdm

    from ..jobs.pipeline import output_key
    from ..types import L3Output

    data = run.config.data
    docs = [d for d in read_docs(path, split, data, run.rejects, max_docs) if d.spans]
    l3_key = output_key(linker.pipeline, L3Output)
    groups: list[Group] = []
    for lo in tqdm(range(0, len(docs), DOC_BATCH), desc=f"candidates ({split or path})", disable=not run.progress):
        batch = docs[lo : lo + DOC_BATCH]
        context = linker.run([d.text for d in batch], [[{"start": s.start, "end": s.end} for s in d.spans]
                                                      for d in batch])
        links = context.get(l3_key).entities if l3_key else [[] for _ in batch]
        for doc, per_text, per_links in zip(batch, context.get(linker.l2_key).candidates, links, strict=True):
            linked = {(e.start, e.end): e.entity_id for e in per_links}
            gold_of = {(s.start, s.end): s.entity_id for s in doc.spans if s.entity_id}
            for g in per_text:
                span = (g.mention.start, g.mention.end)
                if span in gold_of and (group := _group(run, linker, doc.text, g, gold_of[span])) is not None:
                    group.baseline = linked.get(span) == gold_of[span]
                    groups.append(group)
    return groups


def _group(run: TrainRun, linker, text: str, g, gold_id: str) -> Group | None:
    """The group of one mention; None when its gold entity is not in the KB."""
    from ..linking.inputs import candidate_text, marked_context

    section = run.config.model_section()
    store = linker.executor.kb.store
    row = int(store.rows_of([gold_id])[0])
    if row < 0:
        return None
    ids = [c.entity_id for c in g.candidates]
    return Group(query=marked_context(text, g.mention.start, g.mention.end, section.context_chars),
                 texts=[candidate_text(c, section.template) for c in g.candidates],
                 retrieval=np.array([c.score for c in g.candidates], dtype=np.float32),
                 gold=ids.index(gold_id) if gold_id in ids else -1,
                 gold_text=store.render([row], section.template)[0], baseline=False)


def training_rows(groups: list[Group], negatives: int, random_text, seed: int) -> list[dict[str, Any]]:
    """``{"query", "texts"}`` rows: the gold text first, then ``negatives`` wrong candidates."""
    rng = random.Random(seed)
    rows = []
    for g in groups:
        wrong = list(dict.fromkeys(t for i, t in enumerate(g.texts) if i != g.gold and t != g.gold_text))[:negatives]
        while len(wrong) < negatives:
            wrong.append(random_text(rng))
        rows.append({"query": g.query, "texts": [g.gold_text, *wrong]})
    return rows


class PairCollator:
    """Rows of one query and its texts -> the tokenized (query, text) pairs, row after row."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        pairs = [(r["query"], t) for r in rows for t in r["texts"]]
        return dict(self.pairs(pairs), group_size=len(rows[0]["texts"]))

    def pairs(self, pairs: list[tuple[str, str]]):
        # the same tokenization as glinker.models.base.TransformersModel.tokenize at inference
        return self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")


def listwise_loss(logits, group_size: int, pointwise_weight: float):
    """Softmax cross-entropy of the gold (first of each group) + ``pointwise_weight`` x binary cross-entropy."""
    import torch
    import torch.nn.functional as F

    scores = logits.float().view(-1, group_size)
    gold = torch.zeros(len(scores), dtype=torch.long, device=scores.device)
    loss = F.cross_entropy(scores, gold)
    if pointwise_weight:
        targets = F.one_hot(gold, group_size).float()
        loss = loss + pointwise_weight * F.binary_cross_entropy_with_logits(scores, targets)
    return loss


def score_groups(model, collator: PairCollator, groups: list[Group], batch_size: int) -> list[np.ndarray]:
    """The model's sigmoid score of every candidate of every group (pairs sorted by length, batched)."""
    import torch

    pairs = [(g.query, t) for g in groups for t in g.texts]
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    flat = np.zeros(len(pairs), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            batch = collator.pairs([pairs[i] for i in idx]).to(model.device)
            flat[idx] = torch.sigmoid(model(**batch).logits[:, 0].float()).cpu().numpy()
    model.train()
    bounds = np.cumsum([0] + [len(g.texts) for g in groups])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(groups))]


def dev_metrics(groups: list[Group], scores: list[np.ndarray]) -> dict[str, float]:
    """acc@1 of the model alone and mixed with the L2 score, the candidate ceiling, the pipeline's own L3."""
    n = max(1, len(groups))

    def accuracy(weight: float) -> float:
        hits = sum(g.gold >= 0 and int(np.argmax(weight * g.retrieval + (1 - weight) * s)) == g.gold
                   for g, s in zip(groups, scores, strict=True) if len(s))
        return round(hits / n, 4)

    metrics = {"acc@1": accuracy(0.0)}
    metrics.update({f"acc@1_mix{w}": accuracy(w) for w in MIX_WEIGHTS})
    metrics["pipeline_acc@1"] = round(sum(g.baseline for g in groups) / n, 4)
    metrics["ceiling"] = round(sum(g.gold >= 0 for g in groups) / n, 4)
    return metrics


def listwise_trainer(base):
    """The transformers Trainer with the listwise loss and an ``evaluate`` that scores the dev groups."""

    class ListwiseTrainer(base):
        def __init__(self, *args, dev: list[Group], pointwise_weight: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.dev, self.pointwise_weight = dev, pointwise_weight

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            group_size = inputs.pop("group_size")
            outputs = model(**inputs)
            loss = listwise_loss(outputs.logits, group_size, self.pointwise_weight)
            return (loss, outputs) if return_outputs else loss

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
            scores = score_groups(self.model, self.data_collator, self.dev, self.args.per_device_eval_batch_size)
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in dev_metrics(self.dev, scores).items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return ListwiseTrainer


def build_cross_encoder(run: TrainRun):
    """The model to fine-tune (one output logit) and its tokenizer, from a local folder or packaged copy."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging

    path = run.resolve(run.config.model_section().model_name)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "newly initialized classifier" is expected for an encoder
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, ignore_mismatched_sizes=True)
    finally:
        logging.set_verbosity(verbosity)
    model.config.id2label, model.config.label2id = {0: "relevant"}, {"relevant": 0}
    return model, AutoTokenizer.from_pretrained(path)


def train_linker(run: TrainRun) -> dict[str, Any]:
    from transformers import Trainer

    from ..jobs.pipeline import Linker, linking_only, load_pipeline

    data, section, options = run.config.data, run.config.model_section(), run.options
    linker = Linker(linking_only(load_pipeline(str(data.pipeline))), data.kb)
    train = mention_groups(run, linker, data.train_data, data.train_split, data.max_docs)
    dev = mention_groups(run, linker, data.val_data, data.val_split, data.val_max_docs) if data.val_data else []
    dev = random.Random(run.seed).sample(dev, min(len(dev), int(options["eval_max_mentions"])))
    run.rejects.flush()
    store = linker.executor.kb.store
    rows = training_rows(train, int(options["negatives"]),
                         lambda rng: store.render([rng.randrange(len(store))], section.template)[0], run.seed)
    model, tokenizer = build_cross_encoder(run)
    model = run.with_lora(model, trainable=["classifier", "score"])
    steps = run.max_steps or run.epoch_steps(len(rows))
    eval_steps = int(run.args.get("eval_steps") or 100)
    extra = {"eval_strategy": "steps", "eval_steps": eval_steps, "save_steps": eval_steps, "greater_is_better": True,
             "metric_for_best_model": "acc@1", "load_best_model_at_end": True} if dev else {}
    args = run.training_arguments(run.out / "checkpoints", steps, remove_unused_columns=False, **extra)
    run.describe(f"linker: {len(rows)} train mentions, {len(dev)} dev mentions, {steps} steps")
    trainer = listwise_trainer(Trainer)(
        model=model, args=args, train_dataset=rows, eval_dataset=rows[:1] if dev else None,
        data_collator=PairCollator(tokenizer, section.max_length), processing_class=tokenizer, dev=dev,
        pointwise_weight=float(options["pointwise_weight"]))
    checkpoint, step = run.last_checkpoint(run.out / "checkpoints") if run.resume else (None, 0)
    trainer.train(resume_from_checkpoint=checkpoint)
    model = merged(trainer.model)
    history = [{k: v for k, v in log.items() if k == "step" or k.startswith("eval_")}
               for log in trainer.state.log_history if "eval_acc@1" in log]
    best = {"metric": "eval_acc@1", "value": trainer.state.best_metric,
            "checkpoint": trainer.state.best_model_checkpoint}

    def save(path) -> None:
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))

    return run.finish(best, history, save, [{"round": 0, "step": step}] if checkpoint else [])

