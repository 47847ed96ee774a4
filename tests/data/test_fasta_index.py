"""FASTA indexes: built once by a vectorised scan, cached atomically, re-built when the file changes, gzip
decompressed once, and exactly as strict as the streaming reader (same errors, same messages)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protconv import staging
from protconv.data import fasta_index
from protconv.data.fasta import FastaFormatError, read_fasta
from protconv.data.fasta_corpus import FastaCorpus, FastaRecords, in_held_out_split
from protconv.data.fasta_index import open_index
from protconv.tokenization import InvalidSequenceError
from tests.data import test_malformed_inputs as malformed
from tests.helpers import DATA

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "structural_proteins_4k.fasta.gz"


@pytest.fixture(scope="module")
def slice_records() -> list[str]:
    return [record.sequence for record in read_fasta(SLICE)]


def test_index_reads_every_record_like_the_stream_in_16_bytes_each(tmp_path, slice_records) -> None:
    index = open_index(SLICE, tmp_path)
    assert len(index) == len(slice_records) == 4000
    assert [index.sequence(i) for i in range(len(index))] == slice_records
    assert list(index.lengths) == [len(s) for s in slice_records]
    assert index.nbytes <= 16 * len(index) + 64, "offsets (8) + length (4) + split hash (4) per record"
    held = index.held_out(0.05)
    assert list(held) == [in_held_out_split(s, 0.05) for s in slice_records]
    (folder,) = (tmp_path / "fasta").iterdir()
    assert (folder / "data.fasta").is_file(), "gzip input is decompressed once, into the cache"
    assert np.load(folder / "offsets.npy", mmap_mode="r").dtype == np.uint64


def test_index_is_reused_and_rebuilt_when_the_file_changes(tmp_path, monkeypatch) -> None:
    source = tmp_path / "proteins.fasta"
    shutil.copy(DATA / "some_proteins.fasta", source)
    cache = tmp_path / "cache"
    first = open_index(source, cache)
    calls = []
    real_scan = fasta_index.scan
    monkeypatch.setattr(fasta_index, "scan", lambda *a: calls.append(a) or real_scan(*a))
    assert [open_index(source, cache).sequence(i) for i in range(len(first))] == [
        first.sequence(i) for i in range(len(first))
    ]
    assert not calls, "an unchanged file is not scanned again"
    source.write_text(source.read_text() + ">new\nMKTAYIAK\n")
    again = open_index(source, cache)
    assert len(calls) == 1 and len(again) == len(first) + 1 and again.sequence(len(first)) == "MKTAYIAK"
    same_size = source.read_text().replace("MKTAYIAK", "MKTAYIAQ")
    source.write_text(same_size)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert open_index(source, cache).sequence(len(first)) == "MKTAYIAQ" and len(calls) == 2
    assert len(list((cache / "fasta").iterdir())) == 3, "one folder per content key"


def test_index_is_written_atomically(tmp_path, monkeypatch) -> None:
    source = tmp_path / "proteins.fasta"
    shutil.copy(DATA / "some_proteins.fasta", source)
    cache = tmp_path / "cache"
    real_save = np.save
    saved = []

    def dies_after_two(path, array):
        if len(saved) == 2:
            raise OSError("disk full")
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr(fasta_index.np, "save", dies_after_two)
    with pytest.raises(OSError, match="disk full"):
        open_index(source, cache)
    assert not cache.exists(), "a failed first build leaves no folder behind"
    monkeypatch.setattr(fasta_index.np, "save", real_save)
    index = open_index(source, cache)
    (folder,) = (cache / "fasta").iterdir()
    assert not folder.name.startswith(".partial") and len(index) == 15
    (folder / "lengths.npy").write_bytes(b"\x93NUMPY garbage")  # a damaged index is rebuilt, not misread
    assert [open_index(source, cache).sequence(i) for i in range(15)] == [r.sequence for r in read_fasta(source)]


def test_gzip_without_a_cache_and_truncated_gzip(tmp_path, slice_records) -> None:
    index = open_index(SLICE)  # no cache folder: decompressed into memory
    assert index.sequence(3999) == slice_records[-1]
    broken = tmp_path / "cut.fasta.gz"
    broken.write_bytes(SLICE.read_bytes()[:20_000])
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(FastaFormatError, match=r"cut\.fasta\.gz:\d+: the gzip stream is truncated"):
            open_index(broken, cache)
    assert not (tmp_path / "cache").exists()


def _outcome(function) -> tuple:
    try:
        return ("ok", function())
    except (ValueError, FileNotFoundError) as error:
        return (type(error).__name__, str(error))


FASTA_CASES = [case for case in malformed.CASES if case.read in (malformed.fasta, malformed.corpus)]


@pytest.mark.parametrize("case", FASTA_CASES, ids=[case.id for case in FASTA_CASES])
def test_indexed_records_are_exactly_as_strict_as_the_stream(tmp_path, case) -> None:
    """Every malformed-FASTA case of the sweep, under each policy: the same records or the same error message."""
    paths = []
    for name, data in case.files.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    for policy in ("error", "skip", "X"):
        expected = _outcome(lambda: list(FastaCorpus(paths, invalid=policy)))  # noqa: B023

        def indexed():
            records = FastaRecords(paths, invalid=policy, cache_dir=tmp_path / "cache")  # noqa: B023
            return records.read(np.arange(len(records)))

        assert _outcome(indexed) == expected, policy


def test_skip_counts_and_logs_invalid_records_with_file_and_line(tmp_path, caplog) -> None:
    path = tmp_path / "mixed.fasta"
    path.write_bytes(b">a\nMKT\n>b\nMK9T\n>c\nQQ\n>d\nMK\nT1\n")
    with caplog.at_level(logging.WARNING):
        records = FastaRecords([path], invalid="skip", cache_dir=tmp_path / "cache")
    assert records.skipped == 2 and records.read(np.arange(len(records))) == ["MKT", "QQ"]
    messages = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert any("mixed.fasta:3 (>b): character '9' at position 3 (line 4)" in m for m in messages)
    assert any("mixed.fasta:7 (>d): character '1' at position 4 (line 9)" in m for m in messages)
    with pytest.raises(InvalidSequenceError, match=r"mixed\.fasta:3 \(>b\): character '9' at position 3 \(line 4\)"):
        FastaRecords([path], cache_dir=tmp_path / "cache")  # the cached index raises again, every start


def test_a_late_bad_byte_names_its_line(tmp_path) -> None:
    lines = [f">p{i}\nMKTAYIAKQRQISFVKSHFSRQ\n".encode() for i in range(2000)]
    lines[1500] = b">p1500\nMKTAY\xffIAKQ\n"
    path = tmp_path / "late.fasta"
    path.write_bytes(b"".join(lines))
    with pytest.raises(InvalidSequenceError, match=r"late\.fasta:3002: .*byte 0xff at column 6.*record >p1500"):
        FastaRecords([path], cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npy")), "no index of an unreadable file"


def test_unusual_layouts_wrapping_crlf_lone_cr_indented_headers(tmp_path) -> None:
    text = ">a desc\nMKTA\nyiak\n\n  >b\n QQ RR \n>c\n*-X\n"
    for variant in (text, text.replace("\n", "\r\n"), text.replace("\n", "\r"), "\ufeff" + text):
        path = tmp_path / "layout.fasta"
        path.write_bytes(variant.encode())
        index = open_index(path)
        assert [index.sequence(i) for i in range(len(index))] == [r.sequence for r in read_fasta(path)]
        assert [index.header(i) for i in range(3)] == ["a desc", "b", "c"]


def test_records_of_every_file_are_numbered_in_order(tmp_path) -> None:
    plain = tmp_path / "b.fasta"
    plain.write_text(">x\nMKT\n>y\nQQQ\n")
    records = FastaRecords([DATA / "some_proteins.fasta", plain], cache_dir=tmp_path / "cache")
    assert len(records) == 17 and list(records.lengths[-2:]) == [3, 3]
    assert records.read(np.array([16, 15, 0])) == [
        "QQQ",
        "MKT",
        next(read_fasta(DATA / "some_proteins.fasta")).sequence,
    ]
    assert records.reads == 3
    assert records.record_ids()[-2:] == ["x", "y"]


def test_an_edit_that_keeps_size_and_mtime_is_indexed_again(tmp_path) -> None:
    fasta = tmp_path / "p.fasta"
    filler = f">c\n{'M' * 1000}\n" * 1500  # 1.5 MB each side: the cache key hashes only the first and last MiB
    fasta.write_text(filler + ">b\n" + "QQRRSSTT" * 40 + "\n" + filler)
    first = open_index(fasta, tmp_path / "cache")
    assert first.sequence(1500).startswith("QQRR")
    stat = fasta.stat()
    fasta.write_bytes(fasta.read_bytes().replace(b"QQRRSSTT", b"WWRRSSTT", 1))  # the middle: key unchanged
    os.utime(fasta, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fasta_index.file_key(fasta) == first.folder.name.rsplit("-", 1)[1]
    again = open_index(fasta, tmp_path / "cache")
    assert again.sequence(1500).startswith("WWRR")
    assert again.digest() != first.digest()


_TRUNCATE_WHILE_MAPPED = """
import sys
from pathlib import Path
from protconv.data.fasta import DataFileError
from protconv.data.fasta_index import open_index
fasta = Path(sys.argv[1])
index = open_index(fasta, fasta.parent / "cache")
with open(fasta, "r+b") as handle:
    handle.truncate(100)
