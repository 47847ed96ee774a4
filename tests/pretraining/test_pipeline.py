"""The pretraining pipeline over indexed inputs: each process reads only its own records, resume jumps straight to
its batch, clusters are sampled, ``datasets`` splits (prepared or streamed) and MSA members share the one plan."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from protconv import ConvForMaskedLM
from protconv.data.fasta import DataFileError
from protconv.data.fasta_corpus import FastaRecords
from protconv.data.plans import FILLER_SEQUENCE
from protconv.pretraining.arguments import DataArguments, parse_arguments
from protconv.pretraining.metrics import ObjectiveSums, objective_sums, summary
from protconv.pretraining.pipeline import DataPosition, build_data
from protconv.tokenization import InvalidSequenceError, build_tokenizer
from tests.helpers import DATA, MSA

SLICE = Path(__file__).resolve().parents[2] / "examples" / "data" / "structural_proteins_4k.fasta.gz"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_cache")


def _arguments(**changes) -> DataArguments:
    values = dict(
        train_files=[str(SLICE)], validation_fraction=0.05, max_length=256, max_tokens_per_batch=4096,
        prefetch_batches=0, pool_size=1000,
    )  # fmt: skip
    values.update(changes)
    return DataArguments(**values)


class _ReadLog:
    """Wraps every training source's ``read`` to record which records each call read."""

    def __init__(self, data) -> None:
        self.records: list[int] = []
        for part, start in zip(data.train.parts, data.train.starts[:-1].tolist(), strict=True):
            original = part.read

            def read(records, original=original, start=start):
                self.records.extend((np.asarray(records) + start).tolist())
                return original(records)

            part.read = read


@pytest.mark.parametrize("world_size", [1, 3])
def test_each_process_reads_only_its_own_records_and_all_are_read_once(tokenizer, cache, world_size) -> None:
    everyone: list[int] = []
    steps = set()
    for rank in range(world_size):
        data = build_data(_arguments(), tokenizer, world_size, rank, seed=0, data_cache_dir=cache)
        log = _ReadLog(data)
        plan = data.plan(0)
        mine = [plan.share(world_size, rank, i) for i in range(plan.rounds(world_size))]
        batches = list(data.epoch(DataPosition(0, 0)))
        steps.add(len(batches))
        expected = np.concatenate([b for b in mine if b is not None]).tolist()
        assert log.records == expected, "a process reads the records of its own batches, once, and nothing else"
        everyone.extend(log.records)
        for (_, tensors), records in zip(batches, mine, strict=True):
            rows = 1 if records is None else len(records)
            assert tensors["input_ids"].shape[0] == rows and tensors["input_ids"].numel() <= 4096
            if records is None:
                assert (tensors["labels"] == -100).all(), "a filler batch carries no loss"
    assert len(steps) == 1, "every process takes the same number of steps"
    assert sorted(everyone) == list(range(len(data.train))), "every training record once per epoch"


def test_resume_jumps_to_its_batch_without_reading_earlier_records(tokenizer, cache) -> None:
    data = build_data(_arguments(), tokenizer, 2, 1, seed=5, data_cache_dir=cache)
    full = list(data.epoch(DataPosition(1, 0)))
    fresh = build_data(_arguments(), tokenizer, 2, 1, seed=5, data_cache_dir=cache)
    log = _ReadLog(fresh)
    skip = int(0.9 * len(full))
    resumed = list(fresh.epoch(DataPosition(1, skip)))
    assert [i for i, _ in resumed] == list(range(skip, len(full)))
    for (_, expected), (_, actual) in zip(full[skip:], resumed, strict=True):
        assert all(torch.equal(expected[k], actual[k]) for k in expected)
    plan = fresh.plan(1)
    wanted = [plan.share(2, 1, i) for i in range(skip, plan.rounds(2))]
    assert log.records == np.concatenate([b for b in wanted if b is not None]).tolist(), "nothing before the jump"


def test_crops_fit_and_validation_is_fixed_and_disjoint(tokenizer, cache) -> None:
    data = build_data(_arguments(max_length=128, max_tokens_per_batch=1024), tokenizer, 1, 0, 0, data_cache_dir=cache)
    _, tensors = next(iter(data.epoch(DataPosition())))
    assert tensors["input_ids"].shape[1] <= 128
    first, second = data.validation_batches(), data.validation_batches()
    assert first is second and first
    validation = sum(int(b["attention_mask"].shape[0]) for b in first)
    assert validation == len(data.validation) and 0.03 < validation / 4000 < 0.07
    assert len(data.train) + len(data.validation) == 4000


