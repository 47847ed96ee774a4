"""Protein embeddings from a FASTA file into an HDF5 file, streamed, resumable, with whole sequences.

Layout of the output (h5py)::

    /                       attrs: format, model, model_fingerprint, model_type, protconv_version,
                                   layers, include, dtype, hidden_size, storage_dtype, compression
    /ids                    (records,) variable-length UTF-8: every record id in file order (the FASTA's order);
                            written last, at the end of a run: read it for the file's order
    /mean                   (records, n_layers, hidden): the stacked means, row i the record ids[i] (only with
                            stack), so a whole file loads in one read
    /<record id>            one group per FASTA record (the first word of its header)
        mean                (n_layers, hidden): the mean over the record's residues
        per_residue         (n_layers, residues, hidden): residues only, never padding or special tokens
        cls                 (n_layers, hidden): the <cls> token's state (only with include=cls)
        attrs: id (the record id), layers, sequence_hash (blake2b-128 hex of the residues), length (residues)

HDF5 lists groups by name, not in the FASTA's order: ``ids`` gives that order (then any records kept from an
earlier FASTA, see resuming). Values are computed in float32 (or ``dtype``) and stored as ``storage_dtype``
(float32, or float16 at half the size); ``compression`` (gzip or lzf, byte-shuffled) applies to the
per-residue datasets, chunked one layer and up to ``CHUNK_BYTES`` per chunk, and to the stack. Both are settings
of the file, like ``layers``: a resume with other values is refused. A file of a version that recorded neither
is read as float32, uncompressed.

``layers`` names what each row of the leading axis holds (it is present even for one layer): ``"last"`` is the
model's ``last_hidden_state`` (the final LayerNorm of the last block's output, what ``pooler_output`` pools and the
heads read; the default), and an integer ``i`` is ``hidden_states[i]``: 0 the embedding output, ``n`` the output
of block ``n`` before the final LayerNorm. Negative indices count from the end as in Python and are stored
resolved (``-1`` of a 16-layer model is stored as ``"16"``).

``mean`` is always the mean over residues (``pooling.residue_mask``), whatever the model's ``config.pooling``: for
a model with ``pooling="mean"`` the default ``mean`` equals ``AutoModel(...)(**one_sequence).pooler_output``.
For a ``pooling="cls"`` model, whose ``pooler_output`` is the ``<cls>`` state, ask for ``include=cls``.

A group name is the record id with ``%`` and ``/`` written ``%25`` and ``%2F`` (HDF5 reads ``/`` as a path), and
a record named like a root dataset (``ids``, ``mean``) with its first letter escaped (``%69ds``); the ``id``
attribute holds the id unchanged.

Resuming: each batch's groups are written completely (``length`` last) and the file is flushed, with Ctrl-C and
SIGTERM held until then. Re-running the same command on a killed run's file drops any incomplete group, skips
the records already present and computes the rest; a file made with another model (compared by a fingerprint of
the weights' values, so a moved folder still matches), other layers, other includes or another dtype is refused.
A record is "already present" only if its stored length and ``sequence_hash`` match the FASTA record: a record
whose sequence changed is refused (naming the id and both files) unless ``recompute_changed``, which replaces it;
records in the file but no longer in the FASTA are reported (count and first ids) and kept, or removed with
``drop_missing``. A file written by a protconv that stored no hashes cannot be checked and is refused.
``ids`` (and the stack) are removed when a run first adds or removes a record and written again when it ends, so
a file without ``ids`` is a killed run's; a rerun with nothing to do keeps them as they are. On N processes rank
0 writes them after the shard merge, in the FASTA's order (never the order records were finished in).

``output_format="parquet"`` writes a folder of Parquet shards instead (:mod:`protconv.inference.embed_parquet`).

The output is locked for the whole run (:class:`protconv.file_guards.OutputFileLock`), ``overwrite`` included,
and may not be one of the run's inputs (the FASTA file, a file of the model folder).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import h5py
import numpy as np
import torch
from h5py import h5a, h5d, h5g, h5o, h5p, h5s, h5t, h5z
from transformers import AutoModel, PreTrainedModel

from ..data.choices import check_choice
from ..data.fasta import DuplicateIds, FastaRecord
from ..data.fasta_index import FastaIndex, open_index
from ..file_guards import OutputFileLock
from ..progress import TokenRate, token_rate_bar
from ..tokenization.encoding import SequenceEncoder
from ..tokenization.validation import UnknownPolicy
from .common import (
    DEFAULT_MAX_TOKENS,
    DtypeName,
    InferenceInputError,
    ModelSession,
    check_positive,
    chunks,
    deferred_interrupts,
    dtype_name,
    package_version,
    plan_batches,
    release_memory,
    residue_positions,
)
from .distributed import (
    ONE_PROCESS,
    PlannedBatch,
    Ranks,
    broadcast_bytes,
    detect_ranks,
    exit_hook,
    find_shards,
    pad_to_width,
    plan_chunks,
    process_group,
    rank_device,
    shard_path,
    step,
)
from .inputs import (
    PendingRecords,
    check_duplicate_ids,
    check_input_file,
    check_not_inputs,
    first_ids,
    index_cache,
    pending_records,
    rank_records,
    read_records,
    scan_fasta,
)

if TYPE_CHECKING:
    import pyarrow as pa

try:
    from . import embed_parquet as parquet
except ImportError:  # pyarrow is missing: only --format parquet needs it (_check_parquet_options says so)
    parquet = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FORMAT = "protconv-embeddings/1"
LAST = "last"
#: What ``include`` may name for each record (see the module notes).
EmbedItem = Literal["mean", "per_residue", "cls"]
INCLUDES: tuple[EmbedItem, ...] = get_args(EmbedItem)
DEFAULT_CHUNK_SIZE = 10_000
#: The file attribute naming how each group's ``sequence_hash`` is computed (absent in files of older versions).
HASH_NAME = "blake2b-128"
#: File attributes that must match for a run to continue an existing output file.
_SETTINGS = ("format", "layers", "include", "dtype", "storage_dtype", "compression")
#: The settings files of older versions lack, read as what those versions wrote (so such a file still continues).
_OLD_DEFAULTS = {"storage_dtype": "float32", "compression": "none"}
#: How values are stored: computation is float32 (or ``dtype``) either way, this is the type on disk.
StorageDtype = Literal["float32", "float16"]
#: h5py's filters for the per-residue datasets (``none``: contiguous, as before).
Compression = Literal["none", "gzip", "lzf"]
#: What OUTPUT is: one HDF5 file (the default), or a folder of Parquet shards (``embed_parquet``).
OutputFormat = Literal["hdf5", "parquet"]
#: Root datasets (not record groups): ``ids`` (every record, FASTA order), and with ``stack`` the ``mean`` matrix.
IDS, STACK = "ids", "mean"
_RESERVED = (IDS, STACK)
#: The most bytes a chunk of a compressed per-residue dataset holds (one layer, whole proteins up to this size).
CHUNK_BYTES = 1 << 20
#: Records per read/write when the stacked matrix is built.
_STACK_BLOCK = 4096
#: The most memory HDF5's metadata cache of the output may hold: its default grows to 32 MiB as the file gains
#: groups (a run's resident size grew with the record count); what is kept in memory, never what is written.
METADATA_CACHE_BYTES = 1 << 20
#: oneDNN's primitive cache holds a compiled kernel per convolution/matmul shape (1024 by default): with a new
#: padded width almost every batch it only grows. Read once, at the process's first oneDNN call.
ONEDNN_CACHE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
#: HDF5's "unable to lock file" error (a word, not "sblock" inside a truncated file's message).
_LOCKED = re.compile(r"\block", re.IGNORECASE)


class EmbeddingFileError(FileExistsError):
    """The output file exists but cannot be continued: not a protconv embeddings file, damaged, or made with
    another model or other settings."""


@dataclass(frozen=True)
class EmbedResult:
    output: Path
    records: int  # records in the FASTA file
    written: int  # records computed by this run
    skipped: int  # records already in the output file (a resumed run)
    seconds: float


@dataclass(frozen=True)
class Storage:
    """How the values are written: ``storage_dtype`` and ``compression`` are file settings (a resume must match
    them); ``stack`` only asks for the stacked ``mean`` matrix at the end of this run; ``output_format`` is what
    OUTPUT is."""

    storage_dtype: StorageDtype = "float32"
    compression: Compression = "none"
    stack: bool = False
    output_format: OutputFormat = "hdf5"

    def __post_init__(self) -> None:
        for name, value, alias in (
            ("--storage_dtype", self.storage_dtype, StorageDtype),
            ("--compression", self.compression, Compression),
            ("--format", self.output_format, OutputFormat),
        ):
            try:
                check_choice(name, value, alias)
            except ValueError as error:
                raise InferenceInputError(str(error)) from None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.storage_dtype)


def parse_include(include: str | Sequence[str]) -> tuple[str, ...]:
    items = _split(include)
    bad = [item for item in items if item not in INCLUDES]
    if bad or not items:
        raise InferenceInputError(f"--include: choose among {', '.join(INCLUDES)} (comma-separated), got {include!r}")
    if len(set(items)) != len(items):
        raise InferenceInputError(f"--include: {include!r} names an item twice")
    return tuple(item for item in INCLUDES if item in items)  # one canonical order: resuming ignores the order


def parse_layers(layers: str | int | Sequence[str | int] | None, num_hidden_layers: int) -> tuple[str, ...]:
    """Layer names as stored: ``"last"``, or ``hidden_states`` indices resolved to 0..num_hidden_layers."""
    if layers is None:
        return (LAST,)
    count = num_hidden_layers + 1  # hidden_states: the embedding output, then every block's output
    resolved: list[str] = []
    for item in _split(layers):
        if item.lower() == LAST:
            resolved.append(LAST)
            continue
        try:
            index = int(item)
        except ValueError:
            raise InferenceInputError(
                f"--layers: {item!r} is neither 'last' nor an integer index of hidden_states"
            ) from None
        if not -count <= index < count:
            raise InferenceInputError(
                f"--layers: index {index} out of range; this model has hidden_states 0..{count - 1} "
                f"(or -{count}..-1; 'last' is the final LayerNorm output)"
            )
        resolved.append(str(index % count))
    if not resolved:
        raise InferenceInputError("--layers: empty list")
    if len(set(resolved)) != len(resolved):
        raise InferenceInputError(f"--layers: {layers!r} names the same layer twice (after resolving negative indices)")
    return tuple(resolved)


def _split(value: str | int | Sequence[str | int]) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, int):
        return [str(value)]
    return [str(item).strip() for item in value]


def group_name(record_id: str) -> str:
    """The HDF5 group name of a record id (``%`` -> ``%25``, ``/`` -> ``%2F``; ``.``/``..`` and the root
    datasets' names escaped)."""
    name = record_id.replace("%", "%25").replace("/", "%2F")
    if name in _RESERVED:  # a record named like a root dataset: its first letter escaped (``ids`` -> ``%69ds``)
        return f"%{ord(name[0]):02X}{name[1:]}"
    return name.replace(".", "%2E") if name in (".", "..") else name


def embed(
    model: str | Path,
    fasta: str | Path,
    output: str | Path,
    *,
    include: str | Sequence[str] = "mean",
    layers: str | int | Sequence[str | int] | None = None,
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
    dtype: DtypeName | torch.dtype = "float32",
    device: str | torch.device | None = None,
    unknown: UnknownPolicy = "error",
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    duplicate_ids: DuplicateIds = "error",
    recompute_changed: bool = False,
    drop_missing: bool = False,
    storage_dtype: StorageDtype = "float32",
    compression: Compression = "none",
    stack: bool = False,
    output_format: OutputFormat = "hdf5",
) -> EmbedResult:
    """Embed every record of ``fasta`` with ``model`` (a folder or a Hub id) into the HDF5 file ``output``.

    ``include``: ``mean`` (default), ``per_residue`` and/or ``cls`` (a list or a comma-separated string).
    ``layers``: ``None`` for the final representation (``"last"``), else ``"last"`` and/or ``hidden_states``
    indices (negative ones count from the end). ``max_tokens_per_batch`` counts padding and special tokens; a
    longer sequence runs alone. ``unknown``: ``"error"`` (a character outside the alphabet is an error naming the
    record and position) or ``"X"`` (mapped to X). ``overwrite`` replaces an existing ``output`` instead of
    continuing it. Records are read ``chunk_size`` at a time, so memory does not grow with the file.
    ``duplicate_ids``: a repeated record id is an ``error`` (default), or the later record is ``skip``-ped or
    ``rename``-d ``<id>#2``. ``recompute_changed`` / ``drop_missing``: see the module notes on resuming.
    ``storage_dtype`` (``float32``/``float16``) is the type on disk (computation is unchanged), ``compression``
    (``none``/``gzip``/``lzf``) the filter of the per-residue datasets; ``stack`` also writes the root ``mean``
    matrix (records x layers x hidden, rows aligned with ``ids``). ``output_format="parquet"``: OUTPUT is a folder
    of Parquet shards instead (:mod:`protconv.inference.embed_parquet`).

    The FASTA file is validated completely (characters, duplicate or missing ids, lengths a model with absolute
    positions cannot run) before the model is loaded. See the module documentation for the file layout.
    """
    started = time.perf_counter()
    os.environ.setdefault(ONEDNN_CACHE, "0")  # before any model work (see ONEDNN_CACHE); a user's value wins
    storage = Storage(storage_dtype, compression, stack, output_format)
    fasta, output = _checked_paths(fasta, output, folder=output_format == "parquet")
    check_not_inputs([output], [fasta, model])
    check_positive(max_tokens_per_batch=max_tokens_per_batch, chunk_size=chunk_size)
    resume = _Resume(check_duplicate_ids(duplicate_ids), recompute_changed, drop_missing)
    ranks = detect_ranks()
    run = _Run(model, fasta, output, include, layers, max_tokens_per_batch, dtype, device, unknown, overwrite,
               chunk_size, progress, resume, storage)  # fmt: skip
    if output_format == "parquet":
        return _embed_parquet_run(run, ranks, started)
    if ranks.distributed or find_shards(output, SHARD_SUFFIX):
        return embed_ranks(ranks, run, started)
    return _embed_one_process(run, started)


def _embed_one_process(run: _Run, started: float) -> EmbedResult:
    """``embed`` into an HDF5 file by one process (no launcher, no shards left by a multi-process run)."""
    fasta, output, unknown, resume = run.fasta, run.output, run.unknown, run.resume
    with OutputFileLock(output):
        session = ModelSession.open(run.model, run.dtype, run.device)
        encoder = session.encoder()
        job = _job(session, encoder, run.include, run.layers, unknown, run.max_tokens_per_batch, run.chunk_size,
                   run.storage)  # fmt: skip
        scan = scan_fasta(fasta, unknown, session.config, encoder.framing, duplicate_ids=resume.duplicate_ids)
        network = _open_output(output, session, job, str(run.model), run.overwrite)
        with open_store(output) as store:
            done = _repair(store, output, job.include, len(job.layers), session.config.hidden_size)
            stored = read_records(fasta, unknown, resume.duplicate_ids)
            present = _reconcile(store, output, fasta, stored, done, resume) if done else set()  # a new file: no pass
            todo = scan.records - len(present)
            records = (r for r in read_records(fasta, unknown, resume.duplicate_ids) if r.id not in present)
            with token_rate_bar(todo, f"embed {fasta.name}", run.progress) as bar:
                _embed_pending(store, records, job, network, encoder, session.device, bar)
            write_index(store, list(scan.id_lines), job)
    return EmbedResult(output, scan.records, todo, scan.records - todo, time.perf_counter() - started)


def _job(
    session: ModelSession,
    encoder: SequenceEncoder,
    include: str | Sequence[str],
    layers: str | int | Sequence[str | int] | None,
    unknown: UnknownPolicy,
    max_tokens_per_batch: int,
    chunk_size: int,
    storage: Storage = Storage(),
) -> _Job:
    chosen = parse_include(include)
    if "cls" in chosen and (encoder.framing.prefix != 1 or session.tokenizer.cls_token_id is None):
        raise InferenceInputError("--include cls: this model's tokenizer adds no <cls> token")
    if storage.stack and "mean" not in chosen:
        raise InferenceInputError(f"--stack stacks the mean vectors, but --include is {','.join(chosen)}: add mean")
    layer_names = parse_layers(layers, session.config.num_hidden_layers)
    return _Job(chosen, layer_names, unknown, max_tokens_per_batch, chunk_size, storage)


@dataclass(frozen=True)
class _Resume:
    """How the FASTA's records are named (``duplicate_ids``) and matched with a resumed file's records."""

    duplicate_ids: DuplicateIds
    recompute_changed: bool
    drop_missing: bool


def sequence_hash(sequence: str) -> str:
    """The ``sequence_hash`` attribute of a record: what tells a resumed run that the record did not change."""
    return hashlib.blake2b(sequence.encode(), digest_size=16).hexdigest()


def _reconcile(
    store: h5py.File,
    output: Path,
    fasta: Path,
    records: Iterator[FastaRecord],
    done: dict[str, tuple[int, str]],
    resume: _Resume,
) -> set[str]:
    """The ids whose stored group matches the FASTA record (length and hash); changed and missing records handled
    as the module notes say, before any new work."""
    present: set[str] = set()
    changed: list[str] = []
    for record in records:
        found = done.get(record.id)
        if found is None:
            continue
        present.add(record.id)
        if found == (len(record.sequence), sequence_hash(record.sequence)):
            continue
        if not resume.recompute_changed:
            raise EmbeddingFileError(_changed_message(output, fasta, record, found[0]))
        changed.append(record.id)
    missing = [record_id for record_id in done if record_id not in present]
    removed = changed + (missing if resume.drop_missing else [])
    with deferred_interrupts():
        for record_id in removed:
            del store[group_name(record_id)]
        if removed:
            drop_index(store)
        store.flush()
    if changed:
        logger.warning(
            "%s: recomputing %d records whose sequence changed (%s)", output, len(changed), first_ids(changed)
        )
    if missing:
        what = "removed (drop_missing)" if resume.drop_missing else "kept; pass --drop_missing to remove them"
        logger.warning("%s: %d records are not in %s (%s): %s", output, len(missing), fasta, first_ids(missing), what)
    return present - set(changed)


def _changed_message(output: Path, fasta: Path, record: FastaRecord, length: int) -> str:
    if length != len(record.sequence):
        difference = f"with {length} residues, but {fasta}:{record.line} has {len(record.sequence)}"
    else:
        difference = f"computed from another sequence than {fasta}:{record.line} (same length, other residues)"
    return (
        f"{output}: holds record {record.id!r} {difference}; was the FASTA edited, or the file made from another "
        "FASTA? Pass --recompute_changed to recompute the records that changed, overwrite (--overwrite) to start "
        "again, or use another output file"
    )


@dataclass(frozen=True)
class _Job:
    """What to compute for each record (``include`` items of ``layers``) and how to read and batch the records."""

    include: tuple[str, ...]
    layers: tuple[str, ...]
    unknown: UnknownPolicy
    max_tokens_per_batch: int
    chunk_size: int
    storage: Storage = Storage()

    def settings(self, dtype: torch.dtype) -> dict[str, str | list[str]]:
        """The file attributes that must match for a run to continue a file (``_SETTINGS``)."""
        return {
            "format": FORMAT,
            "layers": list(self.layers),
            "include": list(self.include),
            "dtype": dtype_name(dtype),
            "storage_dtype": self.storage.storage_dtype,
            "compression": self.storage.compression,
        }


def _checked_paths(fasta: str | Path, output: str | Path, folder: bool = False) -> tuple[Path, Path]:
    """The FASTA file, which must exist, and the output file (or, for Parquet, folder), whose parent must."""
    fasta = check_input_file(fasta)
    output = Path(output)
    if folder and output.exists() and not output.is_dir():
        raise NotADirectoryError(f"{output}: is a file; --format parquet writes a folder of shards")
    if not folder and output.is_dir():
        raise IsADirectoryError(f"{output}: is a folder; give a file name for the HDF5 output")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"{output.parent}: no such folder for the output {output.name}")
    return fasta, output


