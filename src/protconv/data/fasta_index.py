"""An index of a FASTA file: where every record starts and how many residues it holds, built once by a vectorised
scan and kept as memory-mapped ``.npy`` arrays, so that a process reads any record with one seek.

The index is what lets pretraining plan a whole epoch from record lengths alone, and lets each process read only
its own records (``protconv.data.plans``). Per record it stores 16 bytes:

- ``offsets`` (uint64, one more than there are records): the byte offset of each record's ``>``; the last entry is
  the end of the data, so record ``i`` is the bytes ``offsets[i]:offsets[i + 1]``;
- ``lengths`` (uint32): residues after cleaning (whitespace dropped);
- ``crc32`` (uint32): ``zlib.crc32`` of ``"0:" + residues``, the hash that ``in_held_out_split`` buckets, so the
  held-out flag of any ``validation_fraction`` is one vectorised comparison, with no second read of the file.

Plus two short lists: ``slow`` (records that need the exact Python reader: non-ASCII bytes, characters outside
the alphabet, or no residues) and ``invalid`` (the subset that ``read_fasta`` would reject). Their ``lengths`` and
``crc32`` describe the record as ``invalid_sequences=X`` reads it (0 when it has no residues).

The scan finds headers with numpy over 32 MiB slices of the memory-mapped file (no Python loop per line), then
runs one C-level ``bytes.translate`` per record, which drops whitespace, upper-cases and so gives the residue count,
the split hash and whether any byte lies outside the alphabet (about 10 s per GB here). Only records with such
bytes, or with non-ASCII bytes anywhere, go through the line-by-line reader, which also writes every error message,
so messages are exactly those of :func:`protconv.data.fasta.read_fasta`: file, line, record, position.

Cached indexes live in ``cache_dir/fasta/<name>-<key>/``; the key hashes the file's size, modification time and its
first and last MiB, so an edited file is indexed again. An edit that keeps all of these (same size, mtime restored,
change in the middle) is caught by a full SHA-256 of the file stored with the index and checked at every open: it
costs about 1.2 s per GB from the page cache here (1.23 s for a 1.03 GB corpus, against 15 s to index it; the
command is in ``benchmarks/results/fasta_index_digest.md``; 0.63 s per GB on a synthetic 1 GB corpus in
``benchmarks/results/fasta_digest.md``, which keeps this check as the default). A mismatch indexes the file again.

While a run reads a memory-mapped file, a truncation would kill the process with SIGBUS (which Python cannot
catch): every read first compares the file's identity (device, inode, size, modification time) with the one it
had when it was opened, and a change raises :class:`~protconv.data.fasta.FastaFormatError` naming the file.

``digest`` (a SHA-256 of every record's length and split hash) identifies the records an index describes:
pretraining stores it per file in its checkpoints and refuses to resume on a different corpus.

An index folder is written under a temporary name (the export's: ``.<folder>.<host>.<pid>.<hex>``) and renamed into
place, so a reader never sees half of one and processes racing to build it are harmless; the temporary folders of
dead processes are removed by the next build in the same cache. A gzip file is decompressed once into that folder
(``data.fasta``), since compressed data cannot be read at random; without a ``cache_dir`` everything is kept in
memory instead.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..modeling.vocabulary import RESIDUE_CHARACTERS
from ..staging import content_digest, make_staging_sibling, remove_legacy_partials, remove_stale_staging
from ..tokenization.validation import InvalidSequenceError, UnknownPolicy, clean_sequence
from .fasta import _GZIP_ERRORS, _GZIP_MAGIC, FastaEntry, FastaFormatError, _locate_problem
from .held_out import held_out_by_hash, split_crc

logger = logging.getLogger(__name__)

#: Bumped whenever the index files change meaning, so that old indexes are rebuilt rather than misread.
INDEX_VERSION = 1
_CHUNK = 1 << 25  # bytes per scanning slice (32 MiB)
_KEY_SPAN = 1 << 20  # bytes hashed at each end of a file for its cache key
_BOM = b"\xef\xbb\xbf"
_ARRAYS = ("offsets", "lengths", "crc32", "slow", "invalid")

# Byte classes: 0 residue letter (either case), 1 whitespace as Python strips it, 2 any other ASCII, 3 non-ASCII.
_CLASS = np.full(256, 3, dtype=np.uint8)
for _byte in range(128):
    _char = chr(_byte)
    if _char in RESIDUE_CHARACTERS or _char in RESIDUE_CHARACTERS.lower():
        _CLASS[_byte] = 0
    elif re.fullmatch(r"\s", _char):
        _CLASS[_byte] = 1
    else:
        _CLASS[_byte] = 2
_UPPER_TABLE = bytes(range(256)).upper()
_ASCII_WHITESPACE = bytes(b for b in range(128) if _CLASS[b] == 1)
_RESIDUE_BYTES = RESIDUE_CHARACTERS.encode("ascii")
_RECORD_BLOCK = 1 << 20  # records per block of the per-record loop (bounds its Python lists)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class FastaIndex:
    """The index of one FASTA file and a reader of its records (see the module docstring).

    ``source`` is the file as the user named it (in every message); ``data`` is the buffer records are read from:
    the memory-mapped file, its decompressed copy, or the decompressed bytes.
    """

    source: Path
    data: mmap.mmap | bytes
    offsets: np.ndarray
    lengths: np.ndarray
    crc32: np.ndarray
    slow: np.ndarray
    invalid: np.ndarray
    folder: Path | None = None
    data_path: Path | None = None
    identity: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        """Bytes the index arrays take (on disk and, memory-mapped, in the page cache)."""
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    def digest(self) -> str:
        """SHA-256 of every record's residue count and split hash, in file order: the identity of the corpus this
        index describes (appended, removed or edited records change it; a re-wrapped or re-headed file does not)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.lengths, dtype="<u4").tobytes())
        digest.update(np.ascontiguousarray(self.crc32, dtype="<u4").tobytes())
        return digest.hexdigest()

    def check_unchanged(self) -> None:
        """Raise ``FastaFormatError`` if the memory-mapped file is no longer the one that was opened: reading a
        truncated mapping would kill the process with SIGBUS instead of raising."""
        if self.data_path is None or self.identity is None:
            return
        try:
            now: tuple[int, int, int, int] | None = _identity(self.data_path)
        except OSError:
            now = None
        if now == self.identity:
            return
        size = "gone" if now is None else f"{self.identity[2]} -> {now[2]} bytes"
        raise FastaFormatError(
            self.source,
            None,
            f"the file changed while this run reads it ({size}): it was truncated, rewritten or replaced; restore "
            "it, or start a new run on the new file",
        )

    # ------------------------------------------------------------------------------------------- reading
    def sequence(self, record: int, unknown: UnknownPolicy = "error") -> str:
        """The cleaned residues of ``record`` (upper case, whitespace dropped); ``unknown="X"`` maps characters
        outside the alphabet to X, as ``read_fasta`` does. Reads only that record's bytes."""
        self.check_unchanged()
        raw = self.data[int(self.offsets[record]) : int(self.offsets[record + 1])]
        if self._is_slow(record):
            entry = _parse_entry(raw.decode("utf-8"), 0)
            try:
                return clean_sequence(entry.text, unknown="X" if unknown == "X" else "error")
            except InvalidSequenceError:
                raise self.error(record) from None
        residues = raw[_header_end(raw) :].translate(_UPPER_TABLE, _ASCII_WHITESPACE)
        if len(residues) != self.lengths[record]:
            raise FastaFormatError(
                self.source,
                None,
                f"record {record} has {len(residues)} residues, the index says {int(self.lengths[record])}: the "
                f"file changed after it was indexed{f' (remove {self.folder})' if self.folder else ''}",
            )
        return residues.decode("ascii")

    def sequences(self, records: np.ndarray, unknown: UnknownPolicy = "error") -> list[str]:
        """``sequence`` of each of ``records``, with the index looked up once for all of them."""
        self.check_unchanged()
        records = np.asarray(records, dtype=np.int64)
        starts, ends = self.offsets[records].tolist(), self.offsets[records + 1].tolist()
        expected = self.lengths[records].tolist()
        slow = set(self.slow[np.isin(self.slow, records)].tolist()) if len(self.slow) else ()
        data, table, whitespace = self.data, _UPPER_TABLE, _ASCII_WHITESPACE
        found = []
        for record, start, end, length in zip(records.tolist(), starts, ends, expected, strict=True):
            if record in slow:
                found.append(self.sequence(record, unknown))
                continue
            raw = data[start:end]
            residues = raw[_header_end(raw) :].translate(table, whitespace)
            if len(residues) != length:
                found.append(self.sequence(record, unknown))  # raises the "file changed" error
                continue
            found.append(residues.decode("ascii"))
        return found

    def header(self, record: int) -> str:
        """The header text of ``record`` (after ``>``)."""
        self.check_unchanged()
        raw = self.data[int(self.offsets[record]) : int(self.offsets[record + 1])]
        return raw[: _header_end(raw)].decode("utf-8", errors="replace").strip()[1:].strip()

    def headers(self) -> list[str]:
        """Every record's header, in file order (one pass over the headers only)."""
        self.check_unchanged()
        data, offsets = self.data, self.offsets.tolist()
        found = []
        for start in offsets[:-1]:
            end = min(start + 4096, offsets[-1])
            line = data[start:end]
            cut = _header_end(line)
            while cut == len(line) and end < offsets[-1]:  # a header longer than 4 KiB
                end = min(end + (1 << 20), offsets[-1])
                line = data[start:end]
                cut = _header_end(line)
            found.append(line[:cut].decode("utf-8", errors="replace").strip()[1:].strip())
        return found

    def entry(self, record: int, raw: bytes | None = None, line: int | None = None) -> FastaEntry:
        """``record`` parsed exactly as ``read_fasta_entries`` parses it (header, text, file line of every
        residue). ``line`` is the header's line if known; otherwise it is counted (a pass over the file up to the
        record, so only for messages)."""
        if raw is None:
            raw = self.data[int(self.offsets[record]) : int(self.offsets[record + 1])]
        if line is None:
            line = int(line_numbers(self.data, [int(self.offsets[record])])[0])
        return _parse_entry(raw.decode("utf-8"), line)

    def error(self, record: int) -> InvalidSequenceError:
        """The error ``read_fasta`` raises for the invalid ``record`` (file, line, record, position, line)."""
        entry = self.entry(record)
        try:
            clean_sequence(entry.text, record=self._record_name(entry), locate=entry.line_of)
        except InvalidSequenceError as error:
            return error
        raise AssertionError(f"record {record} of {self.source} is valid")  # pragma: no cover

    def _record_name(self, entry: FastaEntry) -> str:
        return f"{self.source}:{entry.line} (>{entry.header})"

    def _is_slow(self, record: int) -> bool:
        if not len(self.slow):
            return False
        at = int(np.searchsorted(self.slow, record))
        return at < len(self.slow) and int(self.slow[at]) == record

    def held_out(self, fraction: float, seed: int = 0) -> np.ndarray:
        """Boolean per record: ``in_held_out_split(residues, fraction, seed)``, from the stored hashes."""
        if fraction <= 0:
            return np.zeros(len(self), dtype=bool)
        hashes = self.crc32 if seed == 0 else self._hashes(seed)
        return held_out_by_hash(hashes, fraction)

    def _hashes(self, seed: int) -> np.ndarray:
        """Split hashes for a seed other than 0: one pass reading every record (not cached)."""
        start = split_crc(seed)
        bad = set(self.invalid.tolist())
        return np.array(
            [
                0 if i in bad and not self.lengths[i] else zlib.crc32(self.sequence(i, "X").encode(), start)
                for i in range(len(self))
            ],
            dtype=np.uint32,
        )

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()


