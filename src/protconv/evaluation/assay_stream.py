"""A zero-shot task run assay by assay: each assay is read once (``Assay.rows``), scored by every column (the
BLOSUM62 reference and each model, all loaded once for the run), its figures cached and written to the task's
per-assay CSV, and dropped before the next is read, so memory stays flat in the number of assays.

The metrics and their bootstrap run in one background thread (numpy releases the GIL) while the main thread goes
on scoring: the BLOSUM62 column's while the first model scores the same assay, a model's while the next model (or
the next assay) scores. At most two assays are alive at once: the one being scored and the one whose figures are
being finished. A killed run keeps every finished assay (``OUTPUT/cache/assays``) and a rerun scores only the rest.

On N ranks (``CachePlace.ranks``) every rank scores every column in the same order (a model's scoring splits its
masked copies across the ranks and gathers them); rank 0 alone reads and writes the caches, computes the figures
and writes the CSV, and the others follow its cache hits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from ..inference.distributed import ONE_PROCESS, Ranks
from .assays import Assay, AssayRows
from .results import Record, cache_key, load_cached, save_cached, write_csv
from .suite import Task
from .zero_shot import ZERO_SHOT_METRICS, Figure, TruthResamples, assay_metrics, proteingym_summary, type_means


@dataclass(frozen=True)
class Column:
    """A column of the zero-shot table: a model or a reference, named as in the table; ``identity`` (the weights'
    fingerprint, or the reference's name) keys its cache."""

    name: str
    identity: str
    scores: Callable[[Assay, AssayRows], list[float]]


@dataclass(frozen=True)
class CachePlace:
    """Where a zero-shot task's results are cached: one file per (task, column), and one per (assay, column)
    while the task is under way (keyed by the task as written, the assay file's hash and its wild type, and the
    number of bootstrap resamples: every record carries a stderr, so another ``--bootstrap`` computes anew)."""

    folder: Path
    task: Task
    hashes: dict[str, str]  # data file -> sha256
    bootstrap: int
    ranks: Ranks = ONE_PROCESS

    def of_task(self, identity: str) -> Path:
        files = [self.hashes[str(p)] for p in self.task.files]
        key = cache_key(self.task.spec, files, identity, self.bootstrap)
        return self.folder / f"{key}.json"

    def of_assay(self, assay: Assay, identity: str) -> Path:
        key = cache_key(self.task.spec, assay.name, assay.wildtype, self.hashes[str(assay.path)], identity,
                        self.bootstrap)  # fmt: skip
        return self.folder / "assays" / f"{key}.json"


def run_zero_shot(
    task: Task, columns: Sequence[Column], cache: CachePlace, bootstrap: int, per_assay_csv: Path
) -> dict[str, tuple[list[Record], bool]]:
    """Each column's records on ``task`` (per assay, per selection type, ProteinGym's summary) and whether they
    were computed in this run (else read whole from the cache)."""
    found = {column.name: load_cached(cache.of_task(column.identity), cache.ranks) for column in columns}
    todo = [column for column in columns if found[column.name] is None]
    done = {name: (records, False) for name, records in found.items() if records is not None}
    if not todo:
        return done
    finished = {column.name: found[column.name] or [] for column in columns}  # in the table's column order
    stream = _Stream(task, todo, cache, bootstrap, per_assay_csv, finished)
    per_assay = stream.run()
    for column in todo:
        records = per_assay[column.name]
        if cache.ranks.is_main:
            records += summary_records(task, column.name, records, bootstrap)
        save_cached(cache.of_task(column.identity), records, cache.ranks)
        done[column.name] = (records, True)
    return {column.name: done[column.name] for column in columns}


def summary_records(task: Task, column: str, per_assay: Sequence[Record], bootstrap: int) -> list[Record]:
    """The per-type means and ProteinGym's summary of one column's per-assay figures (a metric missing on some
    assay, as AUC without labels, is not summarised).

    The summary's stderr resamples assays; with one assay that has no spread, so the summary (then the assay's own
    figure) takes the assay's bootstrap stderr over its variants. A ``type:`` row has no stderr."""
    values: dict[str, list[float]] = {name: [] for name in ZERO_SHOT_METRICS}
    stderrs: dict[str, float | None] = {}
    for record in per_assay:
        values[record.metric].append(record.value)
        stderrs[record.metric] = record.stderr
    types = [assay.selection_type for assay in task.assays]
    records: list[Record] = []
    for metric, found in values.items():
        if len(found) != len(task.assays):
            continue
        for kind, mean in type_means(found, types).items():
            records.append(Record(task.name, column, f"type:{kind}", metric, mean, None))
        summary: Figure = proteingym_summary(found, types, max(bootstrap, 2) * 10)
        stderr = stderrs[metric] if len(found) == 1 else summary.stderr
        records.append(Record(task.name, column, None, metric, summary.value, stderr))
    return records


@dataclass
class _Pending:
    """An assay scored by every column still to do, its figures cached or under way in the background."""

    assay: Assay
    cached: dict[str, list[Record]]
    jobs: dict[str, Future[dict[str, Figure]]] = field(default_factory=dict)


@dataclass
class _Stream:
    task: Task
    columns: Sequence[Column]
    cache: CachePlace
    bootstrap: int
    per_assay_csv: Path
    finished: dict[str, list[Record]]  # every column in order, those read whole from the cache with their records

    def run(self) -> dict[str, list[Record]]:
        """Every assay in order, the figures of one finished while the next is scored; on an error (a bad assay
        file, an interrupt) the assays already scored are finished and kept before it propagates."""
        self.per_assay: dict[str, list[Record]] = {column.name: [] for column in self.columns}
        pending: _Pending | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="protconv-metrics") as pool:
            try:
                for assay in self.task.assays:
                    current = self._start(assay, pool)
                    previous, pending = pending, current
                    if previous is not None:
                        self._finish(previous)
            except BaseException:
                if pending is not None:
                    with suppress(Exception):
                        self._finish(pending)
                raise
            if pending is not None:
                self._finish(pending)
        return self.per_assay

    def _start(self, assay: Assay, pool: ThreadPoolExecutor) -> _Pending:
        cached = {c.name: load_cached(self.cache.of_assay(assay, c.identity), self.cache.ranks) for c in self.columns}
        pending = _Pending(assay, {name: records for name, records in cached.items() if records is not None})
        missing = [column for column in self.columns if cached[column.name] is None]
        if missing:
            rows = assay.rows()
            shared = TruthResamples(rows.scores, self.bootstrap)  # one truth side for every column of the assay
            for column in missing:  # the reference first: its figures are computed while the models score
                scores = column.scores(assay, rows)
                if self.cache.ranks.is_main:
                    pending.jobs[column.name] = pool.submit(
                        assay_metrics, rows.scores, rows.bins, scores, self.bootstrap, shared=shared
                    )
        return pending

    def _finish(self, pending: _Pending) -> None:
        """Wait for the assay's figures, cache them per column, rewrite the task's per-assay CSV."""
        assay = pending.assay
        if not self.cache.ranks.is_main:
            return
        for column in self.columns:
            records = pending.cached.get(column.name)
            if records is None:
                figures = pending.jobs[column.name].result()
                records = [Record(self.task.name, column.name, assay.name, metric, figure.value, figure.stderr)
                           for metric, figure in figures.items()]  # fmt: skip
                save_cached(self.cache.of_assay(assay, column.identity), records)
            self.per_assay[column.name] += records
        shown = [r for name, done in self.finished.items() for r in self.per_assay.get(name, done)]
        self.per_assay_csv.parent.mkdir(parents=True, exist_ok=True)
        write_csv(self.per_assay_csv, shown, assays=True)
