"""``protconv embed --format parquet``: OUTPUT is a folder of Parquet shards, one row per record, for users who
train on embeddings with the Hugging Face stack (``datasets.load_dataset("parquet", data_files="OUT/*.parquet")``
or ``pandas.read_parquet("OUT")``).

Layout of the folder::

    OUT/.protconv_embeddings.json  the run's settings and model (what the HDF5 file's root attributes hold)
    OUT/part-000000.parquet        the records of chunk 0 (the FASTA's first ``chunk_size`` records), ...
    OUT/part-000000-r1of2.parquet  on N processes: rank 1's records of chunk 0 (each rank writes its own part)
        columns: id (string), index (int64: the record's position in the FASTA), length (int32: residues),
                 sequence_hash (string), then per included item and layer ``<item>_<layer>`` (``mean_last``,
                 ``cls_12``): mean/cls a fixed-size list of ``hidden`` floats, per_residue a list (residues) of
                 fixed-size lists of ``hidden`` floats; ``storage_dtype`` float32 or float16

Shards in name order are the FASTA's chunks in order; inside a shard rows come in batch order (longest first),
so sort by ``index`` for the FASTA's order. Each shard is written beside its name (``.part-....tmp``) and renamed
in whole, so a shard that exists is complete. Resuming: a rerun keeps a shard only if it holds exactly the
records of its chunk (ids, lengths, sequence hashes); a shard whose chunk changed is refused (or recomputed,
``recompute_changed``); shards past the FASTA's last chunk are kept with a warning (removed with
``drop_missing``). A killed run loses at most the chunk in progress.

On N processes (torchrun, accelerate launch) the chunks' batches are planned as for HDF5 and each rank writes
its part of each chunk; there is no merge: the folder of parts is the output. A rerun at any number of processes
keeps a chunk whose parts together hold exactly its records, and computes again a chunk that a killed rank left
incomplete (its parts removed first by rank 0, which holds the folder's lock).

This module knows Parquet only: what to compute, and when, is :mod:`protconv.inference.embed`'s.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: The file of the folder that holds the run's settings.
SETTINGS_FILE = ".protconv_embeddings.json"
#: ``part-<chunk>.parquet`` (one process), ``part-<chunk>-r<rank>of<ranks>.parquet`` (rank's part of a chunk).
_SHARD = re.compile(r"part-(\d{6})(-r\d+of\d+)?\.parquet")
#: The columns a rerun reads to check a shard (never the vectors).
_CHECKED = ["id", "length", "sequence_hash"]


@dataclass(frozen=True)
class RecordRow:
    """What a row says about its record besides the vectors."""

    id: str
    index: int
    length: int
    sequence_hash: str


def shard_name(chunk: int, part: str = "") -> str:
    return f"part-{chunk:06d}{part}.parquet"


def chunk_shards(folder: Path) -> dict[int, list[Path]]:
    """The complete shards of ``folder`` by chunk index (several for a chunk written by several ranks)."""
    if not folder.is_dir():
        return {}
    found: dict[int, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _SHARD.fullmatch(path.name)
        if match:
            found.setdefault(int(match.group(1)), []).append(path)
    return dict(sorted(found.items()))


def remove_temporaries(folder: Path) -> None:
    """A killed run's half-written shards (the caller holds the output's lock, so no writer owns them)."""
    for path in folder.glob(".part-*.tmp"):
        path.unlink(missing_ok=True)


def read_settings(folder: Path) -> dict | None:
    """The settings file's content, or None when the folder has none."""
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_settings(folder: Path, attributes: dict) -> None:
    folder.mkdir(exist_ok=True)
    temporary = folder / f".{SETTINGS_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(attributes, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, folder / SETTINGS_FILE)


def clear_folder(folder: Path) -> None:
    """What ``overwrite`` removes: this layout's files only (never anything else a user put in the folder)."""
    remove_temporaries(folder)
    for paths in chunk_shards(folder).values():
        for path in paths:
            path.unlink()
    (folder / SETTINGS_FILE).unlink(missing_ok=True)


def shard_records(path: Path) -> list[tuple[str, int, str]]:
    """``(id, length, sequence_hash)`` of each row of a shard, in row order."""
    table = pq.read_table(path, columns=_CHECKED)
    columns = [table.column(name).to_pylist() for name in _CHECKED]
    return list(zip(*columns, strict=True))


def schema(layers: Sequence[str], include: Sequence[str], hidden: int, storage_dtype: str, settings: dict) -> pa.Schema:
    value = pa.float16() if storage_dtype == "float16" else pa.float32()
    vector = pa.list_(value, hidden)
    fields = [
        pa.field("id", pa.string()),
        pa.field("index", pa.int64()),
        pa.field("length", pa.int32()),
        pa.field("sequence_hash", pa.string()),
    ]
    for item in include:
        kind = pa.list_(vector) if item == "per_residue" else vector
        fields += [pa.field(f"{item}_{layer}", kind) for layer in layers]
    return pa.schema(fields, metadata={"protconv": json.dumps(settings, default=str)})


class ShardWriter:
    """One chunk's shard, written batch by batch (a row group each, so memory holds one batch) into a temporary
    beside it and renamed in by :meth:`finish`; :meth:`abort` removes the temporary."""

    def __init__(
        self, folder: Path, chunk: int, table_schema: pa.Schema, compression: str, dtype: np.dtype, part: str = ""
    ) -> None:
        self.path = folder / shard_name(chunk, part)
        self.temporary = folder / f".{shard_name(chunk, part)}.{os.getpid()}.tmp"
        self.schema, self.dtype = table_schema, dtype
        # Dictionaries and min/max statistics of float vectors cost 5x the write and help no reader: only the
        # record columns keep statistics (ids are unique: no dictionary either).
        self.writer = pq.ParquetWriter(self.temporary, table_schema, compression=compression, use_dictionary=False,
                                       write_statistics=["id", "index", "length"])  # fmt: skip

    def write(self, rows: list[RecordRow], arrays: dict[str, list[np.ndarray]], layers: Sequence[str]) -> None:
        """``arrays[item][record]``: ``(n_layers, hidden)`` or ``(n_layers, residues, hidden)`` per record."""
        columns: dict[str, pa.Array] = {
            "id": pa.array([row.id for row in rows], pa.string()),
            "index": pa.array([row.index for row in rows], pa.int64()),
            "length": pa.array([row.length for row in rows], pa.int32()),
            "sequence_hash": pa.array([row.sequence_hash for row in rows], pa.string()),
        }
        for item, values in arrays.items():
            for j, layer in enumerate(layers):
                name = f"{item}_{layer}"
                columns[name] = self._column([value[j] for value in values], self.schema.field(name).type)
        self.writer.write_batch(pa.record_batch(list(columns.values()), schema=self.schema))

    def _column(self, values: list[np.ndarray], kind: pa.DataType) -> pa.Array:
        if pa.types.is_fixed_size_list(kind):
            flat = np.concatenate([v.reshape(-1) for v in values]).astype(self.dtype, copy=False)
            return pa.FixedSizeListArray.from_arrays(pa.array(flat), kind.list_size)
        vector = kind.value_type
        flat = np.concatenate([v.reshape(-1) for v in values]).astype(self.dtype, copy=False)
        inner = pa.FixedSizeListArray.from_arrays(pa.array(flat), vector.list_size)
        offsets = np.concatenate([[0], np.cumsum([v.shape[0] for v in values])]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), inner, type=kind)

    def finish(self) -> None:
        self.writer.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.temporary.unlink(missing_ok=True)
