"""predict: each task type equals the fine-tuned model run alone; FASTA and CSV inputs; bad models."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

import protconv
from protconv.data import read_fasta
from protconv.inference import InferenceInputError, predict

from .conftest import FASTA, save_model


def rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def alone(auto, folder, sequence: str):
    model = auto.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(sequence, return_tensors="pt", return_special_tokens_mask=True)
    residues = ~encoded.pop("special_tokens_mask")[0].bool()
    with torch.no_grad():
        return model(**encoded).logits[0], residues


def test_regression_values_in_fasta_order(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.num_labels = 1
    tiny_conv_config.problem_type = "regression"
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")
    result = predict(folder, FASTA, tmp_path / "out.csv", max_tokens_per_batch=1500, chunk_size=6, progress=False)
    assert (result.task, result.columns, result.records) == ("regression", ("prediction",), 15)
    got = rows(tmp_path / "out.csv")
    records = list(read_fasta(FASTA))
    assert [row["id"] for row in got] == [record.id for record in records]  # input order, whatever the batches
    for row, record in zip(got, records, strict=True):
        logits, _ = alone(AutoModelForSequenceClassification, folder, record.sequence)
        assert float(row["prediction"]) == pytest.approx(float(logits[0]), abs=1e-5)


def test_classification_label_names_and_probabilities_from_csv(tmp_path, tiny_performer_config) -> None:
    tiny_performer_config.num_labels = 3
    tiny_performer_config.id2label = {0: "alpha", 1: "beta", 2: "gamma"}
    tiny_performer_config.label2id = {v: k for k, v in tiny_performer_config.id2label.items()}
    folder = save_model(protconv.PerformerForSequenceClassification(tiny_performer_config), tmp_path / "classes")
    sequences = [record.sequence for record in read_fasta(FASTA)][:6]
    table = tmp_path / "in.tsv"
    table.write_text("name\tseq\tlabel\n" + "".join(f"p{i}\t{s.lower()}\t{i % 3}\n" for i, s in enumerate(sequences)))
    predict(folder, table, tmp_path / "out.csv", max_tokens_per_batch=1200, progress=False)
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as handle:
        got = list(csv.DictReader(handle, delimiter="\t"))  # the input's delimiter is kept
    semicolon = tmp_path / "in.csv"  # the ``;`` dialect finetune reads (data/tables.py): the same predictions
    semicolon.write_text(table.read_text().replace("\t", ";"))
    predict(folder, semicolon, tmp_path / "out2.csv", max_tokens_per_batch=1200, progress=False)
    assert (tmp_path / "out2.csv").read_text() == (tmp_path / "out.csv").read_text().replace("\t", ";")
    assert list(got[0]) == ["name", "seq", "label", "predicted_label", "probability"]
    assert [row["name"] for row in got] == [f"p{i}" for i in range(6)]
    for row, sequence in zip(got, sequences, strict=True):
        logits, _ = alone(AutoModelForSequenceClassification, folder, sequence)
        probabilities = torch.softmax(logits, dim=-1)
        assert row["predicted_label"] == ["alpha", "beta", "gamma"][int(probabilities.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probabilities.max()), abs=1e-5)


@pytest.mark.parametrize("carp_framing", [False, True])
def test_token_classification_one_label_per_residue(tmp_path, tiny_conv_config, carp_framing) -> None:
    tiny_conv_config.num_labels = 3
    tiny_conv_config.id2label = {0: "C", 1: "H", 2: "E"}
    tiny_conv_config.label2id = {"C": 0, "H": 1, "E": 2}
    model = protconv.ConvForTokenClassification(tiny_conv_config)
    folder = save_model(model, tmp_path / "token", carp_framing=carp_framing)
    result = predict(folder, FASTA, tmp_path / "out.csv", max_tokens_per_batch=2000, progress=False)
    assert result.columns == ("residue_labels",)
    for row, record in zip(rows(tmp_path / "out.csv"), read_fasta(FASTA), strict=True):
        logits, residues = alone(AutoModelForTokenClassification, folder, record.sequence)
        expected = "".join("CHE"[int(k)] for k in logits[residues].argmax(dim=-1))
        assert row["residue_labels"] == expected and len(expected) == len(record.sequence)


def test_multi_character_token_labels_are_space_separated(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.num_labels = 2
    folder = save_model(protconv.ConvForTokenClassification(tiny_conv_config), tmp_path / "token")
    fasta = tmp_path / "one.fasta"
    fasta.write_text(">x\nMKV\n")
    predict(folder, fasta, tmp_path / "out.csv", progress=False)
    labels = rows(tmp_path / "out.csv")[0]["residue_labels"].split(" ")
    assert len(labels) == 3 and set(labels) <= {"LABEL_0", "LABEL_1"}


def test_multi_label_names_above_one_half(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.num_labels = 3
    tiny_conv_config.problem_type = "multi_label_classification"
    tiny_conv_config.id2label = {0: "a", 1: "b", 2: "c"}
    tiny_conv_config.label2id = {"a": 0, "b": 1, "c": 2}
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "multi")
    predict(folder, FASTA, tmp_path / "out.csv", progress=False)
    for row, record in zip(rows(tmp_path / "out.csv"), read_fasta(FASTA), strict=True):
        logits, _ = alone(AutoModelForSequenceClassification, folder, record.sequence)
        on = np.flatnonzero(torch.sigmoid(logits).numpy() >= 0.5)
        assert row["predicted_labels"] == ";".join("abc"[i] for i in on)


def test_a_pretrained_model_is_not_a_fine_tuned_one(conv_folder, tmp_path) -> None:
    with pytest.raises(InferenceInputError, match=r"not a fine-tuned model .*ConvForMaskedLM"):
        predict(conv_folder, FASTA, tmp_path / "out.csv", progress=False)


def test_csv_column_problems(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.num_labels = 1
    folder = save_model(protconv.ConvForSequenceClassification(tiny_conv_config), tmp_path / "regression")
    table = tmp_path / "in.csv"
    table.write_text("protein,prediction\nMKV,1\n")
    with pytest.raises(InferenceInputError, match=r"no column 'sequence' or 'seq'"):
        predict(folder, table, tmp_path / "out.csv", progress=False)
    with pytest.raises(InferenceInputError, match=r"already has column\(s\) \['prediction'\]"):
        predict(folder, table, tmp_path / "out.csv", sequence_column="protein", progress=False)
    table.write_text("protein,value\nMKV,1\nMK1V,2\n")
    with pytest.raises(protconv.InvalidSequenceError, match=r"in.csv:3: character '1' at position 3"):
        predict(folder, table, tmp_path / "out.csv", sequence_column="protein", progress=False)
    predict(folder, table, tmp_path / "out.csv", sequence_column="protein", unknown="X", progress=False)
    assert [row["protein"] for row in rows(tmp_path / "out.csv")] == ["MKV", "MK1V"]  # input fields kept as given