# ------------------------------------------------------------------------------------------ open / build / cache
def open_index(path: str | Path, cache_dir: str | Path | None = None) -> FastaIndex:
    """The index of ``path``: read from ``cache_dir`` if an index of the file's current contents is there, else
    built (and saved there, atomically). Gzip input is decompressed once (into the cache folder, or into memory
    without one). Bad bytes, a truncated gzip stream and text before the first header raise
    :class:`~protconv.data.fasta.FastaFormatError` naming the file and the line; invalid records do not raise here
    (see ``FastaIndex.invalid``), so one index serves every ``invalid_sequences`` policy."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"FASTA file not found: {source}")
    gzipped = _is_gzip(source)
    if cache_dir is None:
        data = _decompress_to_memory(source) if gzipped else _map(source)
        arrays = scan(data, source, source, gzipped)
        mapped = None if gzipped else source
        return FastaIndex(source, data, folder=None, data_path=mapped, identity=_identity(source), **arrays)
    folder = Path(cache_dir) / "fasta" / f"{_safe_name(source.name)}-{file_key(source)}"
    if folder.is_dir():
        try:
            return _load(source, folder, gzipped)
        except (OSError, ValueError, KeyError) as error:  # truncated or foreign: build again
            logger.warning("ignoring unreadable FASTA index %s (%s); indexing again", folder, error)
            shutil.rmtree(folder, ignore_errors=True)
    return _build_into(source, folder, gzipped)


def _identity(path: Path) -> tuple[int, int, int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def file_key(path: Path) -> str:
    """Size, modification time and the first and last MiB of ``path``, hashed: changes when the file does."""
    stat = path.stat()
    digest = hashlib.sha256(f"v{INDEX_VERSION}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_KEY_SPAN))
        if stat.st_size > _KEY_SPAN:
            handle.seek(max(_KEY_SPAN, stat.st_size - _KEY_SPAN))
            digest.update(handle.read(_KEY_SPAN))
    return digest.hexdigest()[:20]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _map(path: Path) -> mmap.mmap | bytes:
    if path.stat().st_size == 0:
        return b""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def _gzip_error(source: Path) -> FastaFormatError:
    problem = _locate_problem(source, True)
    line, message = problem if problem else (None, "the gzip stream is truncated or corrupt")
    return FastaFormatError(source, line, message)


def _decompress_to_memory(source: Path) -> bytes:
    try:
        with gzip.open(source, "rb") as handle:
            return handle.read()
    except _GZIP_ERRORS:
        raise _gzip_error(source) from None


def _build_into(source: Path, folder: Path, gzipped: bool) -> FastaIndex:
    """Build the index of ``source`` in a temporary folder beside ``folder`` and rename it into place."""
    parent = folder.parent
    created = [p for p in (parent.parent, parent) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    staging = new_staging(folder)
    try:
        if gzipped:
            data_path = staging / "data.fasta"
            try:
                with gzip.open(source, "rb") as compressed, open(data_path, "wb") as plain:
                    shutil.copyfileobj(compressed, plain, 1 << 24)
            except _GZIP_ERRORS:
                raise _gzip_error(source) from None
        else:
            data_path = source
        data = _map(data_path)
        arrays = scan(data, source, data_path, False)
        del data  # unmapped once the scan's views are gone
        if not len(arrays["lengths"]):
            raise InvalidSequenceError(f"{source}: no usable FASTA records (empty file, or not FASTA)")
        for name in _ARRAYS:
            np.save(staging / f"{name}.npy", arrays[name])
        meta = {
            "version": INDEX_VERSION,
            "source": str(source),
            "records": len(arrays["lengths"]),
            "gzip": gzipped,
            "sha256": content_digest(source),
        }
        (staging / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(staging, folder)
        except OSError:  # another process renamed its identical index into place first
            if not folder.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in reversed(created):  # leave no empty cache folder behind a failed first run
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    logger.info("indexed %s: %d records in %s", source, len(arrays["lengths"]), folder)
    return _load(source, folder, gzipped)


#: A staging sibling as the export names it (``.<target>.<host>.<pid>.<8 hex>``), so that its cleaner applies.
_STAGING = re.compile(r"\.(?P<target>.+)\.(?:old\.)?[A-Za-z0-9-]+\.\d+\.[0-9a-f]{8}")


def new_staging(folder: Path) -> Path:
    """A staging folder for ``folder``, named like the export's (host and pid in the name), after removing the
    staging folders of dead builds in the same cache folder: a kill while a gzip FASTA is decompressed leaves up to
    the whole corpus there, which nothing else would ever remove."""
    remove_dead_builds(folder.parent)
    return make_staging_sibling(folder, "")


def remove_dead_builds(parent: Path) -> list[Path]:
    """Staging folders in ``parent`` whose writer is dead, whatever they were building (the file may have
    changed since, giving its index another name): removed by the export's own rule
    (:func:`protconv.staging.remove_stale_staging`: this host's dead pids, other hosts' after a day), and the
    ``.partial-*`` leftovers of older versions untouched for a day (:func:`protconv.staging.remove_legacy_partials`)."""
    if not parent.is_dir():
        return []
    targets = sorted({m["target"] for path in parent.iterdir() if (m := _STAGING.fullmatch(path.name))})
    removed = [removed for target in targets for removed in remove_stale_staging(parent / target)]
    return removed + remove_legacy_partials(parent)


def _load(source: Path, folder: Path, gzipped: bool) -> FastaIndex:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("version") != INDEX_VERSION:
        raise ValueError(f"index version {meta.get('version')}, expected {INDEX_VERSION}")
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _ARRAYS}
    if len(arrays["offsets"]) != meta["records"] + 1 or len(arrays["lengths"]) != meta["records"]:
        raise ValueError("index arrays do not match their record count")
    if meta.get("sha256") != content_digest(source):
        raise ValueError(f"{source} changed since it was indexed (same size and modification time, other content)")
    data_path = folder / "data.fasta" if gzipped else source
    data = _map(data_path)
    if int(arrays["offsets"][-1]) != len(data):
        raise ValueError(f"the indexed data has {len(data)} bytes, the index expects {int(arrays['offsets'][-1])}")
    return FastaIndex(source, data, folder=folder, data_path=data_path, identity=_identity(data_path), **arrays)


# ---------------------------------------------------------------------------------------------------- the scan
def scan(data: mmap.mmap | bytes, source: Path, data_path: Path, gzipped: bool) -> dict[str, np.ndarray]:
    """Index arrays of ``data`` (see the module docstring). ``source`` names the file in messages;
    ``data_path``/``gzipped`` say where to re-read it to locate a bad byte.

    Headers are found with numpy over the whole buffer; then one C-level ``bytes.translate`` per record drops
    whitespace and upper-cases, which gives the residue count, the split hash and whether any byte is outside
    the alphabet. Records with such bytes, or with non-ASCII bytes anywhere, are re-read by the exact reader.
    """
    size = len(data)
    start = len(_BOM) if data[: len(_BOM)] == _BOM else 0
    view = np.frombuffer(data, dtype=np.uint8) if size else np.zeros(0, dtype=np.uint8)
    starts, ends = _headers(data, view, start)
    n = len(starts)
    preamble_end = int(starts[0]) if n else size
    if data[start:preamble_end].translate(None, _ASCII_WHITESPACE):
        _check_preamble(data, start, preamble_end, source, data_path, gzipped)
    lengths, crc, unusual = _translate_records(data, starts, ends)
    high = np.flatnonzero(view >= 128) if n and _has_high_bytes(view) else np.zeros(0, dtype=np.int64)
    slow = np.union1d(np.asarray(unusual, dtype=np.int64), _records_of(high, starts))
    slow = slow[slow >= 0]
    offsets = np.append(starts, size).astype(np.uint64)
    invalid = _reread_slow_records(data, offsets, slow, lengths, crc, source, data_path, gzipped)
    if len(lengths) and int(lengths.max()) >= 2**32:
        raise FastaFormatError(source, None, "a record of 4 billion residues or more")
    return {
        "offsets": offsets,
        "lengths": lengths.astype(np.uint32),
        "crc32": crc,
        "slow": slow.astype(np.int64),
        "invalid": np.asarray(invalid, dtype=np.int64),
    }


def _translate_records(
    data: mmap.mmap | bytes, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The fast pass: per record, one ``bytes.translate`` of its sequence lines gives the residue count (uint64)
    and the split hash (uint32); records with no residues or bytes outside the alphabet are listed as unusual.
    Records are taken in blocks of ``_RECORD_BLOCK`` so that the Python lists of offsets stay bounded."""
    size, n = len(data), len(starts)
    lengths, hashes, unusual = array("Q"), array("I"), []
    table, whitespace, residues, crc32, first = _UPPER_TABLE, _ASCII_WHITESPACE, _RESIDUE_BYTES, zlib.crc32, split_crc()
    for block in range(0, n, _RECORD_BLOCK):
        sequence_starts = ends[block : block + _RECORD_BLOCK].tolist()
        sequence_ends = [*starts[block + 1 : block + _RECORD_BLOCK + 1].tolist()]
        if len(sequence_ends) < len(sequence_starts):
            sequence_ends.append(size)
        for record, (a, b) in enumerate(zip(sequence_starts, sequence_ends, strict=True), start=block):
            packed = data[a:b].translate(table, whitespace)
            lengths.append(len(packed))
            hashes.append(crc32(packed, first))
            if not packed or packed.translate(None, residues):
                unusual.append(record)
    lengths_array = np.frombuffer(lengths, dtype=np.uint64).copy() if n else np.zeros(0, dtype=np.uint64)
    crc = np.frombuffer(hashes, dtype=np.uint32).copy() if n else np.zeros(0, dtype=np.uint32)
    return lengths_array, crc, unusual


