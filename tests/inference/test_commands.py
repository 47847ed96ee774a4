"""The argparse subcommands the ``protconv`` CLI mounts: options reach the functions, summaries are printed."""

from __future__ import annotations

import argparse
import csv

import h5py
import pytest

from protconv.inference import add_embed_command, add_predict_command, add_score_command

from .conftest import FASTA


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="protconv")
    commands = root.add_subparsers(dest="command", required=True)
    for add in (add_embed_command, add_score_command, add_predict_command):
        assert isinstance(add(commands), argparse.ArgumentParser)
    return root


def run(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    args.run(args)


def test_embed_command(conv_folder, tmp_path, capsys) -> None:
    output = tmp_path / "out.h5"
    argv = ["embed", str(conv_folder), str(FASTA), str(output), "--include", "mean,per_residue", "--layers=-1,0"]
    run([*argv, "--max_tokens_per_batch", "3000", "--no_progress"])
    assert capsys.readouterr().out.startswith(f"wrote 15 records to {output}")
    with h5py.File(output, "r") as store:
        assert list(store.attrs["layers"]) == ["4", "0"]
    run([*argv, "--no_progress"])
    assert "(15 already present)" in capsys.readouterr().out


def test_score_command_prints_spearman(conv_folder, tmp_path, capsys) -> None:
    variants = tmp_path / "v.csv"
    variants.write_text("mutant,fitness\nK2A,1\nK2D,\nT3C,0.5\nA4W,2\n")
    output = tmp_path / "scores.csv"
    argv = ["score", str(conv_folder), str(variants), str(output), "--sequence", "MKTAYIAKQR", "--no_progress"]
    run([*argv, "--score_column", "fitness", "--method", "wildtype-marginal"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote 4 wildtype-marginal scores to {output}")
    assert printed[1].startswith("spearman=") and "on 3 rows; 1 rows without a target left out" in printed[1]
    with open(output, encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == ["mutant", "fitness", "wildtype_marginal"]


def test_predict_command(tmp_path, tiny_conv_config, capsys) -> None:
    import protconv

    from .conftest import save_model

    tiny_conv_config.num_labels = 1
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")
    run(["predict", str(folder), str(FASTA), str(tmp_path / "out.csv"), "--no_progress", "--device", "cpu"])
    assert capsys.readouterr().out.startswith("wrote 15 regression predictions")


def test_help_mentions_the_absolute_position_limit(capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["embed", "--help"])
    assert "max_position_embeddings" in capsys.readouterr().out.replace("\n", " ")


def test_score_needs_exactly_one_wild_type(capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["score", "m", "v.csv", "o.csv", "--sequence", "MKV", "--wildtype", "wt.fasta"])
    assert "not allowed with argument" in capsys.readouterr().err
