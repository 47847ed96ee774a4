"""Evaluation suites: a YAML list of tasks (or a mapping with a ``tasks`` list), each with a ``name``, a
``kind`` and its data. Parsed and checked up front, every error naming the suite file and the task; data paths
are relative to the suite file. Kinds so far: ``zero-shot`` (ProteinGym folder, or ESM layout)::

    - name: blat
      kind: zero-shot
      proteingym: data/proteingym          # folder; reference_file defaults to DMS_substitutions.csv in it
      method: masked-marginal
    - name: blat-esm
      kind: zero-shot
      variants: variants.csv               # ESM layout: mutant + score column, wild type FASTA, offset
      wildtype: wildtype.fasta
      score_column: "2500"
      offset: 24

Supervised kinds (``regression``, ``classification``, ``token-classification``) read the task files ``finetune``
reads and take ``mode: probe`` (the frozen-embedding probe, the default), ``full`` or ``lora`` (the model fine-tuned
by ``protconv finetune``'s run, ``evaluation.finetuned``), or a list of them: one task per mode, the probe under the
task's name and the others as ``<name>-full`` / ``<name>-lora`` (one row each in results.md). Their ``finetune:``
settings (:data:`FINETUNE_SETTINGS`, finetune's own names) come from the suite's ``finetune:`` mapping (suite in
the mapping form, ``{finetune: {...}, tasks: [...]}``) overridden key by key by the task's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from ..data.choices import choice_error
from ..data.tasks.arguments import TaskDataArguments
from ..data.tasks.rows import LabelledSequences
from ..data.tasks.vocabulary import Split
from ..inference.score import METHODS, ScoreMethod
from .assays import Assay, AssayError, read_esm_assay, read_proteingym

TaskKind = Literal["zero-shot", "regression", "classification", "token-classification", "perplexity"]
TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)
#: How a supervised task evaluates a model: frozen-embedding probe, or fine-tuned in full or with LoRA adapters.
SupervisedMode = Literal["probe", "full", "lora"]
SUPERVISED_MODES: tuple[SupervisedMode, ...] = get_args(SupervisedMode)
#: The ``finetune:`` settings of full/lora modes, by ``protconv finetune``'s names (``TrainingArguments`` and
#: ``FinetuneArguments``), with the types each takes.
FINETUNE_SETTINGS: dict[str, tuple[type, ...]] = {
    "num_train_epochs": (int, float), "max_steps": (int,), "learning_rate": (float, int),
    "per_device_train_batch_size": (int,), "per_device_eval_batch_size": (int,), "gradient_accumulation_steps": (int,),
    "weight_decay": (float, int), "seed": (int,), "bf16": (bool,), "max_length": (int,), "normalize_labels": (bool,),
    "lora_r": (int,), "lora_alpha": (int,), "lora_dropout": (float, int),
}  # fmt: skip
LORA_SETTINGS = ("lora_r", "lora_alpha", "lora_dropout")
#: Settings that may be 0 (the others, numbers, must be positive).
_ZERO_ALLOWED = {"weight_decay", "seed", "lora_dropout"}
_ZERO_SHOT_KEYS = {"name", "kind", "proteingym", "reference_file", "method", "variants", "wildtype", "score_column",
                   "mutant_column", "offset"}  # fmt: skip


class SuiteError(ValueError):
    """A suite file protconv evaluate refuses (the message names the file and the task)."""


@dataclass
class Task:
    name: str
    kind: TaskKind
    method: ScoreMethod
    spec: dict[str, Any]  # the task as written, paths resolved: part of the cache key
    files: list[Path] = field(default_factory=list)  # the data files, hashed into the cache key
    assays: list[Assay] = field(default_factory=list)
    splits: dict[Split, LabelledSequences] = field(default_factory=dict)  # supervised tasks
    classes: list[str] | None = None
    sequences: list[str] = field(default_factory=list)  # perplexity
    mode: SupervisedMode = "probe"  # supervised tasks
    finetune: dict[str, Any] = field(default_factory=dict)  # full/lora: the merged finetune settings


def proteingym_task(folder: str | Path, reference: str | Path | None, method: ScoreMethod) -> Task:
    """The ``--proteingym`` shortcut as a task."""
    spec = {"name": "proteingym", "kind": "zero-shot", "proteingym": str(folder), "method": method}
    if reference is not None:
        spec["reference_file"] = str(reference)
    return _zero_shot(spec, Path("."), "--proteingym")


def read_suite(path: str | Path) -> list[Task]:
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: invalid YAML ({error})".replace("\n", " ")) from None
    entries = loaded.get("tasks") if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: a suite is a non-empty YAML list of tasks (or a mapping with a 'tasks' list)")
    defaults = _settings(loaded.get("finetune", {}) if isinstance(loaded, dict) else {}, f"{path}: suite 'finetune'")
    tasks: list[Task] = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}: task {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise SuiteError(f"{where}: each task is a mapping with a 'name'")
        where = f"{path}: task {entry['name']!r}"
        if any(task.name == entry["name"] for task in tasks):
            raise SuiteError(f"{where}: two tasks have this name")
        if entry.get("kind") not in TASK_KINDS:
            raise SuiteError(f"{where}: kind must be one of {', '.join(TASK_KINDS)}, got {entry.get('kind')!r}")
        modes, settings = _modes(entry, defaults, where)  # before the data is read: a bad mode costs no reading
        readers = {"zero-shot": _zero_shot, "perplexity": _perplexity}
        task = readers.get(entry["kind"], _supervised)(entry, path.parent, where)
        for mode_task in _mode_tasks(task, modes, settings):
            if any(known.name == mode_task.name for known in tasks):  # e.g. 'st-lora' beside 'st' in mode lora
                raise SuiteError(f"{path}: task {mode_task.name!r}: two tasks have this name")
            tasks.append(mode_task)
    _check_defaults_used(defaults, tasks, path)
    return tasks


def _settings(value: object, where: str) -> dict[str, Any]:
    """A ``finetune:`` mapping checked: known keys (finetune's names), each of its type and range."""
    if not isinstance(value, dict):
        raise SuiteError(f"{where}: 'finetune' is a mapping of settings, got {value!r}")
    unknown = sorted(map(str, set(value) - set(FINETUNE_SETTINGS)))
    if unknown:
        raise SuiteError(f"{where}: unknown finetune settings {', '.join(unknown)} (takes "
                         f"{', '.join(FINETUNE_SETTINGS)})")  # fmt: skip
    return {key: _setting(key, setting, where) for key, setting in value.items()}


def _setting(key: str, setting: object, where: str) -> Any:
    types = FINETUNE_SETTINGS[key]
    if float in types and isinstance(setting, str):
        with contextlib.suppress(ValueError):
            setting = float(setting)  # YAML reads 1e-3 (no dot) as a string
    if isinstance(setting, bool) != (bool in types) or not isinstance(setting, types):
        raise SuiteError(f"{where}: finetune setting {key} must be {' or '.join(t.__name__ for t in types)}, "
                         f"got {setting!r}")  # fmt: skip
    number = isinstance(setting, int | float) and not isinstance(setting, bool)
    if number and isinstance(setting, int | float) and (setting < 0 or (setting == 0 and key not in _ZERO_ALLOWED)):
        bound = "at least 0" if key in _ZERO_ALLOWED else "positive"
        raise SuiteError(f"{where}: finetune setting {key} must be {bound}, got {setting!r}")
    return setting


def _modes(entry: dict[str, Any], defaults: dict[str, Any], where: str) -> tuple[list[SupervisedMode], dict[str, Any]]:
    """The task's modes (a name or a list, ``probe`` by default), its ``finetune:`` settings checked against them."""
    if entry["kind"] in ("zero-shot", "perplexity"):
        return ["probe"], {}  # their readers refuse 'mode' and 'finetune' as unknown keys
    written = entry.get("mode", "probe")
    modes = written if isinstance(written, list) else [written]
    for mode in modes:
        if mode not in SUPERVISED_MODES:
            raise SuiteError(f"{where}: {choice_error('mode', mode, SupervisedMode)} (or a list of them)")
    if not modes:
        raise SuiteError(f"{where}: mode is an empty list (give one or more of {', '.join(SUPERVISED_MODES)})")
    if len(set(modes)) != len(modes):
        raise SuiteError(f"{where}: mode lists each of {', '.join(SUPERVISED_MODES)} at most once, got {written!r}")
    own = _settings(entry.get("finetune", {}), where)
    if own and modes == ["probe"]:
        raise SuiteError(f"{where}: finetune settings {', '.join(own)} are for mode full or lora; this task's mode "
                         "is probe")  # fmt: skip
    lora = sorted(set(own) & set(LORA_SETTINGS))
    if lora and "lora" not in modes:
        raise SuiteError(f"{where}: {', '.join(lora)} are LoRA settings; this task's mode is {', '.join(modes)} "
                         "(add lora to its modes, or drop them)")  # fmt: skip
    merged = {**defaults, **own}
    if merged.get("seed", 0) != 0 and "max_train_samples" in entry and set(modes) != {"probe"}:
        raise SuiteError(
            f"{where}: finetune seed {merged['seed']} with max_train_samples would train on another "
            "subsample than the probe and the baselines (seed 0); drop the seed or max_train_samples"
        )
    if "lora" in modes:
        _check_peft(where)
    return cast(list[SupervisedMode], modes), merged


def _check_peft(where: str) -> None:
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        raise SuiteError(f"{where}: mode lora needs peft: pip install 'protconv[lora]'")


def _mode_tasks(task: Task, modes: list[SupervisedMode], settings: dict[str, Any]) -> list[Task]:
    """One task per mode: the probe keeps the name and the spec as written without mode and settings (so its cache
    key is a plain task's); ``full``/``lora`` get ``<name>-<mode>`` and their settings (LoRA's for lora only) in
    the spec, so that changing one retrains that mode only."""
    plain = {key: value for key, value in task.spec.items() if key not in ("mode", "finetune")}
    tasks = []
    for mode in modes:
        if mode == "probe":
            tasks.append(replace(task, spec=plain))
            continue
        own = {key: value for key, value in settings.items() if mode == "lora" or key not in LORA_SETTINGS}
        name = f"{task.name}-{mode}"
        spec = {**plain, "name": name, "mode": mode, "finetune": own}
        tasks.append(replace(task, name=name, spec=spec, mode=mode, finetune=own))
    return tasks


def _check_defaults_used(defaults: dict[str, Any], tasks: list[Task], path: Path) -> None:
    """Suite-level settings that no task uses are a mistake worth naming (a LoRA rank with no lora task)."""
    modes = {task.mode for task in tasks}
    if defaults and modes <= {"probe"}:
        raise SuiteError(f"{path}: suite 'finetune' settings {', '.join(defaults)} are for mode full or lora; no "
                         "task has either")  # fmt: skip
    lora = sorted(set(defaults) & set(LORA_SETTINGS))
    if lora and "lora" not in modes:
        raise SuiteError(f"{path}: suite 'finetune' settings {', '.join(lora)} are LoRA settings; no task has mode "
                         "lora")  # fmt: skip


def _zero_shot(entry: dict[str, Any], base: Path, where: str) -> Task:
    unknown = sorted(set(entry) - _ZERO_SHOT_KEYS)
    if unknown:
        raise SuiteError(
            f"{where}: unknown keys {', '.join(unknown)} (zero-shot takes {', '.join(sorted(_ZERO_SHOT_KEYS))})"
        )
    method = entry.get("method", "masked-marginal")
    if method not in METHODS:
        raise SuiteError(f"{where}: method must be one of {', '.join(METHODS)}, got {method!r}")
    spec = dict(entry)
    for key in ("proteingym", "reference_file", "variants", "wildtype"):
        if key in spec:
            spec[key] = str((base / str(spec[key])).resolve())
    try:
        if "proteingym" in spec:
            folder = Path(spec["proteingym"])
            reference = Path(spec["reference_file"]) if "reference_file" in spec else folder / "DMS_substitutions.csv"
            assays = read_proteingym(folder, reference)
            files = [reference, *(assay.path for assay in assays)]
        elif "variants" in spec and "wildtype" in spec and "score_column" in spec:
            offset = spec.get("offset", 1)
            if not isinstance(offset, int):
                raise SuiteError(f"{where}: offset must be an integer, got {offset!r}")
            assays = [read_esm_assay(Path(spec["variants"]), Path(spec["wildtype"]), str(spec["score_column"]),
                                     str(spec.get("mutant_column", "mutant")), offset)]  # fmt: skip
            files = [Path(spec["variants"]), Path(spec["wildtype"])]
        else:
            raise SuiteError(f"{where}: a zero-shot task needs 'proteingym' (a folder) or 'variants', 'wildtype' and "
                             "'score_column' (ESM layout)")  # fmt: skip
    except (AssayError, FileNotFoundError) as error:
        raise SuiteError(f"{where}: {error}") from None
    return Task(str(entry["name"]), "zero-shot", method, spec, files, assays)


_DATA_FILES = ("train_file", "validation_file", "test_file", "labels_file", "mask_file")
_SUPERVISED_OPTIONS = {"classes", "sequence_column", "label_column", "on_bad_row", "max_train_samples"}
_SUPERVISED_KEYS = {"name", "kind", "baselines", "cnn_epochs", "mode", "finetune", *_DATA_FILES, *_SUPERVISED_OPTIONS}


def _supervised(entry: dict[str, Any], base: Path, where: str) -> Task:
    """A FLIP/TAPE task, its splits read (and every row checked) by ``downstream.task_data.load_task_splits``."""
    from ..downstream.task_data import load_task_splits

    unknown = sorted(set(entry) - _SUPERVISED_KEYS)
    if unknown:
        raise SuiteError(f"{where}: unknown keys {', '.join(unknown)} (takes {', '.join(sorted(_SUPERVISED_KEYS))})")
    spec = {key: str((base / str(value)).resolve()) if key in _DATA_FILES else value for key, value in entry.items()}
    options = {key: spec[key] for key in (*_DATA_FILES, *_SUPERVISED_OPTIONS) if key in spec}
    try:
        arguments = TaskDataArguments(task=spec["kind"], **options)  # type: ignore[arg-type]  # checked by it
        splits, classes = load_task_splits(arguments)
    except (ValueError, OSError) as error:
        raise SuiteError(f"{where}: {error}".replace("\n", "; ")) from None
    for split in ("train", "valid" if "test" not in splits else "test"):
        if len(splits.get(split, ())) == 0:
            raise SuiteError(f"{where}: the {split} split is empty or missing (evaluate trains on train and scores "
                             "on test, else valid)")  # fmt: skip
    files = [Path(spec[key]) for key in _DATA_FILES if key in spec]
    kind = cast(TaskKind, spec["kind"])
    return Task(str(entry["name"]), kind, "masked-marginal", spec, files, [], dict(splits), classes)


def _perplexity(entry: dict[str, Any], base: Path, where: str) -> Task:
    from .perplexity import read_sequences

    unknown = sorted(set(entry) - {"name", "kind", "fasta"})
    if unknown or "fasta" not in entry:
        raise SuiteError(f"{where}: a perplexity task takes 'fasta' (a held-out FASTA file) and nothing else")
    spec = {**entry, "fasta": str((base / str(entry["fasta"])).resolve())}
    try:
        sequences = read_sequences(Path(spec["fasta"]))
    except (ValueError, OSError) as error:
        raise SuiteError(f"{where}: {error}") from None
    if not sequences:
        raise SuiteError(f"{where}: {spec['fasta']} holds no sequence")
    return Task(str(entry["name"]), "perplexity", "masked-marginal", spec, [Path(spec["fasta"])], sequences=sequences)