def _reread_slow_records(
    data: mmap.mmap | bytes,
    offsets: np.ndarray,
    slow: np.ndarray,
    lengths: np.ndarray,
    crc: np.ndarray,
    source: Path,
    data_path: Path,
    gzipped: bool,
) -> list[int]:
    """The exact pass over the ``slow`` records: their ``lengths`` and ``crc`` are overwritten in place with those
    of the record as ``invalid_sequences=X`` reads it (0 without residues); returns the records ``read_fasta``
    would reject. Bytes that are not UTF-8 raise, located by re-reading ``data_path``."""
    invalid = []
    for record in slow.tolist():
        raw = data[int(offsets[record]) : int(offsets[record + 1])]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8_error(source, data_path, gzipped) from None
        entry = _parse_entry(text, 0)
        try:
            residues_text = clean_sequence(entry.text)
        except InvalidSequenceError:
            invalid.append(record)
            try:
                residues_text = clean_sequence(entry.text, unknown="X")
            except InvalidSequenceError:  # no residues at all
                residues_text = ""
        lengths[record] = len(residues_text)
        crc[record] = zlib.crc32(residues_text.encode(), split_crc()) if residues_text else 0
    return invalid


def _has_high_bytes(view: np.ndarray) -> bool:
    return any(int(view[a : a + _CHUNK].max()) >= 128 for a in range(0, len(view), _CHUNK))


