"""``task: linker``: fine-tune a linker to pick the gold entity among the pipeline's candidates.

Every gold mention of the annotated documents goes through the pipeline's own L2 (``data.pipeline``
over ``data.kb``, the gold spans given as mentions), so the model learns on the candidates it will
see: its gold entity and ``negatives`` wrong candidates, the best-ranked one and a random draw of the
others (random KB entities when L2 gives fewer), each rendered with ``model.template``. Two backends
(``model.backend``):

- ``cross_encoder`` (L3/L4 ``backend: cross_encoder``): a row is the mention marked in its context
  (``linking.inputs.marked_context``) and those texts. The loss is listwise (softmax cross-entropy of
  the gold against its negatives) plus ``pointwise_weight`` x binary cross-entropy, so that the
  sigmoid of a score can be compared with L3's threshold; the ``transformers`` Trainer trains it.
- ``gliner`` (L3/L4 ``backend: gliner``): a row is GLiNER's training format: the words within
  ``context_words`` of the mention, the mention as a span labelled with its gold text, and those
  texts as the row's labels; gliner's own Trainer trains it.

Every ``eval_steps`` the dev mentions are scored against all their candidates (acc@1, and acc@1 with
the L2 score mixed in, beside the pipeline's own L3 on the same mentions); the best checkpoint is the
output, a folder the L3/L4 backend loads by path.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.gliner import GlinerModel
from .data import Doc, Rejects, read_docs, word_spans
from .ner import apply_lora, build_gliner, evaluating_trainer, merge_lora
from .run import TrainRun, merged

DOC_BATCH = 32
MIX_WEIGHTS = (0.25, 0.5, 0.75)


@dataclass(slots=True)
class Group:
    """A gold mention with its L2 candidates."""

    doc: Doc
    start: int  # the mention's characters in ``doc.text``
    end: int
    texts: list[str]  # its candidates rendered with the template, in L2 order
    retrieval: np.ndarray  # their L2 scores
    gold: int  # the gold entity's position among ``texts``; -1 when L2 missed it
    gold_text: str
    baseline: bool  # the pipeline's own L3 linked the mention to the gold entity

    def query(self, context_chars: int) -> str:
        """The mention marked in its context, as a cross-encoder reads it."""
        from ..linking.inputs import marked_context

        return marked_context(self.doc.text, self.start, self.end, context_chars)


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
                if span in gold_of and (group := _group(run, linker, doc, g, gold_of[span])) is not None:
                    group.baseline = linked.get(span) == gold_of[span]
                    groups.append(group)
    return groups


def _group(run: TrainRun, linker, doc: Doc, g, gold_id: str) -> Group | None:
    """The group of one mention; None when its gold entity is not in the KB."""
    from ..linking.inputs import candidate_text

    template = run.config.model_section().template
    store = linker.executor.kb.store
    row = int(store.rows_of([gold_id])[0])
    if row < 0:
        return None
    ids = [c.entity_id for c in g.candidates]
    return Group(doc=doc, start=g.mention.start, end=g.mention.end,
                 texts=[candidate_text(c, template) for c in g.candidates],
                 retrieval=np.array([c.score for c in g.candidates], dtype=np.float32),
                 gold=ids.index(gold_id) if gold_id in ids else -1,
                 gold_text=store.render([row], template)[0], baseline=False)


def label_sets(groups: list[Group], negatives: int, random_text: Callable[[random.Random], str],
               seed: int) -> list[list[str]]:
    """Per group: the gold text first, then ``negatives`` distinct wrong candidates: the best-ranked one and
    a random draw from the others (hard negatives alone teach the model to prefer the candidates L2 ranks
    low), and ``random_text(rng)``, a random KB entity, when L2 gave fewer."""
    rng = random.Random(seed)
    out = []
    for g in groups:
        wrong = list(dict.fromkeys(t for i, t in enumerate(g.texts) if i != g.gold and t != g.gold_text))
        if len(wrong) > negatives:
            wrong = wrong[:1] + rng.sample(wrong[1:], negatives - 1) if negatives > 1 else wrong[:1]
        while len(wrong) < negatives:
            wrong.append(random_text(rng))
        out.append([g.gold_text, *wrong])
    return out


def link_metrics(groups: list[Group], scores: list[np.ndarray]) -> dict[str, float]:
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


def train_linker(run: TrainRun) -> dict[str, Any]:
    from ..jobs.pipeline import Linker, linking_only, load_pipeline

    data, options = run.config.data, run.options
    linker = Linker(linking_only(load_pipeline(str(data.pipeline))), data.kb)
    train = mention_groups(run, linker, data.train_data, data.train_split, data.max_docs)
    dev = mention_groups(run, linker, data.val_data, data.val_split, data.val_max_docs) if data.val_data else []
    dev = random.Random(run.seed).sample(dev, min(len(dev), int(options["eval_max_mentions"])))
    store, template = linker.executor.kb.store, run.config.model_section().template
    labels = label_sets(train, int(options["negatives"]),
                        lambda rng: store.render([rng.randrange(len(store))], template)[0], run.seed)
    backend = train_gliner_linker if run.config.model_section().backend == "gliner" else train_cross_encoder
    return backend(run, train, labels, dev)


def eval_arguments(run: TrainRun, dev: list[Group]) -> dict[str, Any]:
    """Training arguments that score the dev mentions every ``eval_steps`` and keep the best checkpoint."""
    if not dev:
        return {}
    eval_steps = int(run.args.get("eval_steps") or 100)
    return {"eval_strategy": "steps", "eval_steps": eval_steps, "save_steps": eval_steps, "greater_is_better": True,
            "metric_for_best_model": "acc@1", "load_best_model_at_end": True}


def fit(run: TrainRun, trainer) -> dict[str, Any]:
    """Train (from the last checkpoint with ``--resume``); the ``best``, ``history`` and ``resumed`` of the
    summary."""
    checkpoint, step = run.last_checkpoint(run.out / "checkpoints") if run.resume else (None, 0)
    trainer.train(resume_from_checkpoint=checkpoint)
    history = [{k: v for k, v in log.items() if k == "step" or k.startswith("eval_")}
               for log in trainer.state.log_history if "eval_acc@1" in log]
    best = {"metric": "eval_acc@1", "value": trainer.state.best_metric,
            "checkpoint": trainer.state.best_model_checkpoint}
    return {"best": best, "history": history, "resumed": [{"round": 0, "step": step}] if checkpoint else []}


# --------------------------------------------------------------------------- backend: cross_encoder


def training_rows(groups: list[Group], labels: list[list[str]], context_chars: int) -> list[dict[str, Any]]:
    """Cross-encoder rows ``{"query", "texts"}``: the marked mention and its label set (the gold text first)."""
    return [{"query": g.query(context_chars), "texts": texts} for g, texts in zip(groups, labels, strict=True)]


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


def score_groups(model, collator: PairCollator, groups: list[Group], context_chars: int,
                 batch_size: int) -> list[np.ndarray]:
    """The model's sigmoid score of every candidate of every group (pairs sorted by length, batched)."""
    import torch

    pairs = [(query, t) for g in groups for query in [g.query(context_chars)] for t in g.texts]
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    flat = np.zeros(len(pairs), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            batch = collator.pairs([pairs[i] for i in idx]).to(model.device)
            flat[idx] = torch.sigmoid(model(**batch).logits[:, 0].float()).cpu().numpy()
    bounds = np.cumsum([0] + [len(g.texts) for g in groups])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(groups))]


