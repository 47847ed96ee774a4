"""Supervised tasks in ``mode: full`` or ``lora``: the model fine-tuned on the task's train split by ``protconv
finetune``'s own run (``downstream.finetune.finetune``, the same data arguments, so the same splits as the probe
and the baselines), then scored on the split the probe is scored on with the probe's metric and bootstrap
(``supervised.scored_figure``), from the predictions table that run writes.

The run lives in ``OUTPUT/finetune/<task>/<model-slug>/`` beside a stamp holding the key of what it was trained
from (weights fingerprint, data hashes, the task and its settings): a finished folder with the same key is reused
(no training), one with another key is trained again, and an unfinished one (a killed run) resumes from its newest
complete checkpoint. ``--overwrite`` trains again. When the task has both a valid and a test split, the
checkpoint of the best validation metric is kept (Trainer's ``load_best_model_at_end``, evaluated every epoch);
without a test split the valid split is the one scored, so nothing is chosen on it (as for the probe).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from transformers import PreTrainedModel

from ..data.tasks.vocabulary import TaskType
from ..downstream.predictions import UNSCORED
from ..inference.common import weights_fingerprint
from .results import Record, cache_key, file_hash, write_json
from .suite import LORA_SETTINGS, Task
from .supervised import eval_split, metric_name, scored_figure

if TYPE_CHECKING:
    from transformers import TrainingArguments

#: The stamp beside a fine-tuning run: its key, and whether it finished.
STAMP = "evaluate_stamp.json"
#: Settings that are ``FinetuneArguments``'; the other ``finetune:`` settings are ``TrainingArguments``'.
_MODEL_SETTINGS = {"max_length", "normalize_labels", *LORA_SETTINGS}
_DATA_KEYS = ("train_file", "validation_file", "test_file", "labels_file", "mask_file", "classes",
              "sequence_column", "label_column", "on_bad_row", "max_train_samples")  # fmt: skip


class RunOptions(Protocol):
    """What of ``evaluate``'s options a fine-tuning run needs (``runner.EvaluateOptions`` has them)."""

    @property
    def output_dir(self) -> Path: ...
    @property
    def overwrite(self) -> bool: ...
    @property
    def device(self) -> str | None: ...
    @property
    def progress(self) -> bool: ...
    @property
    def bootstrap(self) -> int: ...


def model_slug(model: str) -> str:
    """A folder name for ``model``: its last path part, made safe, and a short hash of the whole (two models both
    named ``model`` in different folders get different slugs)."""
    whole = str(Path(model).resolve()) if Path(model).is_dir() else model
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.rstrip("/")).name or "model")
    return f"{name}-{hashlib.sha256(whole.encode()).hexdigest()[:8]}"


def run_folder(task: Task, model: str, options: RunOptions) -> Path:
    return options.output_dir / "finetune" / task.name / model_slug(model)


def finetune_records(task: Task, model: str, network: PreTrainedModel, options: RunOptions) -> list[Record]:
    """The task's row for ``model`` fine-tuned in ``task.mode``, training only when no finished run matches."""
    folder = run_folder(task, model, options)
    key = cache_key(task.spec, [file_hash(path) for path in task.files], weights_fingerprint(network))
    stamp = _read_stamp(folder)
    if options.overwrite or stamp.get("key") != key or not stamp.get("finished"):
        resume = not options.overwrite and stamp.get("key") == key  # a killed run of this very key
        _train(task, model, folder, key, options, resume)
    target = eval_split(task.splits)
    predicted, truth, residues = read_predictions(folder / f"{target}_predictions.csv", task.kind, task.classes)
    value, stderr = scored_figure(_task_type(task), predicted, truth, options.bootstrap, residues)
    return [Record(task.name, model, None, metric_name(_task_type(task), task.classes), value, stderr)]


def _task_type(task: Task) -> TaskType:
    if task.kind not in ("regression", "classification", "token-classification"):
        raise ValueError(f"task {task.name!r}: mode {task.mode} is for supervised tasks, not {task.kind}")
    return task.kind


def _read_stamp(folder: Path) -> dict[str, Any]:
    try:
        found = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _train(task: Task, model: str, folder: Path, key: str, options: RunOptions, resume: bool) -> None:
    from ..downstream.finetune import FinetuneArguments, Mode, finetune  # imports Trainer: only when one trains

    if folder.exists() and not resume:
        shutil.rmtree(folder)  # another key's run (or --overwrite): nothing of it is reused
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / STAMP, {"key": key, "finished": False})
    data = {name: task.spec[name] for name in _DATA_KEYS if name in task.spec}
    own = {name: value for name, value in task.finetune.items() if name in _MODEL_SETTINGS}
    mode: Mode = "lora" if task.mode == "lora" else "full"
    arguments = FinetuneArguments(model=model, task=_task_type(task), mode=mode, **data, **own)
    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs: stdout stays evaluate's table
        finetune(arguments, training_arguments(task, folder, options, resume))
    for checkpoint in folder.glob("checkpoint-*"):  # the model is in folder/model; optimizer states go
        shutil.rmtree(checkpoint)
    write_json(folder / STAMP, {"key": key, "finished": True})


def training_arguments(task: Task, folder: Path, options: RunOptions, resume: bool) -> TrainingArguments:
    """``TrainingArguments`` of the run: the task's settings over Trainer's defaults, seed 0 (the suite's data
    seed), a checkpoint each epoch (one kept, so a killed run resumes), and the best validation epoch kept when a
    test split is the one scored."""
    settings: dict[str, Any] = {"seed": 0, "save_strategy": "epoch", "save_total_limit": 1}
    if "valid" in task.splits and "test" in task.splits:
        metric = "spearman" if task.kind == "regression" else "accuracy"  # finetune's names (q3 is its accuracy)
        settings |= {"eval_strategy": "epoch", "load_best_model_at_end": True, "metric_for_best_model": metric,
                     "greater_is_better": True}  # fmt: skip
    settings |= {name: value for name, value in task.finetune.items() if name not in _MODEL_SETTINGS}
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(folder), report_to=[], disable_tqdm=not options.progress, use_cpu=options.device == "cpu",
        resume_from_checkpoint="true" if resume else None, **settings,
    )  # fmt: skip


def read_predictions(
    path: Path, kind: str, classes: list[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Predictions and truth from a fine-tuning run's ``<split>_predictions.csv`` (``downstream.predictions``):
    values for regression, class names for classification, and for per-residue tasks the scored residues of every
    protein, flat, with their count per protein."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if kind == "regression":
        return _column(rows, "prediction", float), _column(rows, "label", float), None
    if kind == "classification":
        return _column(rows, "predicted_label", str), _column(rows, "label", str), None
    split = list if all(len(name) == 1 for name in classes or ()) else str.split  # as join_labels wrote them
    predicted, truth, residues = [], [], []
    for row in rows:
        labels, guesses = split(row["label"]), split(row["residue_labels"])
        scored = [(guess, label) for guess, label in zip(guesses, labels, strict=True) if label != UNSCORED]
        predicted += [guess for guess, _ in scored]
        truth += [label for _, label in scored]
        residues.append(len(scored))
    return np.asarray(predicted), np.asarray(truth), np.asarray(residues, dtype=np.int64)


def _column(rows: list[dict[str, str]], name: str, kind: type) -> np.ndarray:
    return np.asarray([kind(row[name]) for row in rows])