try:
    index.sequences(index.offsets[:0].astype("int64").tolist() + [len(index) - 1])
except DataFileError as error:
    print("ERROR", error)
"""


def test_a_file_truncated_while_mapped_is_a_data_file_error_not_sigbus(tmp_path) -> None:
    fasta = tmp_path / "p.fasta"
    fasta.write_text("".join(f">r{i}\n{'MKTAYIAKQR' * 100}\n" for i in range(200)))  # ~200 kB: many pages
    run = subprocess.run([sys.executable, "-c", _TRUNCATE_WHILE_MAPPED, str(fasta)], capture_output=True, text=True)
    assert run.returncode == 0, f"killed by signal {-run.returncode}" if run.returncode < 0 else run.stderr
    assert f"ERROR {fasta}: the file changed while this run reads it" in run.stdout


def test_a_dead_build_leaves_nothing_behind(tmp_path) -> None:
    fasta = tmp_path / "p.fasta.gz"
    shutil.copyfile(SLICE, fasta)
    parent = tmp_path / "cache" / "fasta"
    dead = parent / ".p.fasta.gz-0123456789abcdef0123.somehost.999999999.0123abcd"  # another host: kept a day
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    killed.kill()
    killed.wait()
    mine = parent / f".p.fasta.gz-0123456789abcdef0123.{staging._host()}.{killed.pid}.0123abcd"
    for path in (dead, mine):
        path.mkdir(parents=True)
        (path / "data.fasta").write_bytes(b">half\nMKT")
    index = open_index(fasta, tmp_path / "cache")
    assert not mine.exists(), "the staging folder of a dead process of this host is removed"
    assert dead.exists(), "another host's may still be in use"
    assert sorted(p.name for p in parent.iterdir()) == sorted([dead.name, index.folder.name])
