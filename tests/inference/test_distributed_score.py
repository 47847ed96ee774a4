"""score (masked-marginal), scan and evaluate (pseudo-likelihood) on 2 processes (torchrun, gloo on the CPU) write
the files of 1 process, bit for bit; the shares of the batches (or of their row slices) cover them in order,
balanced, and a row slice computes its batch's bits."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import protconv
from protconv.data import read_fasta
from protconv.evaluation import EvaluateOptions, evaluate, proteingym_task
from protconv.inference import gather
from protconv.inference.distributed import Ranks, imbalance
from protconv.inference.gather import all_gather_rows, contiguous_shares
from protconv.inference.scan import saturation_scan
from protconv.inference.score import _Runner, score
from tests.helpers import DATA
from tests.inference.conftest import save_model
from tests.inference.test_distributed import launch, one_thread

PROTEINGYM = DATA / "proteingym"
ASSAY = "BLAT_ECOLX_Ranganathan_2015"
WILDTYPE = DATA / "blat_wildtype.fasta"  # 263 residues, ProteinGym numbering from 24


@pytest.fixture
def conv_model(tmp_path, tiny_conv_config):
    return save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "conv")


def write_variants(path, count: int):
    """``count`` variants of the BLAT wild type at spread positions (a double mutant among them), with a
    measured column."""
    wildtype = next(iter(read_fasta(WILDTYPE))).sequence
    rows = [["mutant", "fitness"]]
    for n, index in enumerate(range(0, len(wildtype), len(wildtype) // count)[:count]):
        mutant = f"{wildtype[index]}{index + 24}{'G' if wildtype[index] == 'A' else 'A'}"
        if n == 1:
            mutant += f":{wildtype[index + 1]}{index + 25}W"
        rows.append([mutant, str((n * 7) % 11)])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_two_processes_score_the_csv_of_one(tmp_path, conv_model):
    variants = write_variants(tmp_path / "variants.csv", 40)
    options = ["--wildtype", str(WILDTYPE), "--offset", "24", "--max_tokens_per_batch", "1000"]  # 14 batches of 3
    options += ["--score_column", "fitness"]
    done = launch(2, "score", str(conv_model), str(variants), str(tmp_path / "two.csv"), *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote 40 masked-marginal scores") == 1  # rank 0 reports
    assert "21/21 [" in done.stderr and "41/41" not in done.stderr  # rank 0's bar: its 7 batches of the 41 positions
    with one_thread():
        one = score(conv_model, variants, tmp_path / "one.csv", wildtype=WILDTYPE, offset=24,
                    max_tokens_per_batch=1000, score_column="fitness", progress=False)  # fmt: skip
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert len(set(one.scores)) == 40  # distinct numbers: a misplaced row would show
    two_rho = json.loads((tmp_path / "two.spearman.json").read_text())
    assert two_rho["spearman"] == json.loads((tmp_path / "one.spearman.json").read_text())["spearman"]
    names = {"conv", "variants.csv", "one.csv", "two.csv", "one.spearman.json", "two.spearman.json"}
    assert {p.name for p in tmp_path.iterdir()} == names  # no shard, lock or temporary


def small_proteingym(folder: Path) -> Path:
    """The shipped assay cut to its first 5 variants and 2 of the other selection bin (pseudo-likelihood runs
    263 masked rows per variant)."""
    folder.mkdir()
    shutil.copy(PROTEINGYM / "DMS_substitutions.csv", folder)
    with open(PROTEINGYM / f"{ASSAY}.csv", encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    bin_column = header.index("DMS_score_bin")
    kept = rows[:5] + [row for row in rows if row[bin_column] == "0"][:2]
    with open(folder / f"{ASSAY}.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([header, *kept])
    return folder


def test_two_processes_evaluate_as_one_with_pseudo_likelihood(tmp_path, conv_model):
    pg = small_proteingym(tmp_path / "pg")
    arguments = ["--proteingym", str(pg), "--method", "pseudo-likelihood", "--bootstrap", "5", "--no_progress"]
    arguments += ["--max_tokens_per_batch", "4000"]  # 15 rows a batch: 141 batches
    done = launch(2, "evaluate", str(conv_model), *arguments, "--output_dir", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("2 computed, 0 reused") == 1  # rank 0 reports
    with one_thread():
        evaluate([str(conv_model)], [proteingym_task(pg, None, "pseudo-likelihood")],
                 EvaluateOptions(tmp_path / "one", bootstrap=5, max_tokens_per_batch=4000))  # fmt: skip
    one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("one", "two"))
    values = [(r["assay"], r["metric"], r["value"]) for r in one["results"] if r["model"] == str(conv_model)]
    assert len(values) > 5 and all(math.isfinite(value) for _, _, value in values)
    assert one["results"] == two["results"]
    assert (tmp_path / "one" / "results.csv").read_text() == (tmp_path / "two" / "results.csv").read_text()


def test_shares_cover_the_batches_in_order_and_balanced():
    sizes = [7] * 40 + [3]
    for world_size in (1, 2, 3, 8, 64):
        shares = contiguous_shares(sizes, world_size)
        assert [i for share in shares for i in share] == list(range(len(sizes)))
        loads = [sum(sizes[i] for i in share) for share in shares]
        assert max(loads) <= sum(sizes) / world_size + 7  # at most one batch over the mean
    assert contiguous_shares([5, 5, 5, 5], 2) == [range(0, 2), range(2, 4)]
    assert contiguous_shares([5], 3) == [range(0, 0), range(0, 1), range(1, 1)]
    assert contiguous_shares([], 2) == [range(0, 0), range(0, 0)]


def test_gathered_rows_are_trimmed_and_in_rank_order(monkeypatch):
    """Rank 1's side of the exchange, rank 0's part played by a fake all_gather: rank 0 has 2 rows of 3 floats."""
    theirs = np.arange(6, dtype=np.float32).reshape(2, 3) + 0.1

    def exchange(tensor: torch.Tensor, ranks: Ranks) -> list[torch.Tensor]:
        if tensor.dtype == torch.int64:  # the shapes
            return [torch.tensor([2, 3]), tensor]
        part = torch.zeros_like(tensor)
        part[:2] = torch.from_numpy(theirs)
        return [part, tensor]

    monkeypatch.setattr(gather, "_all_gather", exchange)
    ranks = Ranks(1, 2)
    assert np.array_equal(all_gather_rows(ranks, np.zeros((0, 0), np.float32)), theirs)  # this rank: no rows
    mine = np.full((4, 3), 9.5, dtype=np.float32)
    assert np.array_equal(all_gather_rows(ranks, mine), np.concatenate([theirs, mine]))
    with pytest.raises(ValueError, match="width 2"):
        all_gather_rows(ranks, np.zeros((1, 2), np.float32))
    assert all_gather_rows(Ranks(), theirs) is theirs


def rank_pieces(rows: int, batch_size: int, world_size: int, network=None) -> list[list[range]]:
    """Each rank's row ranges (one forward each) for ``rows`` equal-width rows."""
    return [
        _Runner(network, 0, batch_size, torch.device("cpu"), Ranks(rank, world_size))._pieces(rows)
        for rank in range(world_size)
    ]