def _headers(data: mmap.mmap | bytes, view: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets of every header's ``>`` and of the line break that ends it (or the end of the data).

    A header is a line whose first non-whitespace character is ``>``; lines break at ``\\n``, ``\\r\\n`` or a
    lone ``\\r`` (universal newlines, as the text reader sees them)."""
    size = len(view)
    found_starts, found_ends = [], []
    for a in range(start, size, _CHUNK):
        b = min(a + _CHUNK, size)
        chunk = view[a:b]
        marks = np.flatnonzero(chunk == 62) + a
        if not len(marks):
            continue
        before = view[np.maximum(marks - 1, 0)]
        at_line_start = (marks == start) | (before == 10) | (before == 13)
        unsure = ~at_line_start & ((_CLASS[before] == 1) | (_CLASS[before] == 3))
        for position in marks[unsure].tolist():  # '>' after spaces or tabs: a header if the line holds only those
            line_start = max(data.rfind(b"\n", start, position), data.rfind(b"\r", start, position)) + 1
            prefix = data[max(line_start, start) : position].decode("utf-8", errors="replace")
            at_line_start[np.searchsorted(marks, position)] = not prefix.strip()
        heads = marks[at_line_start]
        if not len(heads):
            continue
        breaks = np.flatnonzero(chunk == 10)
        returns = np.flatnonzero(chunk == 13)
        if len(returns):
            breaks = np.union1d(breaks, returns)
        breaks = breaks + a
        at = np.searchsorted(breaks, heads)
        ends = np.empty(len(heads), dtype=np.int64)
        inside = at < len(breaks)
        ends[inside] = breaks[at[inside]]
        for k in np.flatnonzero(~inside).tolist():  # the header line runs past this slice
            found = [p for p in (data.find(b"\n", int(heads[k])), data.find(b"\r", int(heads[k]))) if p >= 0]
            ends[k] = min(found) if found else size
        found_starts.append(heads)
        found_ends.append(ends)
    if not found_starts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_starts).astype(np.int64), np.concatenate(found_ends)


def _records_of(positions: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The record holding each byte position (-1: before the first header), unique and sorted."""
    if not len(positions):
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.searchsorted(starts, positions, "right") - 1)