def _open_output(output: Path, session: ModelSession, job: _Job, model: str, overwrite: bool) -> PreTrainedModel:
    """The encoder, once ``output`` is known to be continuable with it (same settings, then same weights), or a
    new file holding only the run's attributes (the settings are checked before the model is loaded)."""
    settings = job.settings(session.dtype)
    if output.exists() and not overwrite:
        _check_settings(output, settings)
    network, fingerprint = session.load(AutoModel, "the encoder's weights")
    if output.exists() and not overwrite:
        _check_fingerprint(output, fingerprint, model)
    else:
        _create(output, _attributes(settings, session, model, fingerprint))
    return network


def _attributes(settings: dict, session: ModelSession, model: str, fingerprint: str) -> dict:
    """What a new output records: the settings, the model and how records are hashed."""
    return {
        **settings,
        "model": model,
        "model_fingerprint": fingerprint,
        "model_type": session.config.model_type,
        "hidden_size": session.config.hidden_size,
        "protconv_version": package_version(),
        "sequence_hash": HASH_NAME,
    }


def _embed_pending(
    store: h5py.File,
    records: Iterator[FastaRecord],
    job: _Job,
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    device: torch.device,
    bar: TokenRate,
    plan: list[list[PlannedBatch]] | None = None,
    ranks: Ranks = ONE_PROCESS,
) -> None:
    """Embed ``records`` batch by batch, each batch's groups written whole and flushed before the next. With a
    ``plan`` (:func:`protconv.inference.distributed.plan_chunks` of these records), only this rank's batches."""
    writer = _Writer(store, job)
    special = encoder.framing.special_tokens
    stop, count = exit_hook(ranks), 0
    for index, chunk in enumerate(chunks(records, job.chunk_size)):
        lengths = [len(record.sequence) for record in chunk]
        if plan is None:
            batches = [(batch, 0) for batch in plan_batches(lengths, job.max_tokens_per_batch, special)]
        else:  # a row slice of a one-process batch runs padded to that batch's width: its values are then the same
            batches = [(batch.members, batch.width) for batch in plan[index] if batch.rank == ranks.rank]
        for batch, width in batches:
            if count == stop:
                os._exit(3)  # the test hook of a killed process: no cleanup, no flush
            count += 1
            members = [chunk[i] for i in batch]
            arrays = _embed_batch(network, encoder, members, job.layers, job.include, device, width)
            with deferred_interrupts():
                if count == 1:
                    drop_index(store)  # the file gains records: its ids (and stack) are written again at the end
                writer.write(members, arrays)
                store.flush()
            bar.update(len(members), sum(len(r.sequence) + special for r in members))
            release_memory()  # keeps the resident size flat (see common.release_memory)


