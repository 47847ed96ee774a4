"""protconv evaluate end to end on tiny models: the table with the reference column, ProteinGym's aggregation
over a hand-made reference file with two selection types, reuse of finished tasks, and bad input refused before
any model work, naming file and line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

import protconv
from protconv.cli import main
from protconv.evaluation import EvaluateOptions, SuiteError, evaluate, proteingym_task, read_suite
from protconv.hub import save_hub_folder
from tests.helpers import DATA

PROTEINGYM = DATA / "proteingym"
ASSAY = "BLAT_ECOLX_Ranganathan_2015"


@pytest.fixture
def models(tmp_path, tiny_conv_config, tiny_performer_config) -> list[str]:
    tokenizer = protconv.build_tokenizer()
    conv = save_hub_folder(protconv.ConvForMaskedLM(tiny_conv_config).eval(), tokenizer, tmp_path / "conv")
    performer = protconv.PerformerForMaskedLM(tiny_performer_config).eval()
    return [str(conv), str(save_hub_folder(performer, tokenizer, tmp_path / "performer"))]


def two_type_folder(folder: Path) -> Path:
    """The shipped assay split into two assays of two selection types (rows 1-30 and 31-60)."""
    folder.mkdir()
    with open(PROTEINGYM / f"{ASSAY}.csv", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    for name, part in (("first", rows[:30]), ("second", rows[30:])):
        with open(folder / f"{name}.csv", "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([header, *part])
    with open(PROTEINGYM / "DMS_substitutions.csv", encoding="utf-8") as handle:
        ref_header, row = list(csv.reader(handle))
    columns = {name: i for i, name in enumerate(ref_header)}
    lines = [ref_header]
    for name, kind in (("first", "Activity"), ("second", "Stability")):
        copy = list(row)
        copy[columns["DMS_id"]], copy[columns["DMS_filename"]] = name, f"{name}.csv"
        copy[columns["coarse_selection_type"]] = kind
        lines.append(copy)
    with open(folder / "DMS_substitutions.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(lines)
    return folder


def test_two_models_two_types_table_cache_and_overwrite(tmp_path, models) -> None:
    task = proteingym_task(two_type_folder(tmp_path / "pg"), None, "masked-marginal")
    options = EvaluateOptions(tmp_path / "out", bootstrap=20)
    result = evaluate(models, [task], options)
    assert result.computed == 3 and result.reused == 0  # blosum62 + two models
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(saved["versions"]) >= {"protconv", "torch", "transformers"}
    assert [m["weights_fingerprint"] for m in saved["models"]] == [result.fingerprints[m] for m in models]
    rows = saved["results"]
    for model in ["blosum62", *models]:
        mine = {(r["assay"], r["metric"]): r for r in rows if r["model"] == model}
        for metric in ("spearman", "auc", "mcc", "ndcg", "recall_top10"):
            first, second = mine["first", metric]["value"], mine["second", metric]["value"]
            assert mine["type:Activity", metric]["value"] == pytest.approx(first)
            assert mine[None, metric]["value"] == pytest.approx((first + second) / 2)
        assert mine["first", "spearman"]["stderr"] > 0
    table = (tmp_path / "out" / "results.md").read_text()
    assert "blosum62" in table and models[0] in table and "**" in table
    assert (tmp_path / "out" / "assays" / "proteingym.csv").is_file()
    assert (tmp_path / "out" / "plots" / "proteingym.png").stat().st_size > 0
    assert (tmp_path / "out" / "plots" / "proteingym_spearman_scatter.png").stat().st_size > 0
    again = evaluate(models, [task], options)
    assert (again.computed, again.reused) == (0, 3)
    assert again.records == result.records
    fresh = evaluate(models[:1], [task], EvaluateOptions(tmp_path / "out", overwrite=True, bootstrap=20))
    assert (fresh.computed, fresh.reused) == (2, 0)


def test_suite_with_esm_layout_through_the_cli(tmp_path, models, capsys) -> None:
    suite = tmp_path / "suite.yaml"
    shutil.copy(DATA / "blat_variants_slice.csv", tmp_path / "variants.csv")
    shutil.copy(DATA / "blat_wildtype.fasta", tmp_path / "wt.fasta")
    suite.write_text(
        f"- name: pg\n  kind: zero-shot\n  proteingym: {PROTEINGYM}\n"
        "- name: esm\n  kind: zero-shot\n  variants: variants.csv\n  wildtype: wt.fasta\n"
        "  score_column: '2500'\n  offset: 24\n",
        encoding="utf-8",
    )
    code = main(["evaluate", models[0], "--suite", str(suite), "--output_dir", str(tmp_path / "o"), "--no_progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| esm |" in out and "| pg |" in out and "blosum62" in out
    esm = [r for r in json.loads((tmp_path / "o" / "results.json").read_text())["results"] if r["task"] == "esm"]
    assert {r["metric"] for r in esm} == {"spearman", "ndcg", "recall_top10"}  # no labels: no AUC, no MCC


def _assay_copy(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "bad"
    shutil.copytree(PROTEINGYM, folder)
    path = folder / f"{ASSAY}.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = edit(lines[3].split(","))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: ",".join([f[0], "A" + f[1][1:], *f[2:]]), "mutated_sequence disagrees"),
        (lambda f: ",".join([*f[:2], "nan", f[3]]), "DMS_score is 'nan'"),
        (lambda f: ",".join([*f[:3], "2"]), "DMS_score_bin is '2'"),
    ],
    ids=["sequence", "nan", "bin"],
)
def test_bad_assay_rows_name_file_and_line(tmp_path, edit, message) -> None:
    folder = _assay_copy(tmp_path, edit)
    with pytest.raises(SuiteError, match=f"{ASSAY}.csv:4: .*{message}"):
        proteingym_task(folder, None, "masked-marginal")


def test_reference_problems_and_cli_message(tmp_path, capsys) -> None:
    folder = tmp_path / "pg"
    shutil.copytree(PROTEINGYM, folder)
    (folder / f"{ASSAY}.csv").unlink()
    with pytest.raises(SuiteError, match=r"DMS_substitutions.csv:2: assay .* no file"):
        proteingym_task(folder, None, "masked-marginal")
    with pytest.raises(SuiteError, match=r"missing\.csv: no such file"):
        proteingym_task(folder, folder / "missing.csv", "masked-marginal")
    # the model is never opened: a nonexistent model folder is not what the error names
    code = main(
        ["evaluate", str(tmp_path / "no-model"), "--proteingym", str(folder), "--output_dir", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_suite_errors_name_file_and_task(tmp_path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("- name: a\n  kind: zero-shot\n  method: best\n  proteingym: x\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"s.yaml: task 'a': method must be one of"):
        read_suite(suite)
    suite.write_text("- name: a\n  kind: nonsense\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"s.yaml: task 'a': kind must be one of"):
        read_suite(suite)
    suite.write_text("- name: a\n  kind: zero-shot\n  colour: red\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="unknown keys colour"):
        read_suite(suite)


def test_update_card_writes_a_parseable_model_index(tmp_path, models, capsys) -> None:
    from huggingface_hub import ModelCard

    readme = Path(models[0]) / "README.md"
    before = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    args = [
        "evaluate",
        models[0],
        "--proteingym",
        str(PROTEINGYM),
        "--output_dir",
        str(tmp_path / "o"),
        "--update_card",
    ]
    assert main([*args, "--no_progress", "--bootstrap", "5"]) == 0
    card = ModelCard.load(readme)
    found = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert set(found) == {("proteingym", m) for m in ("spearman", "auc", "mcc", "ndcg", "recall_top10")}
    saved = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    rho = next(r for r in saved if r["model"] == models[0] and r["assay"] is None and r["metric"] == "spearman")
    assert found["proteingym", "spearman"] == pytest.approx(rho["value"], abs=1e-4)
    if before:  # the rest of an existing card stays
        assert before.split("---", 2)[-1].strip()[:40] in readme.read_text(encoding="utf-8")
    assert main([*args, "--no_progress", "--bootstrap", "5"]) == 0  # a second run replaces, never duplicates
    assert len(ModelCard.load(readme).data.eval_results) == 5


def test_results_json_becomes_the_card_model_index_for_push(tmp_path, models) -> None:
    from huggingface_hub import ModelCard

    from protconv.evaluation.card import results_json_card_results, update_card_from_results

    task = proteingym_task(PROTEINGYM, None, "masked-marginal")
    evaluate(models, [task], EvaluateOptions(tmp_path / "o", bootstrap=0))
    results = tmp_path / "o" / "results.json"
    mine = results_json_card_results(results, models[1])
    assert {r.metric for r in mine} == {"spearman", "auc", "mcc", "ndcg", "recall_top10"}
    saved = json.loads(results.read_text())["results"]
    rho = next(r for r in saved if r["model"] == models[1] and r["assay"] is None and r["metric"] == "spearman")
    assert next(r.value for r in mine if r.metric == "spearman") == rho["value"]
    readme = update_card_from_results(models[1], results)
    assert len(ModelCard.load(readme).data.eval_results) == 5
    with pytest.raises(ValueError, match="holds no results of"):
        results_json_card_results(results, tmp_path / "elsewhere")
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not a results\.json"):
        results_json_card_results(tmp_path / "bad.json", models[0])


def test_tiny_suite_zero_shot_regression_and_per_residue(tmp_path, models, supervised_suite_yaml) -> None:
    """The issue's end-to-end suite: two tiny models, one zero-shot assay, one regression task, one per-residue
    task; every supervised row has the one-hot linear and CNN baselines beside the probes."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"\n- name: blat\n  kind: zero-shot\n  proteingym: {PROTEINGYM}{supervised_suite_yaml}", encoding="utf-8"
    )
    tasks = read_suite(suite)
    result = evaluate(models, tasks, EvaluateOptions(tmp_path / "out", bootstrap=10))
    rows = {(r.task, r.model, r.metric): r for r in result.records if r.assay is None}
    for model in [*models, "onehot-linear", "cnn-scratch"]:
        assert -1 <= rows["stability", model, "spearman"].value <= 1
        assert 0 <= rows["ss3", model, "q3"].value <= 1
    assert rows["stability", models[0], "spearman"].stderr is not None
    assert ("blat", "blosum62", "spearman") in rows
    table = (tmp_path / "out" / "results.md").read_text()
    assert "onehot-linear" in table and "cnn-scratch" in table


