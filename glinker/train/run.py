"""What every training task shares: the output folder, its state, checkpoints, arguments and reports."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ..atomic import replace_bytes
from ..errors import ConfigError
from .config import TrainConfig, arguments_class
from .data import Rejects

STATE = "train_state.json"


class TrainRun:
    """One ``glinker train`` run writing into ``out``: state, rounds, metrics and the final model."""

    def __init__(self, config: TrainConfig, out: Path, resume: bool = False, max_steps: int | None = None,
                 device: str | None = None, quiet: bool = False):
        self.config = config
        self.out = out
        self.resume = resume
        self.args = config.trainer_arguments()
        self.options = config.task_options()
        self.max_steps = max_steps or (int(self.args["max_steps"]) if int(self.args.get("max_steps", -1)) > 0 else 0)
        self.device = device or ("cuda" if _cuda() else "cpu")
        self.progress = not quiet
        self.seed = int(self.args.get("seed", 42))
        self.rejects = Rejects(config.data.rejects or out / "rejects.jsonl")
        self.started = time.monotonic()

    # ------------------------------------------------------------------ output folder

    def prepare(self) -> None:
        """Check the output folder: a fresh run needs it empty (or absent), a resumed one needs its state."""
        state = self.out / STATE
        if self.resume:
            if not state.exists():
                raise ConfigError(f"--resume: {self.out} has no {STATE}; nothing to resume (start without --resume)")
            if (task := self.load_state().get("task")) != self.config.task:
                raise ConfigError(f"--resume: {self.out} holds a {task!r} run, the config is task {self.config.task!r}")
            return
        if self.out.exists() and any(self.out.iterdir()):
            raise ConfigError(f"output folder {self.out} is not empty; pass --resume to continue the run in it, "
                              "or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        self.save_state({"task": self.config.task, "round": 0, "best": None, "history": []})

    def load_state(self) -> dict[str, Any]:
        return orjson.loads((self.out / STATE).read_bytes())

    def save_state(self, state: dict[str, Any]) -> None:
        replace_bytes(self.out / STATE, orjson.dumps(state, option=orjson.OPT_INDENT_2))

    def round_dir(self, number: int) -> Path:
        return self.out / "rounds" / f"{number:04d}"

    @staticmethod
    def last_checkpoint(folder: Path) -> tuple[str | None, int]:
        """The newest complete HF checkpoint in ``folder`` and its step (``trainer_state.json`` is written last)."""
        done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        if not done:
            return None, 0
        step, path = max((int(p.name.split("-")[1]), p) for p in done)
        return str(path), step

    def latest_model(self) -> str | None:
        """The model at the end of the last finished round (None before the first)."""
        folder = self.out / "last"
        return str(folder) if (folder / "config.json").exists() else None

    def save_round(self, model, state: dict[str, Any], better: bool) -> None:
        """Keep the model of the round just finished (and as the output when it is the best so far)."""
        def save(path: Path) -> None:
            model.save_pretrained(str(path))

        _save_atomic(self.out / "last", save)
        if better:
            _save_atomic(self.out / "best", save)
        shutil.rmtree(self.round_dir(state["round"] - 1), ignore_errors=True)
        self.save_state(state)

    def finish(self, best: Any, history: list[dict[str, Any]], save: Callable[[Path], None],
               resumed: list[dict[str, int]]) -> dict[str, Any]:
        """Write the output model with ``save`` into ``out/model``; returns the summary (also ``summary.json``)."""
        final = self.out / "model"
        _save_atomic(final, save)
        summary = {"task": self.config.task, "model": str(final), "best": best, "history": history, "resumed": resumed,
                   "seconds": round(time.monotonic() - self.started, 1), "rejected": len(self.rejects.rows),
                   "peak_rss_mib": _peak_rss_mib()}
        (self.out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        self.describe(f"model written to {final}")
        return summary

    # ------------------------------------------------------------------ models and arguments

    @staticmethod
    def resolve(name: str) -> str:
        """A local folder for ``name`` (packaged copies and the HF cache included); never downloads offline."""
        from ..models.resolve import resolve_model

        return resolve_model(name).load_target

    def training_arguments(self, folder: Path, steps: int, first_round: bool = True, own_evaluation: bool = False,
                           **extra: Any):
        """The task's ``TrainingArguments`` from the ``training`` section, for ``steps`` steps into ``folder``."""
        args = {"per_device_train_batch_size": 8, "learning_rate": 2e-5, "lr_scheduler_type": "constant_with_warmup",
                "warmup_ratio": 0.0, "logging_steps": 10, "save_strategy": "steps", "save_steps": 50,
                "save_total_limit": 2, "report_to": "none", "seed": self.seed, "dataloader_num_workers": 0,
                **self.args, **extra, "output_dir": str(folder), "max_steps": steps,
                "disable_tqdm": not self.progress, "use_cpu": self.device == "cpu"}
        if not first_round:
            args.update(warmup_steps=0, warmup_ratio=0.0)
        if self.device != "cpu" and "bf16" not in self.args:
            args["bf16"] = _bf16()
        if own_evaluation:  # the task scores the dev set itself, between its rounds
            for key in ("eval_steps", "eval_strategy", "load_best_model_at_end", "metric_for_best_model"):
                args.pop(key, None)
        cls = arguments_class(self.config.kind)
        if "warmup_ratio" not in {f.name for f in dataclasses.fields(cls)}:  # transformers 5: a float warmup_steps
            ratio = args.pop("warmup_ratio")
            args["warmup_steps"] = args.get("warmup_steps") or ratio
        try:
            return cls(**args)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"training: {exc}") from None

    def epoch_steps(self, rows: int) -> int:
        """Optimizer steps of ``num_train_epochs`` (default 1) over ``rows`` training rows."""
        args = self.args
        batch = int(args.get("per_device_train_batch_size", 8)) * int(args.get("gradient_accumulation_steps", 1))
        return max(1, int(float(args.get("num_train_epochs", 1)) * -(-rows // batch)))

    def with_lora(self, module, trainable: list[str] | None = None):
        """``module`` wrapped with LoRA adapters (the ``peft`` package) when ``peft.enabled``, else itself;
        the submodules named in ``trainable`` (e.g. a new scoring head) are trained in full."""
        peft = self.config.peft
        if not peft.enabled:
            return module
        from peft import LoraConfig, get_peft_model

        return get_peft_model(module, LoraConfig(r=peft.r, lora_alpha=peft.lora_alpha, lora_dropout=peft.lora_dropout,
                                                 target_modules=peft.target_modules, bias=peft.bias,
                                                 modules_to_save=trainable))

    # ------------------------------------------------------------------ reports

    def report(self, metrics: dict[str, Any]) -> None:
        """One line of dev metrics on stderr (unless quiet) and in ``metrics.jsonl``."""
        with open(self.out / "metrics.jsonl", "ab") as handle:
            handle.write(orjson.dumps(metrics) + b"\n")
        if self.progress:
            print("dev " + " ".join(f"{k}={v}" for k, v in metrics.items()), file=sys.stderr, flush=True)

    def describe(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)


def merged(module):
    """A LoRA-wrapped module with its adapters folded into the weights; other modules as they are."""
    return module.merge_and_unload() if hasattr(module, "merge_and_unload") else module


def _save_atomic(folder: Path, save: Callable[[Path], None]) -> None:
    """``save`` into a hidden folder beside ``folder``, then put it in place of ``folder``."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _peak_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
