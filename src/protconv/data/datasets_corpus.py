"""Proteins from a Hugging Face ``datasets`` dataset: a Hub name, a local folder (Parquet, Arrow, CSV, JSON, or a
``save_to_disk`` folder) or a single local file (``.parquet``, ``.csv``/``.tsv``, ``.json``/``.jsonl``, ``.arrow``,
optionally compressed), one string column of sequences. :func:`load` and :func:`load_splits` are the one place that
turns such a name into ``datasets`` objects, for pretraining and fine-tuning alike.

Two ways to read one:

- :class:`DatasetRecords` (the default): the split is prepared once by ``datasets`` as memory-mapped Arrow files, so
  a process can take any rows at random. Lengths, the held-out hash and the validity of every row are computed
  with Arrow compute kernels (a Python loop only for the hash), cached beside the FASTA indexes, and the pipeline
  plans over them exactly as over FASTA records: a global shuffle, and each process reads only its own rows.
- :class:`StreamingDataset` (``--streaming``): for corpora too large to prepare locally. Rows arrive in the order
  of ``IterableDataset.shuffle(seed, buffer_size)`` (shards shuffled, then a buffer of ``shuffle_buffer`` rows
  sampled from), re-seeded every epoch; batches are cut from pools of the stream as before. Every process reads
  the whole stream and keeps its share of the batches (no random access), and a resumed run re-reads the stream
  up to its position: prefer the prepared form whenever the data fits on local disk.

``datasets`` is imported only when a dataset is used (``pip install 'protconv[datasets]'``). Rows are checked like
FASTA records (upper-cased, whitespace dropped, characters outside the alphabet handled by ``invalid_sequences``);
an empty or missing value is an invalid row.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence
from .choices import check_choice
from .fasta_corpus import InvalidPolicy, Side
from .fasta_index import new_staging
from .held_out import held_out_by_hash, in_held_out_split, split_crc

logger = logging.getLogger(__name__)

_CACHE_VERSION = 1
_VALID_ROW = "^[A-Za-z*-]+$"  # every ASCII letter is a residue letter (20 standard + BZXJOU)
_LOGGED_SKIPS = 5


def import_datasets() -> Any:
    """The ``datasets`` module, or an error that says how to install it."""
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "--dataset_name needs the `datasets` library: pip install 'protconv[datasets]' (or pip install datasets)"
        ) from error
    return datasets


def load(name: str, config: str | None, split: str, streaming: bool = False) -> Any:
    """A ``Dataset`` (or ``IterableDataset`` when ``streaming``): ``load_from_disk`` for a ``save_to_disk``
    folder, the matching builder for a single local file (whose one split is ``train``), ``load_dataset`` for
    anything else (Hub name, or a local folder of Parquet, Arrow, CSV, JSON)."""
    datasets = import_datasets()
    path = _local_path(name)
    if _is_saved_folder(path):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{name}: no split {split!r}; it has {', '.join(loaded)}")
            loaded = loaded[split]
        return loaded.to_iterable_dataset() if streaming else loaded
    try:
        if path.is_file():
            builder, options = file_builder(path, config)
            return datasets.load_dataset(builder, split=split, streaming=streaming, **options)
        return datasets.load_dataset(_source(name, path), config, split=split, streaming=streaming)
    except ValueError as error:
        if "split" in str(error).lower():
            raise ValueError(f"{name}: cannot load split {split!r} ({error})") from error
        raise


def load_splits(name: str, config: str | None = None) -> dict[str, Any]:
    """Every split of a dataset, by name, as prepared (memory-mapped) ``Dataset`` objects. A single file, and a
    ``save_to_disk`` folder of one ``Dataset``, hold one split, ``train``."""
    datasets = import_datasets()
    path = _local_path(name)
    if _is_saved_folder(path):
        loaded = datasets.load_from_disk(str(path))
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    if path.is_file():
        builder, options = file_builder(path, config)
        return dict(datasets.load_dataset(builder, **options))
    return dict(datasets.load_dataset(_source(name, path), config))


#: Builders of ``datasets`` for single local files, by extension (after a compression suffix).
_FILE_BUILDERS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".arrow": "arrow",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")


def file_builder(path: Path, config: str | None = None) -> tuple[str, dict[str, Any]]:
    """The ``load_dataset`` builder and options for one local file: ``load_dataset`` itself only takes folders and
    Hub names, and would look a file's name up on the Hub (with retries) before failing."""
    if config is not None:
        raise ValueError(f"{path}: --dataset_config_name {config!r} applies to Hub datasets, not to a local file")
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in _FILE_BUILDERS:
        raise ValueError(
            f"{path}: cannot tell the file's format from its extension {suffix!r}; "
            f"expected one of {', '.join(_FILE_BUILDERS)} (optionally {'/'.join(_COMPRESSION_SUFFIXES)})"
        )
    options: dict[str, Any] = {"data_files": {"train": str(path)}}
    if _FILE_BUILDERS[suffix] == "csv":
        # Cells as written, as protconv's own CSV reader takes them: pandas would turn "NA" (a protein: Asn-Ala)
        # or "null" into a missing value, and an empty label into NaN rather than a missing label.
        options["keep_default_na"] = False
        if suffix in (".tsv", ".tab"):
            options["sep"] = "\t"
    return _FILE_BUILDERS[suffix], options