def _check_preamble(
    data: mmap.mmap | bytes, start: int, end: int, source: Path, data_path: Path, gzipped: bool
) -> None:
    """Text before the first header: bad bytes, then any non-blank line, raise as ``read_fasta_entries`` does."""
    try:
        text = data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8_error(source, data_path, gzipped) from None
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if line.strip():
            raise FastaFormatError(source, number, "sequence data before the first '>' header")


def _not_utf8_error(source: Path, data_path: Path, gzipped: bool) -> FastaFormatError:
    """The error for bytes that are not UTF-8, at the line the exact reader finds them on."""
    problem = _locate_problem(data_path, gzipped)
    line, message = problem if problem else (None, "bytes that are not UTF-8 text")
    return FastaFormatError(source, line, message)


def _header_end(raw: bytes) -> int:
    """Offset of the line break that ends the header at the start of ``raw`` (``len(raw)`` if none)."""
    found = [p for p in (raw.find(b"\n"), raw.find(b"\r")) if p >= 0]
    return min(found) if found else len(raw)


def _parse_entry(text: str, header_line: int) -> FastaEntry:
    """One record's text parsed line by line as ``read_fasta_entries`` parses a file (``header_line``: its line)."""
    lines = _LINE_BREAK.split(text)
    header = lines[0].strip()[1:].strip()
    numbers, chunks = [], []
    for offset, raw in enumerate(lines[1:], start=1):
        line = raw.strip()
        if line:
            numbers.append(header_line + offset)
            chunks.append("".join(line.split()))
    return FastaEntry(header, "".join(chunks), header_line, numbers, chunks)


def line_numbers(data: mmap.mmap | bytes, positions: list[int]) -> np.ndarray:
    """1-based line of each byte position (lines break at ``\\n``, ``\\r\\n`` and a lone ``\\r``)."""
    view = np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(0, dtype=np.uint8)
    wanted = np.asarray(positions, dtype=np.int64)
    lines = np.ones(len(wanted), dtype=np.int64)
    limit = int(wanted.max()) if len(wanted) else 0
    for a in range(0, limit, _CHUNK):
        b = min(a + _CHUNK, limit)
        chunk = view[a:b]
        breaks = np.flatnonzero(chunk == 10)
        returns = np.flatnonzero(chunk == 13)
        if len(returns):
            following = view[np.minimum(returns + a + 1, len(view) - 1)]
            lone = returns[(following != 10) | (returns + a + 1 >= len(view))]
            breaks = np.union1d(breaks, lone)
        lines += np.searchsorted(breaks + a, wanted, "left")
    return lines