def listwise_trainer(base):
    """The transformers Trainer with the listwise loss; ``evaluate`` reports ``dev_metrics(model)``."""

    class ListwiseTrainer(evaluating_trainer(base)):
        def __init__(self, *args, pointwise_weight: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.pointwise_weight = pointwise_weight

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            group_size = inputs.pop("group_size")
            outputs = model(**inputs)
            loss = listwise_loss(outputs.logits, group_size, self.pointwise_weight)
            return (loss, outputs) if return_outputs else loss

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


def train_cross_encoder(run: TrainRun, train: list[Group], labels: list[list[str]], dev: list[Group]) -> dict[str, Any]:
    from transformers import Trainer

    section = run.config.model_section()
    rows = training_rows(train, labels, section.context_chars)
    run.rejects.flush()
    model, tokenizer = build_cross_encoder(run)
    model = run.with_lora(model, trainable=["classifier", "score"])
    steps = run.max_steps or run.epoch_steps(len(rows))
    args = run.training_arguments(run.out / "checkpoints", steps, remove_unused_columns=False,
                                  **eval_arguments(run, dev))
    run.describe(f"linker: {len(rows)} train mentions, {len(dev)} dev mentions, {steps} steps")
    collator = PairCollator(tokenizer, section.max_length)

    def dev_metrics(model) -> dict[str, float]:
        scores = score_groups(model, collator, dev, section.context_chars, args.per_device_eval_batch_size)
        return link_metrics(dev, scores)

    trainer = listwise_trainer(Trainer)(
        model=model, args=args, train_dataset=rows, eval_dataset=rows[:1] if dev else None, data_collator=collator,
        processing_class=tokenizer, dev_metrics=dev_metrics, pointwise_weight=float(run.options["pointwise_weight"]))
    figures = fit(run, trainer)
    model = merged(trainer.model)

    def save(path) -> None:
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))

    return run.finish(save=save, **figures)


# --------------------------------------------------------------------------- backend: gliner