def _local_path(name: str) -> Path:
    """``name`` as a path; one that is plainly meant as a local path (it starts with ``/``, ``.`` or ``~``, or ends
    in a data file's extension) but does not exist is an error here, not a Hub lookup with retries."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    looks_local = name.startswith(("/", ".", "~")) or any(name.lower().endswith(s) for s in _FILE_BUILDERS)
    if looks_local:
        raise FileNotFoundError(errno.ENOENT, "no such file or folder (a dataset given as a local path)", name)
    return path


def _source(name: str, path: Path) -> str:
    """What ``load_dataset`` is given: the expanded path of a local folder, else the name as written."""
    return str(path) if path.is_dir() else name


def _is_saved_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def _display(name: str, split: str) -> str:
    return f"{name} ({split})"


class DatasetRecords:
    """Rows of one split of a dataset as a record source (see the module docstring), with the policies and hash
    split of :class:`~protconv.data.fasta_corpus.FastaRecords`. Record ``i`` is the ``i``-th kept row."""

    def __init__(
        self,
        name: str,
        config: str | None = None,
        split: str = "train",
        column: str = "sequence",
        invalid: InvalidPolicy = "error",
        held_out_fraction: float = 0.0,
        side: Side = "all",
        split_seed: int = 0,
        cache_dir: str | Path | None = None,
        dataset: Any = None,
    ) -> None:
        check_choice("invalid", invalid, InvalidPolicy)
        dataset = load(name, config, split) if dataset is None else dataset
        if column not in dataset.column_names:
            raise ValueError(
                f"{_display(name, split)}: no column {column!r} (columns: {', '.join(dataset.column_names)}); "
                "pass --sequence_column"
            )
        if getattr(dataset, "_indices", None) is not None:
            dataset = dataset.flatten_indices()
        self.name = _display(name, split)
        self.unknown: UnknownPolicy = "X" if invalid == "X" else "error"
        self.column = dataset.data.column(column)
        self.reads = 0
        self.skipped = 0
        self._digest: str | None = None
        key = f"{getattr(dataset, '_fingerprint', None)}-{column}"
        arrays = self._arrays(cache_dir, key, need_hashes=side != "all" and held_out_fraction > 0)
        self._lengths, self._slow = arrays["lengths"], arrays["slow"]
        keep = np.ones(len(self._lengths), dtype=bool)
        bad = arrays["invalid"]
        if len(bad):
            if invalid == "error":
                raise self.error(int(bad[0]))
            if invalid == "X":
                empty = bad[self._lengths[bad] == 0]
                if len(empty):
                    raise self.error(int(empty[0]))
            else:
                keep[bad] = False
                for row in bad[:_LOGGED_SKIPS].tolist():
                    logger.warning("skipping invalid row: %s", self.error(row))
                self.skipped = len(bad)
        if side != "all" and held_out_fraction > 0:
            held = held_out_by_hash(arrays["crc32"], held_out_fraction)
            if split_seed != 0:
                held = np.array([in_held_out_split(s, held_out_fraction, split_seed) for s in self._all(keep)])
            keep &= held if side == "validation" else ~held
        elif side == "validation":
            keep[:] = False
        if not keep.any() and side != "validation":
            raise InvalidSequenceError(f"{self.name}: no usable sequences in column {column!r}")
        self._kept = np.flatnonzero(keep)
        self.lengths = self._lengths[self._kept].astype(np.int64)

    def __len__(self) -> int:
        return len(self._kept)

    # ------------------------------------------------------------------------------------------- reading
    def read(self, records: np.ndarray) -> list[str]:
        """Cleaned residues of ``records`` (this source's numbering): one Arrow ``take`` of those rows."""
        import pyarrow as pa

        rows = self._kept[np.asarray(records, dtype=np.int64)]
        self.reads += len(rows)
        values = self.column.take(pa.array(rows)).to_pylist()
        slow = set(self._slow[np.isin(self._slow, rows)].tolist()) if len(self._slow) else set()
        return [
            self._clean(value, row) if row in slow else value.upper()
            for value, row in zip(values, rows.tolist(), strict=True)
        ]

    def _clean(self, value: str | None, row: int) -> str:
        try:
            return clean_sequence(value or "", record=f"{self.name} row {row}", unknown=self.unknown)
        except InvalidSequenceError:
            raise self.error(row) from None

    def error(self, row: int) -> InvalidSequenceError:
        """The error of an invalid ``row`` (dataset, split, row, character, position)."""
        value = self.column[row].as_py()
        try:
            clean_sequence(value or "", record=f"{self.name} row {row}")
        except InvalidSequenceError as error:
            return error
        raise AssertionError(f"row {row} is valid")  # pragma: no cover

    def _all(self, keep: np.ndarray) -> list[str]:
        return [self._clean(v, i) if keep[i] else "" for i, v in enumerate(self.column.to_pylist())]

    def record_ids(self) -> list[str]:
        return [f"row:{row}" for row in self._kept.tolist()]

    def digests(self) -> dict[str, str]:
        """``{"name (split)": SHA-256 of the column}``: what a checkpoint records so that a resumed run refuses
        rows appended, removed or edited since (the ``datasets`` fingerprint of a saved folder would not change)."""
        if self._digest is None:
            self._digest = column_digest(self.column)
        return {self.name: self._digest}

    # --------------------------------------------------------------------------------- per-row arrays, cached
    def _arrays(self, cache_dir: str | Path | None, key: str, need_hashes: bool) -> dict[str, np.ndarray]:
        folder = Path(cache_dir) / "datasets" / key if cache_dir is not None and not key.startswith("None") else None
        names = ("lengths", "slow", "invalid") + (("crc32",) if need_hashes else ())
        if folder is not None and all((folder / f"{n}.npy").is_file() for n in names):
            try:
                meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
                if meta.get("version") == _CACHE_VERSION and meta.get("rows") == len(self.column):
                    return {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in names}
            except (OSError, ValueError) as error:
                logger.warning("ignoring unreadable dataset cache %s (%s)", folder, error)
        arrays = self._compute(need_hashes)
        if folder is not None:
            _save_arrays(folder, arrays, {"version": _CACHE_VERSION, "rows": len(self.column)})
        return arrays

    def _compute(self, need_hashes: bool) -> dict[str, np.ndarray]:
        import pyarrow.compute as pc

        column = self.column
        valid = pc.fill_null(pc.match_substring_regex(column, pattern=_VALID_ROW), False).to_numpy(zero_copy_only=False)
        lengths = pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        slow = np.flatnonzero(~valid)
        invalid = []
        cleaned: dict[int, str] = {}
        for row in slow.tolist():
            value = column[row].as_py() or ""
            try:
                cleaned[row] = clean_sequence(value)
            except InvalidSequenceError:
                invalid.append(row)
                try:
                    cleaned[row] = clean_sequence(value, unknown="X")
                except InvalidSequenceError:
                    cleaned[row] = ""
            lengths[row] = len(cleaned[row])
        arrays = {
            "lengths": lengths.astype(np.uint32),
            "slow": slow.astype(np.int64),
            "invalid": np.asarray(invalid, dtype=np.int64),
        }
        if need_hashes:
            start, hashes, row = split_crc(), np.zeros(len(lengths), dtype=np.uint32), 0
            for chunk in column.chunks:
                for value in chunk.to_pylist():
                    text = cleaned.get(row) if row in cleaned else value.upper()
                    hashes[row] = zlib.crc32(text.encode(), start) if text else 0
                    row += 1
            arrays["crc32"] = hashes
        return arrays


def column_digest(column: Any) -> str:
    """SHA-256 of a string column's values, in row order, independent of how Arrow chunks it: the UTF-8 bytes of
    all values and, separately, each value's byte length (a null counts as empty). One pass over the column's
    buffers (~1.2 s per GB), without a Python loop over rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data, sizes = hashlib.sha256(), hashlib.sha256()
    for chunk in column.chunks:
        if chunk.null_count:  # a null's slot may span bytes: make it an empty value
            chunk = pc.fill_null(chunk, "")
        if not pa.types.is_large_string(chunk.type):
            chunk = chunk.cast(pa.large_string())
        if len(chunk) == 0:
            continue
        buffers = chunk.buffers()
        offsets = np.frombuffer(buffers[1], dtype="<i8")[chunk.offset : chunk.offset + len(chunk) + 1]
        if buffers[2] is not None:
            data.update(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])])
        sizes.update(np.diff(offsets).astype("<i8").tobytes())
    return hashlib.sha256(data.digest() + sizes.digest()).hexdigest()


def _save_arrays(folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` into ``folder`` through a temporary folder renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = new_staging(folder)
    try:
        for name, values in arrays.items():
            np.save(staging / f"{name}.npy", values)
        (staging / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():
            raise


class StreamingDataset:
    """A streamed split (``--streaming``): cleaned sequences in shuffle-buffer order, re-seeded each epoch.

    ``shuffle_buffer`` 0 keeps the stream's order (used for validation). ``held_out_fraction``/``side`` split by
    the same sequence hash as everywhere else; ``limit`` stops after that many kept sequences."""

    def __init__(
        self,
        name: str,
        config: str | None = None,
        split: str = "train",
        column: str = "sequence",
        invalid: InvalidPolicy = "error",
        held_out_fraction: float = 0.0,
        side: Side = "all",
        seed: int = 0,
        shuffle_buffer: int = 10_000,
        limit: int | None = None,
        dataset: Any = None,
    ) -> None:
        self.name = _display(name, split)
        self.dataset = load(name, config, split, streaming=True) if dataset is None else dataset
        self.column = column
        self.invalid = invalid
        self.held_out_fraction = held_out_fraction
        self.side = side
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.limit = limit
        self.skipped = 0
        self.epoch = 0

    def __iter__(self) -> Iterator[str]:
        stream = self.dataset
        if self.shuffle_buffer > 0:
            stream = stream.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
            stream.set_epoch(self.epoch)
        self.skipped, kept = 0, 0
        unknown: UnknownPolicy = "X" if self.invalid == "X" else "error"
        for row, example in enumerate(stream):
            if self.column not in example:
                raise ValueError(f"{self.name}: no column {self.column!r} (columns: {', '.join(example)})")
            try:
                sequence = clean_sequence(example[self.column] or "", record=f"{self.name} row {row}", unknown=unknown)
            except InvalidSequenceError as error:
                if self.invalid != "skip":
                    raise
                self.skipped += 1
                if self.skipped <= _LOGGED_SKIPS:
                    logger.warning("skipping invalid row: %s", error)
                continue
            if self.side != "all":
                held = in_held_out_split(sequence, self.held_out_fraction)
                if held != (self.side == "validation"):
                    continue
            yield sequence
            kept += 1
            if self.limit is not None and kept >= self.limit:
                return
