"""Evaluation results: tidy records, the per-task cache that lets a rerun (or a killed run) continue, and the
tables (tasks x models, reference columns beside, the best of each row marked)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..inference.distributed import ONE_PROCESS, Ranks
from ..inference.gather import main_decides
from ..inference.inputs import atomic_text_output


@dataclass(frozen=True)
class Record:
    task: str
    model: str
    assay: str | None  # None: a task-level row; "type:<name>": a selection type's mean
    metric: str
    value: float
    stderr: float | None


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def write_json(path: Path, payload: Any) -> None:
    """Atomically: a killed run leaves the old file or the new one, never half of one."""
    with atomic_text_output(path) as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")


def load_cached(path: Path, ranks: Ranks = ONE_PROCESS) -> list[Record] | None:
    """The cached records at ``path``, or None. On N ranks rank 0 alone reads OUTPUT (it may be on no shared file
    system) and every rank follows its hit or miss, so that all run the same scoring steps; the others get ``[]``
    for a hit (they write nothing)."""
    found = [Record(**row) for row in json.loads(path.read_text(encoding="utf-8"))] if (
        ranks.is_main and path.is_file()) else None  # fmt: skip
    return (found or []) if main_decides(ranks, found is not None) else None


def save_cached(path: Path, records: Sequence[Record], ranks: Ranks = ONE_PROCESS) -> None:
    if not ranks.is_main:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, [asdict(record) for record in records])


def _rows(records: Sequence[Record], assays: bool) -> tuple[list[tuple[str, str, str]], list[str], dict]:
    keep = [r for r in records if (r.assay is not None and not r.assay.startswith("type:")) == assays]
    rows = list(dict.fromkeys((r.task, r.assay or "", r.metric) for r in keep))
    columns = list(dict.fromkeys(r.model for r in keep))
    cells = {(r.task, r.assay or "", r.metric, r.model): r for r in keep}
    return rows, columns, cells


def write_csv(path: Path, records: Sequence[Record], assays: bool = False) -> None:
    rows, columns, cells = _rows(records, assays)
    with atomic_text_output(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["task", "assay", "metric", *columns, *(f"{c} stderr" for c in columns)])
        for row in rows:
            found = [cells.get((*row, c)) for c in columns]
            writer.writerow([*row, *(_number(r.value if r else None) for r in found),
                             *(_number(r.stderr if r else None) for r in found)])  # fmt: skip


def markdown_table(records: Sequence[Record]) -> str:
    """Task-level and selection-type rows; the best value of each row in bold (lower is better for perplexity)."""
    rows, columns, cells = _rows(records, False)
    lines = ["| task | assay | metric | " + " | ".join(columns) + " |", "|---" * (3 + len(columns)) + "|"]
    for row in rows:
        found = [cells.get((*row, c)) for c in columns]
        values = [r.value for r in found if r is not None]
        best = (min if row[2] == "perplexity" else max)(values) if values else None
        shown = [_cell(r, best) for r in found]
        lines.append(f"| {row[0]} | {row[1]} | {row[2]} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def _cell(record: Record | None, best: float | None) -> str:
    if record is None:
        return ""
    text = f"{record.value:.3f}" + (f" ± {record.stderr:.3f}" if record.stderr is not None else "")
    return f"**{text}**" if record.value == best else text


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)
