"""embed and predict on 2 processes (torchrun, gloo on the CPU) give the files of 1 process, bit for bit; a run
with a killed rank continues at 1 process; the token plan is balanced and deterministic."""

from __future__ import annotations

import gzip
import importlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import protconv
from protconv.data import read_fasta
from protconv.data.fasta_index import FastaIndex, open_index
from protconv.inference.common import plan_batches
from protconv.inference.distributed import (
    EXIT_AFTER_ENV,
    Ranks,
    broadcast_bytes,
    detect_ranks,
    find_shards,
    imbalance,
    pad_to_width,
    plan_chunks,
    rank_tokens,
    shard_path,
)
from protconv.inference.embed import embed
from protconv.inference.inputs import PendingRecords, pending_records, rank_records, read_records
from protconv.inference.predict import predict
from protconv.tokenization.encoding import SequenceEncoder
from tests.inference.conftest import FASTA, save_model, write_fasta

SRC = Path(protconv.__file__).resolve().parent.parent


def launch(processes: int, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N -m protconv ARGS`` with one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.run(
        [*command, "-m", "protconv", *arguments], env=environment, capture_output=True, text=True, timeout=300
    )


@contextmanager
def one_thread():
    """The threads of a launched process (results depend on the thread count, so references use the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def assert_same_h5(expected: Path, found: Path) -> None:
    """Same file attributes, groups, datasets (bit for bit) and group attributes."""
    with h5py.File(expected, "r") as one, h5py.File(found, "r") as other:
        assert {k: str(v) for k, v in one.attrs.items()} == {k: str(v) for k, v in other.attrs.items()}
        assert sorted(one) == sorted(other)
        for name in one:
            if isinstance(one[name], h5py.Dataset):  # the root datasets ids (and mean, with --stack)
                assert np.array_equal(one[name][()], other[name][()]), name
                continue
            assert sorted(one[name]) == sorted(other[name])
            for item in one[name]:
                assert np.array_equal(one[name][item][()], other[name][item][()]), (name, item)
            assert {k: str(v) for k, v in one[name].attrs.items()} == {k: str(v) for k, v in other[name].attrs.items()}


@pytest.fixture
def conv_model(tmp_path, tiny_conv_config) -> Path:
    return save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "conv")


def test_two_processes_embed_the_file_of_one(tmp_path, conv_model):
    options = ["--include", "mean,per_residue", "--layers", "last,1", "--max_tokens_per_batch", "2000"]
    done = launch(2, "embed", str(conv_model), str(FASTA), str(tmp_path / "two.h5"), *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote 15 records") == 1  # rank 0 reports
    with one_thread():
        embed(conv_model, FASTA, tmp_path / "one.h5", include="mean,per_residue", layers="last,1",
              max_tokens_per_batch=2000, progress=False)  # fmt: skip
    assert_same_h5(tmp_path / "one.h5", tmp_path / "two.h5")
    assert not find_shards(tmp_path / "two.h5", ".h5")
    # No shard, lock or temporary; the FASTA's index, which every rank read its records through, in data_cache.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv", "data_cache", "one.h5", "two.h5"]
    assert [p.name.split("-")[0] for p in (tmp_path / "data_cache" / "fasta").iterdir()] == [FASTA.name]


def test_a_killed_rank_continues_at_one_process_and_a_changed_record_is_recomputed(tmp_path, conv_model):
    # One record per batch (max_tokens_per_batch 1): a record's values do not depend on what ran with it, so the
    # resumed file can be compared bit for bit with an uninterrupted one.
    killed = tmp_path / "killed.h5"
    arguments = ["embed", str(conv_model), str(FASTA), str(killed), "--max_tokens_per_batch", "1"]
    done = launch(2, *arguments, env={EXIT_AFTER_ENV: "1:2"})
    assert done.returncode != 0
    shard = killed.with_name("killed.h5.rank-1-of-2.partial.h5")
    with h5py.File(shard, "r") as store:
        in_shard = sorted(store)
    assert len(in_shard) == 2
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in (killed, shard):
        shutil.copy(path, copy / path.name)
    with one_thread():
        reference = embed(conv_model, FASTA, tmp_path / "one.h5", max_tokens_per_batch=1, progress=False)
        resumed = embed(conv_model, FASTA, killed, max_tokens_per_batch=1, progress=False)
    assert resumed.skipped >= 2 and resumed.written == reference.written - resumed.skipped
    assert_same_h5(tmp_path / "one.h5", killed)
    assert not shard.exists()

    # The same killed run, after the FASTA changed a record that only the shard holds: it is computed again.
    records = [(r.id, r.sequence) for r in read_fasta(FASTA)]
    changed = [(name, sequence[::-1] if name == in_shard[0] else sequence) for name, sequence in records]
    edited = write_fasta(tmp_path / "edited.fasta", changed)
    with one_thread():
        embed(conv_model, edited, tmp_path / "edited-one.h5", max_tokens_per_batch=1, progress=False)
        embed(conv_model, edited, copy / killed.name, max_tokens_per_batch=1, progress=False)
    assert_same_h5(tmp_path / "edited-one.h5", copy / killed.name)


def test_two_processes_predict_the_csv_of_one(tmp_path, tiny_conv_config):
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")
    done = launch(2, "predict", str(folder), str(FASTA), str(tmp_path / "two.csv"), "--max_tokens_per_batch", "2000")
    assert done.returncode == 0, done.stderr[-3000:]
    stale = tmp_path / "one.csv.rank-2-of-3.partial.jsonl"  # a killed 3-process run's shard: never reused
    stale.write_text('[0, ["9.9"]]\n', encoding="utf-8")
    with one_thread():
        predict(folder, FASTA, tmp_path / "one.csv", max_tokens_per_batch=2000, progress=False)
    one = (tmp_path / "one.csv").read_text()
    assert "9.9" not in one
    assert (tmp_path / "two.csv").read_text() == one and one.count("\n") == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data_cache", "one.csv", "regression", "two.csv"]


def test_the_plan_runs_the_batches_of_one_process_balanced():
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(5.6, 0.6, 120_000), 20, 3000).astype(int).tolist()
    plans = {n: plan_chunks(lengths, 10_000, 16_384, 2, n) for n in (1, 2, 8, 64)}
    for n, plan in plans.items():
        for start, batches in zip(range(0, len(lengths), 10_000), plan, strict=True):
            assert [b.members for b in batches] == plan_batches(lengths[start : start + 10_000], 16_384, 2)
        loads = rank_tokens(plan, n)
        assert imbalance(loads) <= 1.1, (n, imbalance(loads))
        assert sum(loads) == sum(rank_tokens(plans[1], 1))
    assert plan_chunks(lengths, 10_000, 16_384, 2, 8) == plans[8]  # deterministic


def test_ranks_come_from_the_launchers_environment(monkeypatch, tmp_path):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert detect_ranks() == Ranks(0, 1, 0) and not detect_ranks().distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert detect_ranks() == Ranks(3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4"):
        detect_ranks()
    output = tmp_path / "out.h5"
    for ranks in (Ranks(1, 2), Ranks(0, 2), Ranks(2, 3)):
        shard_path(output, ranks, ".h5").touch()
    (tmp_path / "out.h5.rank-1-of-2.partial.h5.tmp").touch()
    assert [p.name for p in find_shards(output, ".h5")] == [
        "out.h5.rank-0-of-2.partial.h5",
        "out.h5.rank-1-of-2.partial.h5",
        "out.h5.rank-2-of-3.partial.h5",
    ]


class CountingIndex(FastaIndex):
    """A FASTA index that records which records were read."""

    read: list[int]

    def sequences(self, records, unknown="error"):
        self.read.extend(np.asarray(records).tolist())
        return super().sequences(records, unknown)

    def sequence(self, record, unknown="error"):
        self.read.append(int(record))
        return super().sequence(record, unknown)


def counting_index(path: Path, cache: Path) -> CountingIndex:
    index = open_index(path, cache)
    counting = CountingIndex(**{name: getattr(index, name) for name in index.__dataclass_fields__})
    counting.read = []
    return counting


def test_each_rank_reads_only_its_records_and_they_are_the_records_of_one_process(tmp_path):
    # Repeated ids (renamed or skipped as read_records does) and a wrapped, lower-case record.
    records = [(r.id, r.sequence) for r in read_fasta(FASTA)]
    records[4] = (records[1][0], records[4][1].lower())
    records[9] = (records[1][0], records[9][1])
    fasta = tmp_path / "input.fasta"
    fasta.write_text("".join(f">{name} some words\n{s[:50]}\n{s[50:]}\n" for name, s in records), encoding="utf-8")
    for duplicate_ids in ("rename", "skip"):
        expected = [(r.id, r.sequence) for r in read_records(fasta, "error", duplicate_ids)]
        done = {expected[2][0]}  # already in the output: never planned, never read
        found = pending_records(counting_index(fasta, tmp_path / "cache"), duplicate_ids, done.__contains__)
        found = PendingRecords.decode(found.encode())  # what the other ranks receive
        assert found.records == len(expected) and int(found.todo.sum()) == len(expected) - 1
        pending = [record for record in expected if record[0] not in done]
        lengths = [len(sequence) for _, sequence in pending]
        plan = plan_chunks(lengths, 4, 800, 2, 2)
        seen: dict[int, tuple[str, str]] = {}
        for rank in range(2):
            index = counting_index(fasta, tmp_path / "cache")
            mine = [[i for b in batches if b.rank == rank for i in b.members] for batches in plan]
            stream = list(rank_records(index, found, mine, 4, "error"))
            assert len(stream) == len(pending)
            positions = [c * 4 + i for c, members in enumerate(mine) for i in members]
            assert sorted(index.read) == sorted(found.numbers[positions].tolist())  # its records, each once
            assert 0 < len(positions) < len(pending)
            for position, record in enumerate(stream):
                if position in positions:
                    seen[position] = (record.id, record.sequence)
                else:
                    assert record.sequence == ""  # a placeholder: nothing read
        assert [seen[i] for i in range(len(pending))] == pending
    # A gzip FASTA: indexed once into the cache (decompressed there), then read the same way.
    packed = tmp_path / "input.fasta.gz"
    packed.write_bytes(gzip.compress(fasta.read_bytes()))
    index = open_index(packed, tmp_path / "cache")
    found = pending_records(index, "rename", lambda record_id: False)
    count = len(found.numbers)
    everything = [list(range(min(4, count - start))) for start in range(0, count, 4)]  # one rank: every record
    stream = [(r.id, r.sequence) for r in rank_records(index, found, everything, 4, "error")]
    assert stream == [(r.id, r.sequence) for r in read_records(packed, "error", "rename")]
    assert (index.folder / "data.fasta").is_file()


def test_broadcast_bytes_of_one_process_is_the_data():
    assert broadcast_bytes(Ranks(), b"abc") == b"abc"


def test_at_many_ranks_batches_are_cut_into_slices_of_their_width_and_balanced():
    rng = np.random.default_rng(1)
    lengths = np.clip(rng.lognormal(5.6, 0.6, 30_000), 20, 3000).astype(int)[:10_000].tolist()
    whole = plan_chunks(lengths, 10_000, 16_384, 2, 64)
    assert imbalance(rank_tokens(whole, 64)) > 1.1  # too few whole batches for 64 ranks
    plan = plan_chunks(lengths, 10_000, 16_384, 2, 64, split=True)
    assert imbalance(rank_tokens(plan, 64)) <= 1.1
    assert sum(rank_tokens(plan, 64)) == sum(rank_tokens(whole, 64))  # the same padded tokens in all
    for start, batches in zip(range(0, len(lengths), 10_000), plan, strict=True):
        chunk = lengths[start : start + 10_000]
        expected = [(b, chunk[b[0]] + 2) for b in plan_batches(chunk, 16_384, 2)]
        pieces = iter(batches)
        for members, width in expected:  # each batch's slices, in order, at the batch's width
            found: list[int] = []
            while len(found) < len(members):
                piece = next(pieces)
                assert piece.width == width and piece.tokens == len(piece.members) * width
                found += piece.members
            assert found == members
    assert plan_chunks(lengths, 10_000, 16_384, 2, 2, split=True) == plan_chunks(lengths, 10_000, 16_384, 2, 2)


class PaddingEncoder:
    """An encoder whose batches are padded to ``width`` tokens (what a row slice of a wider batch needs)."""

    def __init__(self, encoder, width: int) -> None:
        self.encoder, self.width, self.framing, self.tokenizer = encoder, width, encoder.framing, encoder.tokenizer

    def __call__(self, sequences, device="cpu"):
        return pad_to_width(self.encoder(sequences, device), self.width, self.encoder.tokenizer.pad_token_id)


@pytest.mark.parametrize("family", ["conv", "performer"])
def test_a_slice_padded_to_its_batch_width_embeds_the_bits_of_the_whole_batch(family, request):
    from protconv.inference.embed import _embed_batch

    config = request.getfixturevalue(f"tiny_{family}_config")
    torch.manual_seed(0)
    network = (protconv.ConvModel if family == "conv" else protconv.PerformerModel)(config).eval()
    encoder = SequenceEncoder(protconv.build_tokenizer())
    records = list(read_fasta(FASTA))
    lengths = [len(record.sequence) for record in records]
    cpu, layers, include = torch.device("cpu"), ("last", "1"), ("mean", "per_residue", "cls")
    with one_thread():
        (batch,) = plan_batches(lengths, 100_000, 2)
        whole = _embed_batch(network, encoder, [records[i] for i in batch], layers, include, cpu)
        plan = plan_chunks(lengths, 100, 100_000, 2, 4, split=True)[0]
        assert len(plan) == 7 and all(len(piece.members) >= 2 for piece in plan)  # 15 rows: slices of 2 or 3
        padded = PaddingEncoder(encoder, plan[0].width)
        for piece in plan:
            found = _embed_batch(network, padded, [records[i] for i in piece.members], layers, include, cpu)
            for item in include:
                for row, member in enumerate(piece.members):
                    assert np.array_equal(found[item][row], whole[item][batch.index(member)]), (item, member)


def test_overwrite_on_two_processes_keeps_the_other_ranks_records(tmp_path, conv_model):
    # The end-of-run merge once read --overwrite as "remove the shards": rank 1's records were lost.
    output = tmp_path / "two.h5"
    with one_thread():
        embed(conv_model, FASTA, tmp_path / "one.h5", progress=False)
        embed(conv_model, FASTA, output, layers="0", progress=False)  # other settings: only --overwrite replaces
    done = launch(2, "embed", str(conv_model), str(FASTA), str(output), "--overwrite")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_h5(tmp_path / "one.h5", output)
    assert not find_shards(output, ".h5")


def test_this_runs_shards_are_copied_unchecked_and_a_leftover_shard_is_checked(tmp_path, conv_model, monkeypatch):
    embed_module = importlib.import_module("protconv.inference.embed")  # the package exports the function embed

    checked: list[str] = []
    complete_group = embed_module._complete_group

    def spy(store, name, *args):
        checked.append(Path(store.file.filename).name)
        return complete_group(store, name, *args)

    monkeypatch.setattr(embed_module, "_complete_group", spy)
    records = [(r.id, r.sequence) for r in read_fasta(FASTA)]
    output = tmp_path / "out.h5"
    leftover = output.with_name("out.h5.rank-1-of-2.partial.h5")  # a killed 2-process run's shard
    written = tmp_path / "written.h5"  # stands for a shard this run's rank 1 wrote
    with one_thread():  # one record per batch: a record's values do not depend on what ran with it
        embed(conv_model, FASTA, tmp_path / "one.h5", max_tokens_per_batch=1, progress=False)
        for path, part in ((output, records[:5]), (leftover, records[5:10]), (written, records[10:])):
            embed(conv_model, write_fasta(tmp_path / f"{path.name}.fasta", part), path, max_tokens_per_batch=1,
                  progress=False)  # fmt: skip
        checked.clear()
        with embed_module.open_store(output) as store:
            embed_module._merge_written(store, [written])
        assert checked == [] and not written.exists()
        resumed = embed(conv_model, FASTA, output, max_tokens_per_batch=1, progress=False)  # takes in the leftover
    assert checked.count(leftover.name) == 5 and not leftover.exists()
    assert (resumed.written, resumed.skipped) == (0, 15)
    assert_same_h5(tmp_path / "one.h5", output)
