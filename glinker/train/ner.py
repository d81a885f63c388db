"""``task: ner``: fine-tune GLiNER on annotated documents with gliner's own trainer.

Documents become word windows (``data.long_doc_chunking``) in GLiNER's training format. The model
starts from a GLiNER folder (``model.from_pretrained``) or is built from local encoders
(``model.model_name``, and ``model.labels_encoder`` for a bi-encoder). Every ``eval_steps`` the dev
windows are decoded and scored (span F1, ``eval_span_f1``); the best checkpoint is the output.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .data import Rejects, Window, read_docs, windows
from .run import TrainRun, merged


def examples(ws: list[Window], labels: list[str]) -> list[dict[str, Any]]:
    """GLiNER training rows: words, ``[first word, last word, label]`` spans, and every label as a type."""
    return [{"tokenized_text": w.words, "ner": [list(s) for s in w.spans], "ner_labels": labels} for w in ws]


def load_windows(run: TrainRun, rejects: Rejects) -> tuple[list[Window], list[Window]]:
    data = run.config.data
    train_docs = read_docs(data.train_data, data.train_split, data, rejects, data.max_docs)
    train = [w for d in train_docs for w in windows(d, data.long_doc_chunking, rejects)]
    dev: list[Window] = []
    if data.val_data is not None:
        dev_docs = read_docs(data.val_data, data.val_split, data, rejects, data.val_max_docs)
        dev = [w for d in dev_docs for w in windows(d, data.long_doc_chunking, Rejects(None))]
    return train, dev


def build_gliner(run: TrainRun):
    """A GLiNER from a folder, or a new one from local encoders (never from the hub)."""
    from gliner import GLiNER, GLiNERConfig

    section = run.config.model_section()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if section.from_pretrained:
            return GLiNER.from_pretrained(run.resolve(section.from_pretrained), local_files_only=True)
        kwargs = section.gliner_kwargs()
        kwargs["model_name"] = run.resolve(section.model_name)
        if section.labels_encoder:
            kwargs["labels_encoder"] = run.resolve(section.labels_encoder)
        if section.hidden_size is None:
            from transformers import AutoConfig

            kwargs["hidden_size"] = AutoConfig.from_pretrained(kwargs["model_name"]).hidden_size
        return GLiNER.from_config(GLiNERConfig(**kwargs), backbone_from_pretrained=True)


def apply_lora(run: TrainRun, model) -> None:
    """LoRA adapters on the text encoder (and the label encoder) when ``peft.enabled``."""
    layer = model.model.token_rep_layer
    layer.bert_layer.model = run.with_lora(layer.bert_layer.model)
    if getattr(layer, "labels_encoder", None) is not None:
        layer.labels_encoder.model = run.with_lora(layer.labels_encoder.model)


def merge_lora(model) -> None:
    """Fold LoRA adapters into the weights so the saved folder is a plain GLiNER."""
    layer = model.model.token_rep_layer
    for holder in (layer.bert_layer, getattr(layer, "labels_encoder", None)):
        if holder is not None:
            holder.model = merged(holder.model)


def evaluating_trainer(base):
    """``base`` (a transformers ``Trainer`` class) whose ``evaluate`` reports ``dev_metrics(model)``, a dict
    of metric -> value, each name prefixed with ``eval_``; the model is back in training mode after it."""

    class EvaluatingTrainer(base):
        def __init__(self, *args, dev_metrics: Callable[[Any], dict[str, float]], **kwargs):
            super().__init__(*args, **kwargs)
            self.dev_metrics = dev_metrics

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.dev_metrics(self.model).items()}
            self.model.train()
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return EvaluatingTrainer


def span_f1(rows: list[dict[str, Any]], labels: list[str], threshold: float, batch_size: int):
    """The dev metric of ``task: ner``: GLiNER decodes ``rows`` and its span F1 is reported."""

    def metrics(model) -> dict[str, float]:
        _, f1 = model.evaluate(rows, flat_ner=True, threshold=threshold, batch_size=batch_size, entity_types=labels)
        return {"span_f1": round(float(f1), 4)}

    return metrics


def train_ner(run: TrainRun) -> dict[str, Any]:
    from gliner.training import Trainer

    train, dev = load_windows(run, run.rejects)
    run.rejects.flush()
    labels = sorted({s[2] for w in train for s in w.spans}) or [run.config.data.default_label]
    model = build_gliner(run)
    apply_lora(run, model)
    steps = run.max_steps or run.epoch_steps(len(train))
    eval_steps = int(run.args.get("eval_steps") or 100)
    extra = {"eval_strategy": "steps", "eval_steps": eval_steps, "save_steps": eval_steps,
             "metric_for_best_model": "span_f1", "greater_is_better": True,
             "load_best_model_at_end": True} if dev else {}
    args = run.training_arguments(run.out / "checkpoints", steps, **extra)
    run.describe(f"ner: {len(train)} train windows, {len(dev)} dev windows, labels {labels}, {steps} steps")
    dev_metrics = span_f1(examples(dev, labels), labels, run.config.model_section().threshold,
                          args.per_device_eval_batch_size)
    trainer = evaluating_trainer(Trainer)(
        model=model, args=args, train_dataset=examples(train, labels), eval_dataset=examples(dev, labels) or None,
        data_collator=model._create_data_collator(), processing_class=model.data_processor.transformer_tokenizer,
        dev_metrics=dev_metrics)
    checkpoint, step = run.last_checkpoint(run.out / "checkpoints") if run.resume else (None, 0)
    trainer.train(resume_from_checkpoint=checkpoint)
    merge_lora(model)
    history = [{k: v for k, v in log.items() if k in ("step", "eval_span_f1")}
               for log in trainer.state.log_history if "eval_span_f1" in log]
    best = {"metric": "eval_span_f1", "value": trainer.state.best_metric,
            "checkpoint": trainer.state.best_model_checkpoint, "labels": labels}
    resumed = [{"round": 0, "step": step}] if checkpoint else []
    return run.finish(best, history, lambda path: model.save_pretrained(str(path)), resumed)