def test_few_batches_are_cut_into_slices_of_two_rows_or_more():
    """263 masked positions at the default budget: 5 batches of 61 (the last 19); whole batches per rank left 8
    ranks at 1.86 the mean."""
    assert rank_pieces(263, 61, 1) == [[range(0, 61), range(61, 122), range(122, 183), range(183, 244),
                                        range(244, 263)]]  # fmt: skip
    for world_size in (2, 8, 64):
        shares = rank_pieces(263, 61, world_size)
        flat = [piece for share in shares for piece in share]
        assert [row for piece in flat for row in piece] == list(range(263))  # in order, each row once
        assert all(len(piece) >= 2 and piece.start // 61 == (piece.stop - 1) // 61 for piece in flat)  # in a batch
        loads = [sum(map(len, share)) for share in shares]
        assert imbalance(loads) <= (1.1 if world_size <= 8 else 1.5), (world_size, loads)
    assert rank_pieces(41, 3, 2) == [[range(i, min(i + 3, 41)) for i in range(0, 21, 3)],
                                     [range(i, min(i + 3, 41)) for i in range(21, 41, 3)]]  # fmt: skip
    assert rank_pieces(0, 61, 2) == [[], []]


@pytest.mark.parametrize("architecture", ["conv", "performer"])
def test_row_slices_compute_the_bits_of_their_batch(architecture, tiny_conv_config, tiny_performer_config, tokenizer):
    """The masked rows of one 24-row batch against those of every rank's slices at 8 ranks (12 slices of 2 rows)."""
    if architecture == "conv":
        network = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    else:
        network = protconv.PerformerForMaskedLM(tiny_performer_config).eval()
    wildtype = next(iter(read_fasta(WILDTYPE))).sequence[:80]
    ids = tokenizer(wildtype)["input_ids"]
    runner = _Runner(network, tokenizer.mask_token_id, 24, torch.device("cpu"))
    rows = [runner.masked(ids, 1 + i) for i in range(24)]
    with one_thread():
        whole = runner._log_softmax(rows)
        sliced = [runner._log_softmax(rows[p.start : p.stop]) for share in rank_pieces(24, 24, 8) for p in share]
    assert [len(part) for part in sliced] == [2] * 12  # slices, not the one batch
    assert torch.equal(torch.cat(sliced), whole)


def test_two_processes_scan_as_one(tmp_path, conv_model):
    """10 positions at the default budget: one batch of 10 rows, cut into 5 slices of 2 (rank 0 runs 3)."""
    options = ["--wildtype", str(WILDTYPE), "--offset", "24", "--positions", "30-39"]
    done = launch(2, "scan", str(conv_model), str(tmp_path / "two.csv"), *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "6/6 [" in done.stderr and "10/10" not in done.stderr  # rank 0's bar: its 3 slices of the batch
    with one_thread():
        one = saturation_scan(conv_model, tmp_path / "one.csv", wildtype=WILDTYPE, offset=24, positions="30-39",
                              progress=False)  # fmt: skip
    assert len(set(one.scores)) > 150  # 190 substitutions, distinct numbers: a misplaced row would show
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


@pytest.mark.slow  # ~10-19 s; the slices are those of the masked-marginal tests above, through the same _pieces
def test_two_processes_score_pseudo_likelihood_in_slices_as_one(tmp_path, conv_model):
    """2 variants: 3 sequences x 263 masked rows, 13 batches of 61 at the default budget, each cut in 3 slices."""
    variants = write_variants(tmp_path / "variants.csv", 2)
    options = ["--wildtype", str(WILDTYPE), "--offset", "24", "--method", "pseudo-likelihood"]
    done = launch(2, "score", str(conv_model), str(variants), str(tmp_path / "two.csv"), *options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "386/386 [" in done.stderr  # rank 0's bar: its 19 slices (whole batches: 366 rows)
    with one_thread():
        score(conv_model, variants, tmp_path / "one.csv", wildtype=WILDTYPE, offset=24, method="pseudo-likelihood",
              progress=False)  # fmt: skip
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
