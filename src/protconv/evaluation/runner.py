"""``protconv evaluate``: every model loaded once, every task run on identical data, the BLOSUM62 reference beside,
each (task, model) result cached atomically under ``OUTPUT/cache`` so that a rerun, or a killed run, continues
(keyed by the weights' fingerprint, the data files' hashes and the task as written; ``overwrite`` recomputes)."""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel

from ..file_guards import OutputDirLock, check_outputs_are_not_inputs
from ..inference.common import DEFAULT_MAX_TOKENS, DtypeName, ModelSession, package_version
from ..inference.distributed import ONE_PROCESS, Ranks, detect_ranks, process_group
from ..inference.gather import main_decides
from ..inference.score import score_variants, session_device
from .blosum import blosum_scores
from .finetuned import finetune_records
from .perplexity import perplexity_records
from .plots import write_plots
from .results import (
    Record,
    cache_key,
    file_hash,
    load_cached,
    markdown_table,
    save_cached,
    write_csv,
    write_json,
)
from .suite import Task
from .supervised import baseline_records, probe_records
from .zero_shot import ZERO_SHOT_METRICS, Figure, assay_metrics, proteingym_summary, type_means

#: The no-training reference column of zero-shot tasks.
BLOSUM = "blosum62"
#: ESM's length limit: longer assays are named in results.json (protconv's own models run them whole; a model with a
#: position limit, as ESM, stops with an error naming the limit).
ESM_LIMIT = 1022


@dataclass(frozen=True)
class EvaluateOptions:
    output_dir: Path
    overwrite: bool = False
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS
    dtype: DtypeName = "float32"
    device: str | None = None
    bootstrap: int = 100
    progress: bool = False


@dataclass(frozen=True)
class EvaluateResult:
    records: list[Record]
    fingerprints: dict[str, str]
    table: str
    computed: int  # (task, model) results computed in this run
    reused: int  # and read from the cache


def _prepare_output(options: EvaluateOptions) -> Path:
    folder = options.output_dir
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder}: exists and is not a folder")
    if options.overwrite and (folder / "cache").is_dir():
        shutil.rmtree(folder / "cache")
    (folder / "cache").mkdir(parents=True, exist_ok=True)
    return folder


def _task_records(
    task: Task, model: str, scores_of: Callable[[int], list[float]], options: EvaluateOptions
) -> list[Record]:
    """Per-assay figures, the per-type means and ProteinGym's summary of one model (or reference) on one task."""
    records: list[Record] = []
    per_assay: dict[str, list[float]] = {name: [] for name in ZERO_SHOT_METRICS}
    for index, assay in enumerate(task.assays):
        figures = assay_metrics(assay.scores, assay.bins, scores_of(index), options.bootstrap)
        for metric, figure in figures.items():
            records.append(Record(task.name, model, assay.name, metric, figure.value, figure.stderr))
            per_assay[metric].append(figure.value)
    types = [assay.selection_type for assay in task.assays]
    for metric, values in per_assay.items():
        if len(values) != len(task.assays):
            continue  # a label metric of an assay without labels: not computed, not reported
        for kind, mean in type_means(values, types).items():
            records.append(Record(task.name, model, f"type:{kind}", metric, mean, None))
        summary: Figure = proteingym_summary(values, types, max(options.bootstrap, 2) * 10)
        records.append(Record(task.name, model, None, metric, summary.value, summary.stderr))
    return records


def _cached(path: Path, compute: Callable[[], list[Record]], ranks: Ranks = ONE_PROCESS) -> tuple[list[Record], bool]:
    found = load_cached(path) if ranks.is_main else None  # N ranks: rank 0 alone reads and writes OUTPUT
    if main_decides(ranks, found is not None):
        return found or [], False
    records = compute()
    if ranks.is_main:
        save_cached(path, records)
    return records, True


def evaluate(models: Sequence[str], tasks: Sequence[Task], options: EvaluateOptions) -> EvaluateResult:
    """Run every task for every model (and the reference columns), write the outputs, return the records.

    ``--output_dir`` is locked for the run (a second evaluate on it is refused naming the holder), and may not be a
    model folder or hold a data file of the suite."""
    inputs: list[str | Path | None] = [m for m in models if Path(m).is_dir()]
    inputs += [path for task in tasks for path in task.files]
    check_outputs_are_not_inputs([options.output_dir], inputs)
    ranks = detect_ranks()  # on N ranks each scores its share of every zero-shot assay; rank 0 writes everything
    with process_group(ranks), OutputDirLock(options.output_dir) if ranks.is_main else nullcontext():
        return _evaluate(models, tasks, options, ranks)


