"""``protconv evaluate``: every model loaded once, every task run on identical data, the BLOSUM62 reference beside,
each (task, model) result cached atomically under ``OUTPUT/cache`` so that a rerun, or a killed run, continues
(keyed by the weights' fingerprint, the data files' hashes, the task as written and ``--bootstrap``, whose resamples
give every record's stderr; ``overwrite`` recomputes). The baselines beside a supervised task are keyed by its data
alone (``reference_spec``): one fit stands beside the probe and every fine-tuning mode of that task."""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel

from ..file_guards import OutputDirLock, check_outputs_are_not_inputs
from ..inference.common import DEFAULT_MAX_TOKENS, DtypeName, ModelSession, check_length_limit, package_version
from ..inference.distributed import ONE_PROCESS, Ranks, detect_ranks, process_group
from ..inference.score import ScoreMethod, score_variants, session_device
from .assay_stream import CachePlace, Column, run_zero_shot
from .assays import Assay, AssayRows
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


def _cached(path: Path, compute: Callable[[], list[Record]], ranks: Ranks) -> tuple[list[Record], bool]:
    found = load_cached(path, ranks)
    if found is not None:
        return found, False
    records = compute()
    save_cached(path, records, ranks)
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


def _evaluate(models: Sequence[str], tasks: Sequence[Task], options: EvaluateOptions, ranks: Ranks) -> EvaluateResult:
    """Every model loaded once for the run; zero-shot tasks streamed assay by assay through all of them
    (``assay_stream``), the other tasks model by model. The records come out in one order whatever ran: the
    reference columns of every task, then each model's tasks. On N ranks only zero-shot scoring is split; rank 0
    alone runs probes, baselines and perplexity and writes the outputs."""
    folder = _prepare_output(options) if ranks.is_main else options.output_dir
    hashes = {str(path): file_hash(path) for task in tasks for path in task.files}
    scorers = {model: _Scorer.load(model, tasks, options, ranks) for model in models}
    fingerprints = {model: scorer.fingerprint for model, scorer in scorers.items()}
    found: dict[tuple[str, str], list[Record]] = {}  # (column or BLOSUM for the references, task) -> records
    counts = [0, 0]  # computed, reused
    for task in tasks:
        if task.kind == "zero-shot":
            columns = [Column(BLOSUM, BLOSUM, _blosum_column), *(s.column(m, task.method) for m, s in scorers.items())]
            place = CachePlace(folder / "cache", task, hashes, options.bootstrap, ranks)
            ran = run_zero_shot(task, columns, place, options.bootstrap, folder / "assays" / f"{task.name}.csv")
            for name, (records, fresh) in ran.items():
                found[name, task.name] = records
                counts[not fresh] += 1
            continue
        files = [hashes[str(p)] for p in task.files]
        key = cache_key(reference_spec(task.spec), files, BLOSUM, options.bootstrap)
        kept = folder / "cache" / "baselines" / f"{cache_key(reference_spec(task.spec), files)}.json"
        reference = partial(_reference_records, task, options, kept) if ranks.is_main else list
        shared, fresh = _cached(folder / "cache" / f"{key}.json", reference, ranks)
        found[BLOSUM, task.name] = [replace(record, task=task.name) for record in shared]  # another mode's fit
        counts[not fresh] += 1
        for model, scorer in scorers.items():
            key = cache_key(task.spec, files, fingerprints[model], options.bootstrap)
            found[model, task.name], fresh = _cached(
                folder / "cache" / f"{key}.json", partial(scorer.records, task, model), ranks
            )
            counts[not fresh] += 1
    records = [r for column in (BLOSUM, *models) for task in tasks for r in found[column, task.name]]
    table = _write_outputs(folder, models, tasks, records, fingerprints, hashes) if ranks.is_main else ""
    return EvaluateResult(records, fingerprints, table, counts[0], counts[1])


def reference_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """What the baselines of a supervised task depend on: its spec without its name, mode and ``finetune:``
    settings (``<name>-lora`` and ``<name>`` share their data, so their baselines are one fit; the records take the
    task's name when read)."""
    return {key: value for key, value in spec.items() if key not in ("name", "mode", "finetune")}


def _blosum_column(assay: Assay, rows: AssayRows) -> list[float]:
    return blosum_scores(rows.variants)


def _reference_records(task: Task, options: EvaluateOptions, kept: Path) -> list[Record]:
    """The one-hot linear model and the CNN from scratch beside supervised tasks (BLOSUM62 beside zero-shot ones is
    a column of ``assay_stream``); their predictions kept in ``kept`` for another ``--bootstrap``."""
    if task.kind == "perplexity":
        return []  # no reference column
    return baseline_records(task.name, task.spec, task.splits, task.classes, options.bootstrap, kept)


@dataclass(frozen=True)
class _Scorer:
    session: ModelSession
    network: PreTrainedModel
    options: EvaluateOptions
    fingerprint: str
    ranks: Ranks = ONE_PROCESS

    @classmethod
    def load(cls, model: str, tasks: Sequence[Task], options: EvaluateOptions, ranks: Ranks) -> _Scorer:
        """The model opened, every zero-shot wild type checked against its position limit (the error names the
        task and assay), then its weights loaded: once for the whole run."""
        session = ModelSession.open(model, options.dtype, session_device(ranks, options.device))
        for task in tasks:
            for assay in task.assays:
                tokens = len(session.tokenizer(assay.wildtype)["input_ids"])
                check_length_limit(session.config, tokens, f"task {task.name!r}, assay {assay.name} ({assay.path})")
        network, fingerprint = session.load(AutoModelForMaskedLM, "a masked-LM head (lm_head)")
        return cls(session, network, options, fingerprint, ranks)

    def column(self, model: str, method: ScoreMethod) -> Column:
        return Column(model, self.fingerprint, partial(self.scores, method))

    def records(self, task: Task, model: str) -> list[Record]:
        if not self.ranks.is_main:
            return []  # perplexity, probes and fine-tuning run on rank 0 (zero-shot scoring alone is split)
        if task.kind == "perplexity":
            return perplexity_records(task.name, task.sequences, model, self.session, self.network,
                                      self.options.max_tokens_per_batch, self.options.bootstrap)  # fmt: skip
        if task.mode != "probe":  # full / lora: fine-tuned by protconv finetune's run (evaluation.finetuned)
            return finetune_records(task, model, self.network, self.options)
        return probe_records(task.name, task.spec, task.splits, task.classes, model, self.session,
                             self.network, self.options.max_tokens_per_batch, self.options.bootstrap)  # fmt: skip

    def scores(self, method: ScoreMethod, assay: Assay, rows: AssayRows) -> list[float]:
        options = self.options
        return score_variants(
            self.session, self.network, assay.wildtype, rows.variants, method,
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
    table = markdown_table(records) + _long_assays_note(long_assays)
    (folder / "results.md").write_text(table, encoding="utf-8")
    (folder / "assays").mkdir(exist_ok=True)
    for task in tasks:
        write_csv(folder / "assays" / f"{task.name}.csv", [r for r in records if r.task == task.name], assays=True)
    write_plots(folder / "plots", records, models)
    return table


def _long_assays_note(names: Sequence[str]) -> str:
    """Said under the table: ESM-1v/ESM-2 scripts would crop these, protconv's own models ran them whole."""
    if not names:
        return ""
    return (f"\nAssays whose wild type is longer than {ESM_LIMIT} residues (ESM's limit; run whole here, a model "
            f"with a position limit refuses them naming it): {', '.join(names)}.\n")  # fmt: skip