def test_data_cache_defaults_beside_the_profile_cache(tmp_path, tokenizer) -> None:
    build_data(_arguments(), tokenizer, 1, 0, 0, cache_dir=tmp_path / "run" / "profile_cache")
    assert list((tmp_path / "run" / "data_cache" / "fasta").iterdir())
    build_data(_arguments(data_cache_dir=str(tmp_path / "elsewhere")), tokenizer, 1, 0, 0, cache_dir=tmp_path / "x")
    assert list((tmp_path / "elsewhere" / "fasta").iterdir())


def test_cluster_file_samples_one_member_per_cluster(tmp_path, tokenizer, cache) -> None:
    ids = FastaRecords([SLICE], cache_dir=cache).record_ids()
    table = tmp_path / "clusters.tsv"
    table.write_text("# member\tcluster\n" + "".join(f"{m}\tc{i // 10}\n" for i, m in enumerate(ids[:3000])))
    arguments = _arguments(validation_fraction=0.0, cluster_file=str(table))
    data = build_data(arguments, tokenizer, 1, 0, 0, data_cache_dir=cache)
    assert len(data.clusters) == 300 + 1000, "300 clusters of ten, and 1000 unlisted records each on their own"
    drawn = []
    for epoch in range(2):
        plan = data.plan(epoch)
        records = np.sort(np.concatenate([plan.batch(b) for b in range(len(plan))]))
        assert len(records) == 1300 and sorted(set((records[records < 3000] // 10).tolist())) == list(range(300))
        assert (records >= 3000).sum() == 1000
        drawn.append(records)
    assert not np.array_equal(*drawn)
    fields = tmp_path / "fields.fasta"
    fields.write_text("".join(f">p{i} UniRef50=U{i % 3}\nMKTAYIAK\n" for i in range(9)) + ">q\nQQ\n")
    by_header = build_data(
        _arguments(train_files=[str(fields)], validation_fraction=0.0, cluster_header_field="UniRef50"),
        tokenizer, 1, 0, 0, data_cache_dir=cache,
    )  # fmt: skip
    assert len(by_header.clusters) == 4


def test_cluster_files_may_be_gzipped_and_bad_bytes_name_file_and_line(tmp_path, tokenizer, cache) -> None:
    ids = FastaRecords([SLICE], cache_dir=cache).record_ids()
    packed = tmp_path / "clusters.tsv.gz"
    packed.write_bytes(gzip.compress("".join(f"{m}\tc{i // 10}\n" for i, m in enumerate(ids[:100])).encode()))
    data = build_data(_arguments(validation_fraction=0.0, cluster_file=str(packed)), tokenizer, 1, 0, 0,
                      data_cache_dir=cache)  # fmt: skip
    assert data.clusters is not None and len(data.clusters) == 10 + len(ids) - 100
    latin = tmp_path / "latin1.tsv"
    latin.write_bytes(f"{ids[0]}\tc0\n".encode() + b"x\tcaf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(DataFileError, match=rf"{re.escape(str(latin))}:2: byte 0xe9"):
        build_data(_arguments(validation_fraction=0.0, cluster_file=str(latin)), tokenizer, 1, 0, 0,
                   data_cache_dir=cache)  # fmt: skip


def test_a_training_file_changed_under_the_run_stops_the_next_epoch_naming_it(tmp_path, tokenizer) -> None:
    fasta = tmp_path / "train.fasta"
    fasta.write_text("".join(f">r{i}\n{'MKTAYIAKQR' * (5 + i % 7)}\n" for i in range(60)))
    data = build_data(_arguments(train_files=[str(fasta)], validation_fraction=0.0), tokenizer, 1, 0, 0,
                      data_cache_dir=tmp_path / "cache")  # fmt: skip
    assert next(iter(data.epoch(DataPosition(0, 0))))[0] == 0
    with fasta.open("a") as handle:
        handle.write(">late\nMKTAYIAK\n")
    with pytest.raises(DataFileError, match=rf"{re.escape(str(fasta))}: the file changed while this run reads it"):
        data.epoch(DataPosition(1, 0))


def test_invalid_records_stop_or_are_counted(tmp_path, tokenizer, cache) -> None:
    path = tmp_path / "bad.fasta"
    path.write_bytes(b">a\nMKTAYIAK\n>b\nMK9\n>c\nQQRRS\n")
    with pytest.raises(InvalidSequenceError, match=r"bad\.fasta:3 \(>b\): character '9' at position 3 \(line 4\)"):
        build_data(_arguments(train_files=[str(path)]), tokenizer, 1, 0, 0, data_cache_dir=cache)
    data = build_data(
        _arguments(train_files=[str(path)], invalid_sequences="skip", validation_fraction=0), tokenizer, 1, 0, 0,
        data_cache_dir=cache,
    )  # fmt: skip
    assert data.train.skipped == 1 and len(data.train) == 2


def _parquet_dataset(folder: Path, sequences: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True)
    half = len(sequences) // 2
    ids = [f"r{i}" for i in range(len(sequences))]
    pq.write_table(pa.table({"id": ids[:half], "seq": sequences[:half]}), folder / "data" / "train-0.parquet")
    pq.write_table(pa.table({"id": ids[half:], "seq": sequences[half:]}), folder / "data" / "train-1.parquet")
    return folder


@pytest.fixture()
def local_datasets(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)  # a 5 s pause after each stream
    return tmp_path


def test_a_local_parquet_dataset_is_planned_like_fasta(local_datasets, tokenizer) -> None:
    from protconv.data.fasta import read_fasta

    sequences = [r.sequence for r in read_fasta(DATA / "some_proteins.fasta")] * 20
    sequences[7] = "mktay iak"  # lower case and whitespace are cleaned as in FASTA
    folder = _parquet_dataset(local_datasets / "proteins", sequences)
    arguments = _arguments(
        train_files=[], dataset_name=str(folder), sequence_column="seq", validation_fraction=0.2,
        max_length=128, max_tokens_per_batch=1024,
    )  # fmt: skip
    data = build_data(arguments, tokenizer, 2, 0, 0, data_cache_dir=local_datasets / "cache")
    assert len(data.train) + len(data.validation) == 300 and 0 < len(data.validation) < 300
    log = _ReadLog(data)
    batches = list(data.epoch(DataPosition()))
    plan = data.plan(0)
    assert len(batches) == plan.rounds(2)
    read = sorted(log.records)
    mine = sorted(np.concatenate([b for i in range(plan.rounds(2)) if (b := plan.share(2, 0, i)) is not None]))
    assert read == list(mine)
    cleaned = [s for c in (data.train, data.validation) for p in c.parts for s in p.read(np.arange(len(p)))]
    assert "MKTAYIAK" in cleaned and all(s == s.upper() and " " not in s for s in cleaned)
    assert list((local_datasets / "cache" / "datasets").iterdir()), "per-row arrays are cached"
    with pytest.raises(ValueError, match="no column 'sequence'"):
        build_data(_arguments(train_files=[], dataset_name=str(folder)), tokenizer, 1, 0, 0)


def test_dataset_rows_follow_the_invalid_policy(local_datasets, tokenizer) -> None:
    folder = _parquet_dataset(local_datasets / "bad", ["MKTAYIAK", "MK9T", "QQRS", ""])
    arguments = _arguments(train_files=[], dataset_name=str(folder), sequence_column="seq", validation_fraction=0)
    with pytest.raises(InvalidSequenceError, match=r"row 1: character '9' at position 3"):
        build_data(arguments, tokenizer, 1, 0, 0)
    arguments.invalid_sequences = "skip"
    data = build_data(arguments, tokenizer, 1, 0, 0)
    assert data.train.skipped == 2 and len(data.train) == 2


def test_a_streamed_dataset_resumes_by_re_reading(local_datasets, tokenizer) -> None:
    folder = _parquet_dataset(local_datasets / "stream", ["MKTAYIAKQR"[: 3 + i % 8] * (1 + i % 5) for i in range(200)])
    arguments = _arguments(
        train_files=[], dataset_name=str(folder), sequence_column="seq", streaming=True, shuffle_buffer=50,
        validation_fraction=0.1, max_length=64, max_tokens_per_batch=256, pool_size=64,
    )  # fmt: skip
    data = build_data(arguments, tokenizer, 2, 1, 0)
    full = list(data.epoch(DataPosition(0, 0)))
    resumed = list(build_data(arguments, tokenizer, 2, 1, 0).epoch(DataPosition(0, 3)))
    assert [i for i, _ in resumed] == [i for i, _ in full[3:]]
    assert all(torch.equal(a[1]["input_ids"], b[1]["input_ids"]) for a, b in zip(full[3:], resumed, strict=True))
    epoch_one = list(data.epoch(DataPosition(1, 0)))
    assert not torch.equal(epoch_one[0][1]["input_ids"], full[0][1]["input_ids"]), "reshuffled each epoch"
    assert data.validation_batches()
    with pytest.raises(ValueError, match="--streaming reads one --dataset_name"):
        parse_arguments(["--streaming", "--train_files", "x.fasta"])


def test_msa_members_are_planned_with_fasta_records(tokenizer, cache) -> None:
    arguments = _arguments(
        train_files=[str(DATA / "some_proteins.fasta")], msa_files=[str(MSA / "UniRef50_E9K9Y4.a3m")],
        validation_fraction=0.0, max_length=160, max_tokens_per_batch=1280,
    )  # fmt: skip
    data = build_data(arguments, tokenizer, 1, 0, 0, objective="mlm+profile", cache_dir=cache / "profiles")
    assert len(data.train.parts) == 2 and len(data.train) > 15
    log = _ReadLog(data)
    targets = [tensors["profile_targets"] for _, tensors in data.epoch(DataPosition())]
    assert sorted(log.records) == list(range(len(data.train)))
    assert any(t.abs().sum() > 0 for t in targets), "MSA members carry profile targets"
    assert FILLER_SEQUENCE


def _file_order_padded_tokens(widths: list[int], max_tokens: int) -> int:
    """Padded tokens of greedy token-budget batches cut in file order (what length-aware planning improves on)."""
    padded, count, widest = 0, 0, 0
    for width in widths:
        if (count + 1) * max(widest, width) > max_tokens:
            padded, count, widest = padded + count * widest, 0, 0
        count, widest = count + 1, max(widest, width)
    return padded + count * widest


def _validation_sums(model, batches: list[dict[str, torch.Tensor]], alone: bool) -> ObjectiveSums:
    """The sums ``_validate`` adds up, over the batches as planned or over every row alone (no padding at all)."""
    sums = ObjectiveSums()
    with torch.no_grad():
        for batch in batches:
            rows = range(len(batch["input_ids"])) if alone else [slice(None)]
            for row in rows:
                width = int(batch["attention_mask"][row].sum()) if alone else batch["input_ids"].shape[1]
                part = {key: value[row, :width].reshape(-1, width) for key, value in batch.items()}
                labels = part.pop("labels")
                sums += objective_sums(model.config, model(**part), labels, None, part["attention_mask"])[1]
    return sums


def test_validation_batches_group_lengths_and_keep_the_token_weighted_loss(
    tmp_path, tokenizer, tiny_conv_config
) -> None:
    """Validation records in file order alternate long and short; the planned batches group similar lengths (far
    fewer padded tokens than batches cut in file order), are the same on every build, and give the validation loss
    of every row evaluated alone: batching changes the loss only by float summation order."""
    residues = "ACDEFGHIKLMNPQRSTVWY"
    lengths = [120 if i % 4 == 0 else 6 + i % 9 for i in range(40)]
    fasta = tmp_path / "validation.fasta"
    fasta.write_text("".join(f">v{i}\n{(residues * 10)[i : i + n]}\n" for i, n in enumerate(lengths)), encoding="utf-8")
    arguments = _arguments(
        train_files=[str(DATA / "some_proteins.fasta")], validation_files=[str(fasta)], max_length=128,
        max_tokens_per_batch=512,
    )  # fmt: skip
    batches = build_data(arguments, tokenizer, 1, 0, seed=3).validation_batches()
    again = build_data(arguments, tokenizer, 1, 0, seed=3).validation_batches()
    assert all(torch.equal(a[k], b[k]) for a, b in zip(batches, again, strict=True) for k in a), "deterministic"
    widths = [n + 2 for n in lengths]  # <cls> and <eos>
    assert sum(int(b["attention_mask"].sum()) for b in batches) == sum(widths), "every validation token once"
    padded = sum(b["attention_mask"].numel() for b in batches)
    assert padded < 0.7 * _file_order_padded_tokens(widths, 512), (padded, _file_order_padded_tokens(widths, 512))
    model = ConvForMaskedLM(tiny_conv_config).eval()
    planned, alone = _validation_sums(model, batches, False), _validation_sums(model, batches, True)
    assert planned.masked_tokens == alone.masked_tokens > 0
    loss, by_row = summary(planned, model.config)["loss"], summary(alone, model.config)["loss"]
    assert loss == pytest.approx(by_row, rel=1e-5)