def test_empty_split_is_refused_naming_the_task(tmp_path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        f"- name: st\n  kind: regression\n  train_file: {DATA / 'stability_train_slice.csv'}\n", encoding="utf-8"
    )
    with pytest.raises(SuiteError, match=r"task 'st': the valid split is empty or missing"):
        read_suite(suite)


def test_perplexity_is_token_weighted_and_exact(tmp_path, models) -> None:
    import math

    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    sequences = ["MKTAYIAKQRQISFVKSHF", "GSSDIEITVEGK"]
    (tmp_path / "held.fasta").write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(sequences)), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("- name: ppl\n  kind: perplexity\n  fasta: held.fasta\n", encoding="utf-8")
    result = evaluate(models[:1], read_suite(tmp_path / "s.yaml"), EvaluateOptions(tmp_path / "o", bootstrap=10))
    (record,) = [r for r in result.records if r.task == "ppl"]
    network, tokenizer = (
        AutoModelForMaskedLM.from_pretrained(models[0]).eval(),
        AutoTokenizer.from_pretrained(models[0]),
    )
    total = 0.0
    for sequence in sequences:
        ids = tokenizer(sequence, return_tensors="pt")["input_ids"]
        for i in range(len(sequence)):
            masked = ids.clone()
            masked[0, i + 1] = tokenizer.mask_token_id  # <cls> first
            with torch.no_grad():
                log_probs = torch.log_softmax(network(input_ids=masked).logits[0, i + 1], -1)
            total += float(log_probs[ids[0, i + 1]])
    assert record.metric == "perplexity"
    assert record.value == pytest.approx(math.exp(-total / sum(map(len, sequences))), rel=1e-4)