def _evaluate(
    models: Sequence[str], tasks: Sequence[Task], options: EvaluateOptions, ranks: Ranks = ONE_PROCESS
) -> EvaluateResult:
    folder = _prepare_output(options) if ranks.is_main else options.output_dir
    hashes = {str(path): file_hash(path) for task in tasks for path in task.files}
    records: list[Record] = []
    counts = [0, 0]  # computed, reused
    for task in tasks:
        key = cache_key(task.spec, [hashes[str(p)] for p in task.files], BLOSUM)
        reference = partial(_reference_records, task, options) if ranks.is_main else list
        found, fresh = _cached(folder / "cache" / f"{key}.json", reference, ranks)
        records += found
        counts[not fresh] += 1
    fingerprints: dict[str, str] = {}
    for model in models:
        session = ModelSession.open(model, options.dtype, session_device(ranks, options.device))
        network, fingerprints[model] = session.load(AutoModelForMaskedLM, "a masked-LM head (lm_head)")
        scorer = _Scorer(session, network, options, ranks)
        for task in tasks:
            key = cache_key(task.spec, [hashes[str(p)] for p in task.files], fingerprints[model])
            compute = partial(scorer.records, task, model)
            found, fresh = _cached(folder / "cache" / f"{key}.json", compute, ranks)
            records += found
            counts[not fresh] += 1
        del network, scorer
    table = _write_outputs(folder, models, tasks, records, fingerprints, hashes) if ranks.is_main else ""
    return EvaluateResult(records, fingerprints, table, counts[0], counts[1])


def _reference_records(task: Task, options: EvaluateOptions) -> list[Record]:
    """BLOSUM62 beside zero-shot tasks; the one-hot linear model and the CNN from scratch beside supervised ones."""
    if task.kind == "perplexity":
        return []  # no reference column
    if task.kind != "zero-shot":
        return baseline_records(task.name, task.spec, task.splits, task.classes, options.bootstrap)
    return _task_records(task, BLOSUM, lambda index: blosum_scores(task.assays[index].variants), options)


@dataclass(frozen=True)
class _Scorer:
    session: ModelSession
    network: PreTrainedModel
    options: EvaluateOptions
    ranks: Ranks = ONE_PROCESS

    def records(self, task: Task, model: str) -> list[Record]:
        if task.kind == "zero-shot":
            return _task_records(task, model, partial(self.scores, task), self.options)
        if not self.ranks.is_main:
            return []  # perplexity and probes run on rank 0 (zero-shot scoring alone is split)
        if task.kind == "perplexity":
            return perplexity_records(task.name, task.sequences, model, self.session, self.network,
                                      self.options.max_tokens_per_batch, self.options.bootstrap)  # fmt: skip
        if task.mode != "probe":  # full / lora: fine-tuned by protconv finetune's run (evaluation.finetuned)
            return finetune_records(task, model, self.network, self.options)
        return probe_records(task.name, task.spec, task.splits, task.classes, model, self.session,
                             self.network, self.options.max_tokens_per_batch, self.options.bootstrap)  # fmt: skip

    def scores(self, task: Task, index: int) -> list[float]:
        assay, options = task.assays[index], self.options
        return score_variants(
            self.session, self.network, assay.wildtype, assay.variants, task.method,
            options.max_tokens_per_batch, options.progress and self.ranks.is_main, self.ranks,
        )[0]  # fmt: skip


def _versions() -> dict[str, str]:
    found = {"protconv": package_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("transformers", "huggingface_hub"):
        found[name] = importlib.metadata.version(name)
    return found


def _write_outputs(folder: Path, models: Sequence[str], tasks: Sequence[Task], records: list[Record],
                   fingerprints: dict[str, str], hashes: dict[str, str]) -> str:  # fmt: skip
    long_assays = sorted({a.name for t in tasks for a in t.assays if len(a.wildtype) > ESM_LIMIT})
    write_json(folder / "results.json", {
        "results": [asdict(record) for record in records],
        "versions": _versions(),
        "models": [{"model": m, "weights_fingerprint": fingerprints[m]} for m in models],
        "reference_columns": [BLOSUM],
        "data_files": hashes,
        "tasks": [task.spec for task in tasks],
        "assays_longer_than_1022": long_assays,
    })  # fmt: skip
    write_csv(folder / "results.csv", records)
    table = markdown_table(records)
    (folder / "results.md").write_text(table, encoding="utf-8")
    (folder / "assays").mkdir(exist_ok=True)
    for task in tasks:
        write_csv(folder / "assays" / f"{task.name}.csv", [r for r in records if r.task == task.name], assays=True)
    write_plots(folder / "plots", records, models)
    return table