def _embed_batch(
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    records: list[FastaRecord],
    layer_names: tuple[str, ...],
    include: tuple[str, ...],
    device: torch.device,
    width: int = 0,
) -> dict[str, list[np.ndarray]]:
    """Per record and included item, a float32 array ``(n_layers, [residues,] hidden)``; the batch is padded to
    ``width`` tokens when that is wider (a row slice of a one-process batch, see ``plan_chunks(split=True)``)."""
    lengths = [len(record.sequence) for record in records]
    inputs = pad_to_width(
        encoder([record.sequence for record in records], device), width, encoder.tokenizer.pad_token_id
    )
    need_hidden = any(name != LAST for name in layer_names)
    with torch.inference_mode():
        out = network(**inputs, output_hidden_states=need_hidden)
        states = torch.stack(
            [out.last_hidden_state if name == LAST else out.hidden_states[int(name)] for name in layer_names]
        )  # (n_layers, batch, tokens, hidden)
        mask = residue_positions(inputs, encoder, lengths)
        result: dict[str, list[np.ndarray]] = {}
        if "mean" in include:
            weights = mask.to(torch.float32)
            sums = torch.einsum("lbth,bt->lbh", states.float(), weights)
            means = (sums / weights.sum(dim=1)[None, :, None]).cpu().numpy()
            result["mean"] = [np.ascontiguousarray(means[:, b]) for b in range(len(records))]
        if "cls" in include:
            cls = states[:, :, 0].float().cpu().numpy()
            result["cls"] = [np.ascontiguousarray(cls[:, b]) for b in range(len(records))]
        if "per_residue" in include:
            full = states.float().cpu().numpy()
            rows = mask.cpu().numpy()
            result["per_residue"] = [np.ascontiguousarray(full[:, b][:, rows[b]]) for b in range(len(records))]
    return result