def test_the_output_folder_is_locked_and_may_not_be_a_model(tmp_path, models) -> None:
    from protconv.file_guards import OutputDirInUseError, OutputDirLock, OutputIsInputError

    task = proteingym_task(two_type_folder(tmp_path / "pg"), None, "masked-marginal")
    with pytest.raises(OutputIsInputError, match="would overwrite the input"):
        evaluate(models[:1], [task], EvaluateOptions(Path(models[0]), bootstrap=0))
    with OutputDirLock(tmp_path / "out"), pytest.raises(OutputDirInUseError, match="in use by another run"):
        evaluate(models[:1], [task], EvaluateOptions(tmp_path / "out", bootstrap=0))


def test_push_results_puts_the_evaluation_into_the_uploaded_card(tmp_path, models, monkeypatch, capsys) -> None:
    import huggingface_hub
    from huggingface_hub import ModelCard

    from protconv.cli import main

    uploaded: dict[str, bytes] = {}

    class Api:
        def __init__(self, token=None) -> None:
            pass

        def create_repo(self, repo_id, private, exist_ok):
            return None

        def create_commit(self, repo_id, operations, **kwargs):
            for operation in operations:
                if operation.path_in_repo == "README.md":
                    uploaded["card"] = operation.path_or_fileobj
            return "https://huggingface.co/org/m/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    evaluate(
        models, [proteingym_task(PROTEINGYM, None, "masked-marginal")], EvaluateOptions(tmp_path / "o", bootstrap=0)
    )
    assert main(["push", models[0], "org/m", "--results", str(tmp_path / "o" / "results.json")]) == 0
    card = tmp_path / "pushed.md"
    card.write_bytes(uploaded["card"])
    assert {r.metric_type for r in ModelCard.load(card).data.eval_results} >= {"spearman", "auc"}
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    assert main(["push", models[0], "org/m", "--results", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a results.json" in capsys.readouterr().err
