"""protconv evaluate streams zero-shot tasks: each assay's figures are cached and in its per-assay CSV before the
next assay is scored (a run that dies on assay 2 keeps assay 1, and a rerun scores only assay 2), each model is
loaded once and each assay read once for all models, and wild types over a model's position limit are refused
before its weights load, naming the task and assay; results.md names the assays longer than ESM's 1,022."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import protconv
from protconv.evaluation import EvaluateOptions, evaluate, proteingym_task
from protconv.evaluation import runner as runner_module
from protconv.hub import save_hub_folder
from protconv.inference.common import InferenceInputError, ModelSession
from tests.evaluation.test_evaluate import two_type_folder


@pytest.fixture
def conv(tmp_path, tiny_conv_config) -> str:
    model = protconv.ConvForMaskedLM(tiny_conv_config).eval()
    return str(save_hub_folder(model, protconv.build_tokenizer(), tmp_path / "conv"))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_an_assay_is_kept_before_the_next_is_scored_and_a_rerun_scores_only_the_rest(
    tmp_path, conv, monkeypatch
) -> None:
    folder, options = two_type_folder(tmp_path / "pg"), EvaluateOptions(tmp_path / "out", bootstrap=5)
    real, calls, dying = runner_module.score_variants, [], [True]

    def dies_on_the_second_assay(*args, **kwargs):
        calls.append(len(calls))
        if dying and len(calls) == 2:
            raise RuntimeError("killed")  # the run dies while it scores assay 2
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "score_variants", dies_on_the_second_assay)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate([conv], [proteingym_task(folder, None, "masked-marginal")], options)
    kept = _rows(tmp_path / "out" / "assays" / "proteingym.csv")
    assert [row["assay"] for row in kept] == ["first"] * 5  # its five metrics, both columns filled
    assert all(float(row[conv]) == float(row[conv]) and row["blosum62"] for row in kept)

    calls.clear(), dying.clear()
    rerun = evaluate([conv], [proteingym_task(folder, None, "masked-marginal")], options)
    assert len(calls) == 1  # only the second assay is scored again
    assert (rerun.computed, rerun.reused) == (2, 0)
    fresh = evaluate(
        [conv], [proteingym_task(folder, None, "masked-marginal")], EvaluateOptions(tmp_path / "f", bootstrap=5)
    )
    assert rerun.records == fresh.records


def test_models_load_once_and_each_assay_is_read_once_for_all_models(
    tmp_path, conv, tiny_performer_config, monkeypatch
) -> None:
    performer = protconv.PerformerForMaskedLM(tiny_performer_config).eval()
    models = [conv, str(save_hub_folder(performer, protconv.build_tokenizer(), tmp_path / "performer"))]
    loads: list[str] = []
    real_load = ModelSession.load
    monkeypatch.setattr(ModelSession, "load", lambda self, *a: loads.append(self.source) or real_load(self, *a))
    tasks = [proteingym_task(two_type_folder(tmp_path / f"pg{i}"), None, "masked-marginal") for i in range(2)]
    tasks[1].name = "second_task"
    reads: list[str] = []
    for task in tasks:
        for assay in task.assays:
            assay.read = (lambda read, name: lambda: reads.append(name) or read())(assay.read, assay.name)
    evaluate(models, tasks, EvaluateOptions(tmp_path / "out", bootstrap=0))
    assert sorted(loads) == sorted(models)  # once each for the two tasks
    assert reads == [
        "first",
        "first",
    ]  # per task: the last assay is still held from the check, the first read again once


def _long_assay(folder: Path, length: int = 1030) -> Path:
    """A ProteinGym folder with one assay of a ``length``-residue wild type and three single mutants."""
    folder.mkdir()
    wildtype = ("MKTAYIAKQRQISFVKSHFSRQ" * 60)[:length]
    lines = ["mutant,mutated_sequence,DMS_score,DMS_score_bin"]
    for number, (index, letter, score) in enumerate([(0, "A", 0.1), (500, "W", -1.0), (length - 1, "G", 0.5)]):
        mutated = wildtype[:index] + letter + wildtype[index + 1 :]
        lines.append(f"{wildtype[index]}{index + 1}{letter},{mutated},{score},{number % 2}")
    (folder / "long.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "DMS_substitutions.csv").write_text(
        f"DMS_id,DMS_filename,target_seq,coarse_selection_type\nLONG_1,long.csv,{wildtype},Activity\n", encoding="utf-8"
    )
    return folder


def test_long_wild_types_run_whole_are_named_and_refused_by_a_model_with_a_limit(tmp_path, conv, monkeypatch) -> None:
    from examples.tiny_esm import save_tiny_esm

    task = proteingym_task(_long_assay(tmp_path / "pg"), None, "masked-marginal")
    evaluate([conv], [task], EvaluateOptions(tmp_path / "out", bootstrap=0))
    assert (
        "longer than 1022 residues" in (tmp_path / "out" / "results.md").read_text()
        and "LONG_1" in (tmp_path / "out" / "results.md").read_text()
    )
    assert json.loads((tmp_path / "out" / "results.json").read_text())["assays_longer_than_1022"] == ["LONG_1"]
    esm = str(save_tiny_esm(tmp_path / "esm"))
    monkeypatch.setattr(ModelSession, "load", lambda *a: pytest.fail("weights loaded before the length check"))
    with pytest.raises(
        InferenceInputError,
        match=r"task 'proteingym', assay LONG_1 .*long\.csv.*: 1032 tokens .* exceed this model's limit of 1024",
    ):
        evaluate([esm], [task], EvaluateOptions(tmp_path / "out2", bootstrap=0))