class _Writer:
    """Writes record groups through h5py's low-level API with types and spaces made once: the high-level calls
    cost about 0.6 ms per record (more than a carp-600k forward of a short protein on a CPU core), this 0.2 ms.
    What is written is what ``group.attrs[...] = ...`` and ``create_dataset`` would write."""

    def __init__(self, store: h5py.File, job: _Job) -> None:
        self.store, self.include, self.storage = store, job.include, job.storage
        self.layers = np.array(job.layers, dtype=h5py.string_dtype())
        self.values = h5t.py_create(job.storage.numpy_dtype)
        self.int64 = h5t.py_create(np.dtype("int64"))
        self.string = h5t.py_create(h5py.string_dtype(), logical=True)
        self.scalar = h5s.create(h5s.SCALAR)
        self.layers_space = h5s.create_simple(self.layers.shape)

    def write(self, records: list[FastaRecord], arrays: dict[str, list[np.ndarray]]) -> None:
        """Each group complete: datasets, then ``id``, ``layers`` and ``sequence_hash``, ``length`` last (the
        completeness mark)."""
        for index, record in enumerate(records):
            group = h5g.create(self.store.id, group_name(record.id).encode())
            for item in self.include:
                values = arrays[item][index].astype(self.storage.numpy_dtype, copy=False)
                plist = self._filters(values.shape) if item == "per_residue" else None
                dataset = h5d.create(group, item.encode(), self.values, h5s.create_simple(values.shape), dcpl=plist)
                dataset.write(h5s.ALL, h5s.ALL, values)
            self._attribute(group, b"id", self.string, self.scalar, np.array(record.id, dtype=h5py.string_dtype()))
            self._attribute(group, b"layers", self.string, self.layers_space, self.layers)
            digest = np.array(sequence_hash(record.sequence), dtype=h5py.string_dtype())
            self._attribute(group, b"sequence_hash", self.string, self.scalar, digest)
            self._attribute(group, b"length", self.int64, self.scalar, np.array(len(record.sequence), dtype=np.int64))

    @staticmethod
    def _attribute(group, name: bytes, type_id, space, value: np.ndarray) -> None:
        h5a.create(group, name, type_id, space).write(value)

    def _filters(self, shape: tuple[int, ...]) -> h5p.PropDCID | None:
        """The creation properties of a compressed per-residue dataset (None: contiguous, uncompressed)."""
        if self.storage.compression == "none":
            return None
        return compressed_layout(shape, self.storage)


