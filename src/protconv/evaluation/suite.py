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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from ..data.tasks.arguments import TaskDataArguments
from ..data.tasks.rows import LabelledSequences
from ..data.tasks.vocabulary import Split
from ..inference.score import METHODS, ScoreMethod
from .assays import Assay, AssayError, read_esm_assay, read_proteingym

TaskKind = Literal["zero-shot", "regression", "classification", "token-classification", "perplexity"]
TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)
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
        readers = {"zero-shot": _zero_shot, "perplexity": _perplexity}
        reader = readers.get(entry["kind"], _supervised)
        tasks.append(reader(entry, path.parent, where))
    return tasks


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
_SUPERVISED_KEYS = {"name", "kind", "baselines", "cnn_epochs", *_DATA_FILES, *_SUPERVISED_OPTIONS}


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