def gliner_rows(groups: list[Group], labels: list[list[str]], max_width: int, context_words: int,
                rejects: Rejects, seed: int) -> list[dict[str, Any]]:
    """GLiNER training rows, one per mention whose edges are word edges (the others are rejected): the words
    within ``context_words`` of it, its label set shuffled as ``ner_labels`` (a uni-encoder scores the row
    against these alone; a bi-encoder against every label of the batch, the wrong ones given as
    ``ner_negatives``), and as ``ner`` spans the mention and every other gold mention there whose gold
    text is in the set."""
    rng = random.Random(seed)
    per_doc: dict[int, list[tuple[Group, list[str]]]] = {}
    for g, texts in zip(groups, labels, strict=True):
        per_doc.setdefault(id(g.doc), []).append((g, texts))
    rows = []
    for members in per_doc.values():
        words, spans = mention_words([g for g, _ in members], max_width, rejects)
        golds = [(*span, g.gold_text) for (g, _), span in zip(members, spans, strict=True) if span is not None]
        for (_, texts), span in zip(members, spans, strict=True):
            if span is not None:
                lo, hi = max(0, span[0] - context_words), min(len(words), span[1] + 1 + context_words)
                ner = [[a - lo, b - lo, text] for a, b, text in golds if lo <= a and b < hi and text in texts]
                rows.append({"tokenized_text": words[lo:hi], "ner": ner, "ner_labels": rng.sample(texts, len(texts)),
                             "ner_negatives": texts[1:]})
    return rows


def mention_words(groups: list[Group], max_width: int, rejects: Rejects) -> tuple[list[str], list[tuple[int, int] | None]]:
    """GLiNER's words of the groups' document and each mention's first and last word, at most ``max_width``
    words as L3 clips them (None, and a reject, when its edges are not word edges)."""
    doc = groups[0].doc
    offsets, spans = word_spans(doc, [(g.start, g.end) for g in groups], rejects, "linker")
    clipped = [None if s is None else (s[0], min(s[1], s[0] + max_width - 1)) for s in spans]
    return [doc.text[a:b] for a, b in offsets], clipped


class TrainingGliner(GlinerModel):
    """The GLiNER being trained, seen through glinker's GLiNER helpers: nothing is loaded, and ``folder``
    (any existing folder, e.g. the run's output) only gives it a name."""

    def __init__(self, module, folder: Path):
        self.module = module
        super().__init__(str(folder), device=str(module.device))

    def load(self, resolved, token):
        return self.module


def gliner_link_metrics(groups: list[Group], folder: Path, batch_size: int) -> Callable[[Any], dict[str, float]]:
    """The dev metrics of a GLiNER: each mention scored against its candidates by L3's ``backend: gliner``
    (``GlinerLinkScorer``, label vectors embedded by the model being trained), then ``link_metrics``."""
    from ..linking.gliner import GlinerLinkScorer
    from ..types import Candidate, Mention, MentionCandidates

    # a candidate stands for its text here: entity_id and label are the rendered text, the template "{label}"
    mentions = [[MentionCandidates(Mention(g.doc.text[g.start : g.end], g.start, g.end),
                                   [Candidate(entity_id=t, label=t) for t in g.texts])] for g in groups]

    def metrics(module) -> dict[str, float]:
        scorer = GlinerLinkScorer(None, TrainingGliner(module, folder), "{label}", batch_size=batch_size,
                                  use_precomputed=False)
        scores = scorer.score([g.doc.text for g in groups], mentions)
        return link_metrics(groups, [per_text[0] for per_text in scores])

    return metrics


def train_gliner_linker(run: TrainRun, train: list[Group], labels: list[list[str]], dev: list[Group]) -> dict[str, Any]:
    from gliner.training import Trainer

    from ..errors import ConfigError

    model = build_gliner(run)
    if model.config.span_mode == "token_level":
        raise ConfigError("model: a token_level GLiNER has no spans to link; choose a span_mode or another model")
    rows = gliner_rows(train, labels, int(model.config.max_width), run.config.model_section().context_words,
                       run.rejects, run.seed)
    run.rejects.flush()
    apply_lora(run, model)
    steps = run.max_steps or run.epoch_steps(len(rows))
    args = run.training_arguments(run.out / "checkpoints", steps, **eval_arguments(run, dev))
    run.describe(f"linker (gliner): {len(rows)} train mentions, {len(dev)} dev mentions, {steps} steps")
    trainer = evaluating_trainer(Trainer)(
        model=model, args=args, train_dataset=rows, eval_dataset=rows[:1] if dev else None,
        data_collator=model._create_data_collator(), processing_class=model.data_processor.transformer_tokenizer,
        dev_metrics=gliner_link_metrics(dev, run.out, args.per_device_eval_batch_size))
    figures = fit(run, trainer)
    merge_lora(model)
    return run.finish(save=lambda path: model.save_pretrained(str(path)), **figures)