def compressed_layout(shape: tuple[int, ...], storage: Storage) -> h5p.PropDCID | None:
    """Chunks of one layer of ``CHUNK_BYTES`` at most (whole proteins for hidden sizes up to 1024 at ~250
    residues), byte-shuffled then ``gzip``-ed (h5py's level 4) or ``lzf``-ed, as ``create_dataset`` does."""
    if 0 in shape:
        return None  # HDF5 refuses chunks of an empty dimension; nothing to compress
    plist = h5p.create(h5p.DATASET_CREATE)
    row_bytes = max(1, int(np.prod(shape[2:], dtype=np.int64)) * storage.numpy_dtype.itemsize)
    rows = max(1, min(shape[1] if len(shape) > 1 else 1, CHUNK_BYTES // row_bytes))
    plist.set_chunk((1, rows, *shape[2:]) if len(shape) > 1 else (max(1, shape[0]),))
    plist.set_shuffle()
    if storage.compression == "gzip":
        plist.set_deflate(4)
    else:
        plist.set_filter(h5z.FILTER_LZF, h5z.FLAG_OPTIONAL)
    return plist


def drop_index(store: h5py.File) -> None:
    """Remove the root ``ids`` and ``mean`` datasets: they no longer describe the file once it gains or loses
    records, and a file without ``ids`` is one whose run did not finish (the next run writes them)."""
    for name in _RESERVED:
        if name in store:
            del store[name]


def write_index(store: h5py.File, fasta_ids: list[str], job: _Job) -> None:
    """At the end of a run: ``ids`` (the records in FASTA order, then the records kept from an earlier FASTA, in
    group order) and, with ``stack``, the ``mean`` matrix whose rows follow ``ids``. Kept as they are when they
    already say that (a rerun with nothing to do rewrites nothing); ``ids`` is written last, so its presence
    means the file is complete."""
    names = [name for name in store if name not in _RESERVED]
    present = set(names)
    ids = [record_id for record_id in fasta_ids if group_name(record_id) in present]
    listed = {group_name(record_id) for record_id in ids}
    ids += [_read_attribute(store[name].attrs["id"]) for name in names if name not in listed]
    stack_ok = (STACK in store) == job.storage.stack and (
        not job.storage.stack or store[STACK].shape == (len(ids), len(job.layers), store.attrs["hidden_size"])
    )
    if IDS in store and stack_ok and store[IDS].asstr()[()].tolist() == ids:
        return
    with deferred_interrupts():
        drop_index(store)
        if job.storage.stack:
            _write_stack(store, ids, job)
        store.create_dataset(IDS, data=np.array(ids, dtype=h5py.string_dtype()), dtype=h5py.string_dtype())
        store.flush()


def _write_stack(store: h5py.File, ids: list[str], job: _Job) -> None:
    """The ``mean`` matrix, filled ``_STACK_BLOCK`` records at a time from the groups (memory stays flat)."""
    hidden = int(store.attrs["hidden_size"])
    shape = (len(ids), len(job.layers), hidden)
    dtype = job.storage.numpy_dtype
    rows = max(1, min(len(ids), CHUNK_BYTES // max(1, len(job.layers) * hidden * dtype.itemsize)))
    filters = {} if job.storage.compression == "none" else {"compression": job.storage.compression, "shuffle": True}
    matrix = store.create_dataset(STACK, shape=shape, dtype=dtype, chunks=(rows, *shape[1:]) if ids else None,
                                  **filters)  # fmt: skip
    for start in range(0, len(ids), _STACK_BLOCK):
        block = ids[start : start + _STACK_BLOCK]
        matrix[start : start + len(block)] = np.stack([store[group_name(i)]["mean"][()] for i in block])


def open_store(path: Path) -> h5py.File:
    """``path`` opened for writing records, its metadata cache held to ``METADATA_CACHE_BYTES`` so that memory
    stays flat however many groups the file holds."""
    return _capped(h5py.File(path, "a"))


def _open_shard(path: Path) -> h5py.File:
    """A shard opened for reading with the same small metadata cache (a merge walks every one of its groups)."""
    return _capped(h5py.File(path, "r"))


def _capped(store: h5py.File) -> h5py.File:
    config = store.id.get_mdc_config()
    config.set_initial_size = True
    config.min_size = config.initial_size = config.max_size = METADATA_CACHE_BYTES
    store.id.set_mdc_config(config)
    return store


def _create(output: Path, attributes: dict) -> None:
    """A new file holding only the attributes, written whole then renamed: never a half-made file. Runs under the
    output's lock, so any other temporary of this output is a killed run's leftover, removed here."""
    for stale in output.parent.glob(f".{glob.escape(output.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as store:
            for key, value in attributes.items():
                store.attrs[key] = _attribute(value)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)


def _attribute(value):
    if isinstance(value, list):
        return np.array(value, dtype=h5py.string_dtype())
    return value


def _read_attribute(value):
    if isinstance(value, np.ndarray):
        return [item.decode() if isinstance(item, bytes) else str(item) for item in value.tolist()]
    return value.decode() if isinstance(value, bytes) else value


def _open_existing(output: Path) -> dict:
    try:
        with h5py.File(output, "r") as store:
            return {key: _read_attribute(value) for key, value in store.attrs.items()}
    except OSError as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "truncated" in detail.lower():
            raise EmbeddingFileError(
                f"{output}: the file is damaged ({detail}): cut short by a full disk, a copy or a kill outside "
                "protconv's writes?; pass --overwrite to replace it, or choose another output file"
            ) from None
        if _LOCKED.search(detail):
            raise EmbeddingFileError(f"{output}: is open in another process (another embed run?): {detail}") from None
        raise EmbeddingFileError(
            f"{output}: exists but cannot be read as HDF5 ({detail}); pass --overwrite to replace it, "
            "or choose another output file"
        ) from None


def _check_settings(output: Path, settings: dict, found: dict | None = None) -> None:
    """``found``: the attributes of ``output`` (read from the HDF5 file when None)."""
    found = _open_existing(output) if found is None else found
    if found.get("format") != FORMAT:
        raise EmbeddingFileError(
            f"{output}: exists and is not a protconv embeddings file; pass --overwrite to replace it, "
            "or choose another output file"
        )
    if found.get("sequence_hash") != HASH_NAME:
        raise EmbeddingFileError(
            f"{output}: was written by an older protconv that stored no sequence hashes, so its records cannot be "
            "checked against the FASTA file; pass --overwrite to recompute it, or choose another "
            "output file"
        )
    differ = [
        f"{key}={_setting(found, key)!r} (now {settings[key]!r})"
        for key in _SETTINGS
        if _setting(found, key) != settings[key]
    ]
    if differ:
        raise EmbeddingFileError(
            f"{output}: exists with other settings ({', '.join(differ)}); re-run with the same settings to continue "
            "it, pass --overwrite to replace it, or choose another output file"
        )


def _setting(attributes: dict, key: str):
    """A file's setting, or what a version that did not record it wrote (``_OLD_DEFAULTS``)."""
    return attributes.get(key, _OLD_DEFAULTS.get(key))


def _check_fingerprint(output: Path, fingerprint: str, model: str, found: dict | None = None) -> None:
    found = _open_existing(output) if found is None else found
    if found.get("model_fingerprint") != fingerprint:
        raise EmbeddingFileError(
            f"{output}: was made with model {found.get('model')!r} (weights fingerprint "
            f"{found.get('model_fingerprint')}), not with {model!r} (fingerprint {fingerprint}); pass --overwrite "
            "to replace it, or choose another output file"
        )


def _repair(
    store: h5py.File, output: Path, include: tuple[str, ...], n_layers: int, hidden: int
) -> dict[str, tuple[int, str]]:
    """Delete the groups a killed run left incomplete; return the ids of the complete ones, their lengths and
    sequence hashes."""
    done: dict[str, tuple[int, str]] = {}
    broken: list[str] = []
    try:
        names = list(store.keys())
    except (OSError, RuntimeError, KeyError) as error:
        raise EmbeddingFileError(
            f"{output}: the file is damaged (a run killed during a write?): {error}; pass --overwrite to start it again"
        ) from None
    for name in names:
        if name in _RESERVED:
            continue
        record_id = _complete_group(store, name, include, n_layers, hidden)
        if record_id is None:
            broken.append(name)
        else:
            attrs = store[name].attrs
            done[record_id] = (int(attrs["length"]), _read_attribute(attrs["sequence_hash"]))
    for name in broken:
        try:
            del store[name]
        except (OSError, RuntimeError, KeyError) as error:
            raise EmbeddingFileError(
                f"{output}: cannot remove the incomplete group {name!r} ({error}); the file is damaged, pass "
                "overwrite (--overwrite) to start it again"
            ) from None
    if broken:
        store.flush()
    return done


def _complete_group(store: h5py.File, name: str, include: tuple[str, ...], n_layers: int, hidden: int) -> str | None:
    """The record id of a complete group, or None (missing attribute or dataset, wrong shape, unreadable)."""
    try:
        group = store[name]
        if not isinstance(group, h5py.Group) or any(
            key not in group.attrs for key in ("length", "id", "sequence_hash")
        ):
            return None
        length = int(group.attrs["length"])
        expected = {"mean": (n_layers, hidden), "cls": (n_layers, hidden), "per_residue": (n_layers, length, hidden)}
        for item in include:
            if item not in group or group[item].shape != expected[item]:
                return None
        record_id = _read_attribute(group.attrs["id"])
        return record_id if group_name(record_id) == name else None
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):
        return None


def embed_sequences(
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    sequences: Sequence[str],
    device: torch.device,
    include: tuple[str, ...] = ("mean",),
    max_tokens_per_batch: int = DEFAULT_MAX_TOKENS,
) -> dict[str, list[np.ndarray]]:
    """The last layer's ``include`` arrays of each sequence, in input order, in memory (``mean``: ``(hidden,)``,
    ``per_residue``: ``(residues, hidden)``): for callers (``protconv evaluate``'s probes) that need embeddings of
    a few thousand sequences with a model already loaded, without an HDF5 file. ``network`` is a base model."""
    records = [FastaRecord(str(i), sequence, i) for i, sequence in enumerate(sequences)]
    found: dict[str, list[np.ndarray]] = {name: [np.empty(0)] * len(records) for name in include}
    lengths = [len(sequence) for sequence in sequences]
    for batch in plan_batches(lengths, max_tokens_per_batch, encoder.framing.special_tokens):
        arrays = _embed_batch(network, encoder, [records[i] for i in batch], (LAST,), include, device)
        for name, values in arrays.items():
            for i, value in zip(batch, values, strict=True):
                found[name][i] = value[0]
    return found


#: The file name ending of a rank's shard: ``<output>.rank-K-of-N.partial.h5``.
SHARD_SUFFIX = ".h5"


@dataclass(frozen=True)
class _Run:
    """The arguments of one ``embed`` call, for the multi-process path."""

    model: str | Path
    fasta: Path
    output: Path
    include: str | Sequence[str]
    layers: str | int | Sequence[str | int] | None
    max_tokens_per_batch: int
    dtype: DtypeName | torch.dtype
    device: str | torch.device | None
    unknown: UnknownPolicy
    overwrite: bool
    chunk_size: int
    progress: bool
    resume: _Resume
    storage: Storage = Storage()


def embed_ranks(ranks: Ranks, run: _Run, started: float) -> EmbedResult:
    """``embed`` on ``ranks.world_size`` processes (or on one, continuing a killed multi-process run's shards).

    Rank 0 holds the output's lock for the run, validates the FASTA file as one process does and indexes it
    (:func:`protconv.data.fasta_index.open_index`, in ``data_cache`` beside OUTPUT) while the others wait, checks
    or creates OUTPUT as one process does, takes in the records of any shards left by a killed run (those whose
    length and sequence hash match the FASTA), reconciles OUTPUT with the FASTA and sends every rank the list of
    pending records; every rank plans them from the index's lengths and reads only its own share's records, rank 0
    computing into OUTPUT, rank K into its shard; at the end rank 0 copies the shards' groups into OUTPUT and
    removes them. Every state of OUTPUT and the shards is one a rerun continues, at any number of processes.
    """
    output = run.output
    cache = index_cache(output)  # one process continuing shards too: the killed run made it (and a .gz is on disk)
    with process_group(ranks), contextlib.ExitStack() as stack:
        with step(ranks, "embed: checking the inputs and the output"):
            session, encoder, job = _rank_job(run, ranks)
            network = None
            if ranks.is_main:
                scan = scan_fasta(run.fasta, run.unknown, session.config, encoder.framing,
                                  duplicate_ids=run.resume.duplicate_ids)  # fmt: skip
                index = stack.enter_context(contextlib.closing(open_index(run.fasta, cache)))
                stack.enter_context(OutputFileLock(output))
                network = _open_output(output, session, job, str(run.model), run.overwrite)
                _prepare_output(run, job, session.config.hidden_size)
        with step(ranks, f"embed: reading {output}"):
            attributes = _open_existing(output)
            found = _pending(run, index) if ranks.is_main else None
            if not ranks.is_main:
                index = stack.enter_context(contextlib.closing(open_index(run.fasta, cache)))  # rank 0's, cached
        pending = PendingRecords.decode(broadcast_bytes(ranks, found.encode() if found is not None else None))
        with step(ranks, "embed: computing the embeddings"):
            if network is None:
                network, _ = session.load(AutoModel, "the encoder's weights")
            special = encoder.framing.special_tokens
            lengths = index.lengths[pending.numbers].tolist()
            plan = plan_chunks(lengths, job.chunk_size, job.max_tokens_per_batch, special, ranks.world_size, split=True)
            mine = [[i for batch in batches if batch.rank == ranks.rank for i in batch.members] for batches in plan]
            target = output if ranks.is_main else _new_shard(output, ranks, attributes)
            records = rank_records(index, pending, mine, job.chunk_size, run.unknown)
            show = run.progress and ranks.is_main
            bar_total = sum(len(members) for members in mine)
            with open_store(target) as store, token_rate_bar(bar_total, f"embed {run.fasta.name}", show) as bar:
                _embed_pending(store, records, job, network, encoder, session.device, bar, plan, ranks)
        with step(ranks, f"embed: merging the shards into {output}"):
            if ranks.is_main:
                with open_store(output) as store:  # the metadata cache held small, as when writing
                    _merge_written(store, [shard_path(output, Ranks(k, ranks.world_size), SHARD_SUFFIX)
                                           for k in range(1, ranks.world_size)])  # fmt: skip
                    write_index(store, list(scan.id_lines), job)
    todo = len(lengths)
    return EmbedResult(output, pending.records, todo, pending.records - todo, time.perf_counter() - started)


def _prepare_output(run: _Run, job: _Job, hidden: int) -> None:
    """Rank 0, before any work: incomplete groups dropped, a killed run's shards taken in (or removed, with
    ``overwrite``), then OUTPUT reconciled with the FASTA as one process does (changed and missing records)."""
    attributes = _open_existing(run.output)
    with open_store(run.output) as store:
        _repair(store, run.output, job.include, len(job.layers), hidden)
        _merge_shards(store, run, job, hidden, attributes)
        done = _repair(store, run.output, job.include, len(job.layers), hidden)
        if done:
            stored = read_records(run.fasta, run.unknown, run.resume.duplicate_ids)
            _reconcile(store, run.output, run.fasta, stored, done, run.resume)


def _pending(run: _Run, index: FastaIndex) -> PendingRecords:
    """Rank 0: the records still to compute (those OUTPUT lacks), from the index's headers; what every rank
    plans and reads its share of."""
    with h5py.File(run.output, "r") as store:
        present = set(store.keys())
    return pending_records(index, run.resume.duplicate_ids, lambda record_id: group_name(record_id) in present)


def _new_shard(output: Path, ranks: Ranks, attributes: dict) -> Path:
    """This rank's shard, new, holding OUTPUT's file attributes (so it is itself a file ``embed`` can check)."""
    shard = shard_path(output, ranks, SHARD_SUFFIX)
    _create(shard, attributes)
    return shard


def _merge_shards(store: h5py.File, run: _Run, job: _Job, hidden: int, attributes: dict) -> None:
    """Copy into ``store`` (OUTPUT) every complete group of the output's shards that OUTPUT lacks and whose length
    and sequence hash match the FASTA record, then remove the shards. A group is copied whole (HDF5's object
    copy: the same values and attributes, bit for bit); a kill in between leaves groups a rerun repairs or skips.
    A shard made with another model or other settings is refused; with ``overwrite`` the shards are removed."""
    shards = find_shards(run.output, SHARD_SUFFIX)
    if run.overwrite or not shards:
        for shard in shards:
            shard.unlink()
        return
    found: dict[str, tuple[Path, str, tuple[int, str]]] = {}
    for shard in shards:
        _check_shard(shard, attributes)
        with _open_shard(shard) as source:
            for name in source:
                if name in _RESERVED:
                    continue
                record_id = _complete_group(source, name, job.include, len(job.layers), hidden)
                if record_id is not None and name not in store:
                    attrs = source[name].attrs
                    found[record_id] = (shard, name, (int(attrs["length"]), _read_attribute(attrs["sequence_hash"])))
    wanted: dict[Path, list[str]] = {shard: [] for shard in shards}
    for record in read_records(run.fasta, run.unknown, run.resume.duplicate_ids) if found else ():
        entry = found.get(record.id)
        if entry is not None and entry[2] == (len(record.sequence), sequence_hash(record.sequence)):
            wanted[entry[0]].append(entry[1])
    if any(wanted.values()):
        with deferred_interrupts():
            drop_index(store)  # OUTPUT gains the shards' records
    for shard, names in wanted.items():
        with _open_shard(shard) as source:
            for batch in chunks(names, 256):
                with deferred_interrupts():
                    for name in batch:
                        source.copy(source[name], store, name=name)
                    store.flush()
        shard.unlink()


def _merge_written(store: h5py.File, shards: Sequence[Path]) -> None:
    """The end of a run: copy into ``store`` (OUTPUT) every group of ``shards``, the shards this run's other ranks
    wrote, then remove them. They need none of :func:`_merge_shards`'s checks: each rank created its shard new after
    rank 0 had taken in (or removed) every earlier shard under the output's lock, wrote only records planned from
    the FASTA that OUTPUT lacked (each group whole, flushed, the file closed) and only then reached the step's
    barrier, so every group is complete, matches the FASTA and is not in OUTPUT. A kill during the copy leaves the
    shards, which a rerun takes in with the full check (:func:`_prepare_output`)."""
    for shard in shards:
        if not shard.exists():
            continue
        with _open_shard(shard) as source:
            names = [name.encode() for name in source if name not in _RESERVED]
            if names:
                with deferred_interrupts():
                    drop_index(store)  # OUTPUT gains the shard's records
            for batch in chunks(names, 256):
                with deferred_interrupts():
                    for name in batch:  # HDF5's object copy (as Group.copy): the same values and attributes
                        h5o.copy(source.id, name, store.id, name)
                    store.flush()
        shard.unlink()


def _check_shard(shard: Path, attributes: dict) -> None:
    """A shard continues OUTPUT only if made with the same model (fingerprint) and settings."""
    found = _open_existing(shard)
    keys = (*_SETTINGS, "model_fingerprint", "sequence_hash")
    differ = [f"{key}={_setting(found, key)!r} (output: {_setting(attributes, key)!r})" for key in keys
              if _setting(found, key) != _setting(attributes, key)]  # fmt: skip
    if differ:
        raise EmbeddingFileError(
            f"{shard}: a shard of a killed multi-process run of {shard.name.split('.rank-')[0]} made with another "
            f"model or other settings ({', '.join(differ)}); pass --overwrite to start again, or remove it"
        )


def _rank_job(run: _Run, ranks: Ranks) -> tuple[ModelSession, SequenceEncoder, _Job]:
    """This rank's model session (its own device), encoder and checked job: the first step of every
    multi-process path (HDF5 and Parquet)."""
    session = ModelSession.open(run.model, run.dtype, rank_device(ranks, run.device))
    encoder = session.encoder()
    job = _job(session, encoder, run.include, run.layers, run.unknown, run.max_tokens_per_batch, run.chunk_size,
               run.storage)  # fmt: skip
    return session, encoder, job


def _embed_parquet_run(run: _Run, ranks: Ranks, started: float) -> EmbedResult:
    """``--format parquet`` (:mod:`protconv.inference.embed_parquet`): a shard per chunk, or on N processes a shard
    per chunk and rank (each rank writes its own; no merge). Rank 0 holds the folder's lock, checks or creates it
    and reconciles the shards with the FASTA (removing incomplete chunks) before the others read which chunks are
    complete; the pending chunks' batches are planned as :func:`embed_ranks` plans them."""
    _check_parquet_options(run)
    with process_group(ranks), contextlib.ExitStack() as stack:
        with step(ranks, "embed: checking the inputs and the output"):
            session, encoder, job = _rank_job(run, ranks)
            scan = scan_fasta(run.fasta, run.unknown, session.config, encoder.framing,
                              duplicate_ids=run.resume.duplicate_ids)  # fmt: skip
            network, attributes, done = None, None, None
            if ranks.is_main:
                stack.enter_context(OutputFileLock(run.output))
                network, attributes = _open_parquet_output(run, session, job)
                done = _reconcile_shards(run, main=True)
        with step(ranks, f"embed: reading the shards of {run.output}"):
            if done is None:
                done, attributes = _reconcile_shards(run, main=False), parquet.read_settings(run.output)
        with step(ranks, "embed: computing the embeddings"):
            if network is None:
                network, _ = session.load(AutoModel, "the encoder's weights")
            table = parquet.schema(job.layers, job.include, session.config.hidden_size, job.storage.storage_dtype,
                                   attributes or {})  # fmt: skip
            todo = scan.records - sum(done.values())
            _embed_parquet_chunks(run, job, done, table, network, encoder, session.device, ranks, todo)
    return EmbedResult(run.output, scan.records, todo, scan.records - todo, time.perf_counter() - started)


def _embed_parquet_chunks(
    run: _Run,
    job: _Job,
    done: dict[int, int],
    table: pa.Schema,
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    device: torch.device,
    ranks: Ranks,
    todo: int,
) -> None:
    """This rank's batches of every chunk not ``done``, each chunk's into its own shard (``todo``: the records
    left, for one process's progress bar)."""
    special = encoder.framing.special_tokens
    plan = None
    if ranks.distributed:
        lengths = [len(r.sequence) for index, chunk in enumerate(chunks(read_records(run.fasta, run.unknown,
                   run.resume.duplicate_ids), job.chunk_size)) if index not in done for r in chunk]  # fmt: skip
        plan = plan_chunks(lengths, job.chunk_size, job.max_tokens_per_batch, special, ranks.world_size)
        todo = sum(len(batch.members) for batches in plan for batch in batches if batch.rank == ranks.rank)
    records = read_records(run.fasta, run.unknown, run.resume.duplicate_ids)
    part = f"-r{ranks.rank}of{ranks.world_size}" if ranks.distributed else ""
    codec, pending = _PARQUET_CODECS[job.storage.compression], 0
    stop, count = exit_hook(ranks), 0
    with token_rate_bar(todo, f"embed {run.fasta.name}", run.progress and ranks.is_main) as bar:
        for index, chunk in enumerate(chunks(records, job.chunk_size)):
            if index in done:
                continue
            if plan is None:
                batches = plan_batches([len(r.sequence) for r in chunk], job.max_tokens_per_batch, special)
            else:
                batches = [batch.members for batch in plan[pending] if batch.rank == ranks.rank]
            pending += 1
            if batches:
                writer = parquet.ShardWriter(run.output, index, table, codec, job.storage.numpy_dtype, part)
                exit_at = None if stop is None else stop - count  # the test hook of a killed process
                _embed_shard(writer, chunk, index * job.chunk_size, batches, job, network, encoder, device, bar,
                             exit_at)  # fmt: skip
                count += len(batches)


#: Parquet's codec for each ``--compression`` it takes (lzf is an HDF5 filter only).
_PARQUET_CODECS = {"none": "none", "gzip": "gzip"}


def _check_parquet_options(run: _Run) -> None:
    if parquet is None:
        raise InferenceInputError("--format parquet needs pyarrow: pip install 'protconv[parquet]' (or pyarrow)")
    if run.storage.stack:
        raise InferenceInputError("--stack is for HDF5 output: a Parquet folder already loads in one read")
    if run.storage.compression not in _PARQUET_CODECS:
        raise InferenceInputError(
            f"--compression {run.storage.compression} is an HDF5 filter; --format parquet takes none or gzip"
        )


def _open_parquet_output(run: _Run, session: ModelSession, job: _Job) -> tuple[PreTrainedModel, dict]:
    """The encoder and the folder's attributes, once the folder is known to be continuable (same settings, then
    same weights), or a new folder holding only its settings file."""
    folder, settings = run.output, job.settings(session.dtype)
    found = None if run.overwrite else parquet.read_settings(folder)
    if found is not None:
        _check_settings(folder, settings, found)
    elif not run.overwrite and folder.is_dir() and any(folder.iterdir()):
        raise EmbeddingFileError(
            f"{folder}: exists and is not a protconv Parquet embeddings folder (no {parquet.SETTINGS_FILE}); pass "
            "--overwrite to write into it, or choose another output folder"
        )
    network, fingerprint = session.load(AutoModel, "the encoder's weights")
    if found is not None:
        _check_fingerprint(folder, fingerprint, str(run.model), found)
        parquet.remove_temporaries(folder)
        return network, found
    attributes = _attributes(settings, session, str(run.model), fingerprint)
    if folder.is_dir():
        parquet.clear_folder(folder)
    parquet.write_settings(folder, attributes)
    return network, attributes


def _reconcile_shards(run: _Run, main: bool) -> dict[int, int]:
    """The chunks whose shards hold exactly their records (index -> record count). On rank 0 (``main``), before
    any new work: the shards of a chunk that a killed run left incomplete are removed (it is computed again), a
    changed chunk is refused (or its shards removed, ``recompute_changed``), and shards past the FASTA's end are
    reported (or removed, ``drop_missing``); the other ranks then find only complete chunks."""
    shards = parquet.chunk_shards(run.output)
    done: dict[int, int] = {}
    count = 0
    for index, chunk in enumerate(chunks(read_records(run.fasta, run.unknown, run.resume.duplicate_ids),
                                         run.chunk_size)):  # fmt: skip
        count = index + 1
        paths = shards.get(index, [])
        if not paths:
            continue
        expected = sorted((r.id, len(r.sequence), sequence_hash(r.sequence)) for r in chunk)
        found = sorted(row for path in paths for row in _shard_records(path))
        if found == expected:
            done[index] = len(chunk)
            continue
        if main and set(found) < set(expected) and len(set(found)) == len(found):
            logger.warning("%s: chunk %d is incomplete (a killed run): computing it again", run.output, index)
        elif main and not run.resume.recompute_changed:
            raise EmbeddingFileError(
                f"{paths[0]}: does not hold the records of chunk {index} of {run.fasta} ({chunk[0].id!r} .. "
                f"{chunk[-1].id!r}, {len(chunk)} records) with their sequences: the FASTA changed since; pass "
                "--recompute_changed to recompute such shards, or --overwrite to start again"
            )
        elif main:
            logger.warning("%s: recomputing chunk %d, whose records changed", run.output, index)
        for path in paths if main else ():
            path.unlink()
    extra = [path for index, paths in shards.items() if index >= count for path in paths]
    if extra and main:
        what = "removed (drop_missing)" if run.resume.drop_missing else "kept; pass --drop_missing to remove them"
        logger.warning("%s: %d shards hold records past the end of %s: %s", run.output, len(extra), run.fasta, what)
        for path in extra if run.resume.drop_missing else ():
            path.unlink()
    return done


def _shard_records(path: Path) -> list[tuple[str, int, str]]:
    try:
        return parquet.shard_records(path)
    except (OSError, ValueError, KeyError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise EmbeddingFileError(f"{path}: cannot be read as a shard of embeddings ({error}); remove it") from None


def _embed_shard(
    writer: parquet.ShardWriter,
    chunk: list[FastaRecord],
    start: int,
    batches: list[list[int]],
    job: _Job,
    network: PreTrainedModel,
    encoder: SequenceEncoder,
    device: torch.device,
    bar: TokenRate,
    exit_at: int | None = None,
) -> None:
    """``batches`` of a chunk into ``writer``'s shard, a row group per batch; the shard appears only when whole.
    ``exit_at``: the test hook's batch count (``distributed.EXIT_AFTER_ENV``) at which the process exits."""
    special = encoder.framing.special_tokens
    try:
        for done, batch in enumerate(batches):
            if done == exit_at:
                os._exit(3)  # no cleanup, no flush: what a kill leaves
            members = [chunk[i] for i in batch]
            arrays = _embed_batch(network, encoder, members, job.layers, job.include, device)
            rows = [parquet.RecordRow(r.id, start + i, len(r.sequence), sequence_hash(r.sequence))
                    for i, r in zip(batch, members, strict=True)]  # fmt: skip
            writer.write(rows, arrays, job.layers)
            bar.update(len(members), sum(len(r.sequence) + special for r in members))
            release_memory()
    except BaseException:
        writer.abort()
        raise
    with deferred_interrupts():
        writer.finish()
