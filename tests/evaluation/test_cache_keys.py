"""evaluate's caches are keyed by ``--bootstrap`` (another number of resamples gives new standard errors, not the old
ones read back); a ProteinGym task of one assay has its summary's stderr (the assay's own); the baselines beside a
supervised task are fitted once for all its modes, so changing a mode's fine-tuning settings reuses them."""

from __future__ import annotations

import pytest

from protconv.evaluation import EvaluateOptions, evaluate, proteingym_task, read_suite
from protconv.evaluation import supervised as supervised_module
from tests.evaluation.test_evaluate import PROTEINGYM
from tests.helpers import DATA


def _stderrs(records, assay=None) -> dict:
    return {(r.model, r.metric): r.stderr for r in records if r.assay == assay}


def test_another_bootstrap_recomputes_the_zero_shot_stderrs_and_one_assay_has_a_summary_stderr(tmp_path) -> None:
    task = proteingym_task(PROTEINGYM, None, "masked-marginal")
    assay = task.assays[0].name
    five = evaluate([], [task], EvaluateOptions(tmp_path / "out", bootstrap=5))
    assert (five.computed, five.reused) == (1, 0)
    again = evaluate([], [task], EvaluateOptions(tmp_path / "out", bootstrap=5))
    assert (again.computed, again.reused) == (0, 1) and again.records == five.records
    seven = evaluate([], [task], EvaluateOptions(tmp_path / "out", bootstrap=7))
    assert (seven.computed, seven.reused) == (1, 0)
    fresh = evaluate([], [task], EvaluateOptions(tmp_path / "fresh", bootstrap=7))
    assert seven.records == fresh.records  # not the five-resample stderrs read back
    assert _stderrs(seven.records, assay) != _stderrs(five.records, assay)
    for records in (five.records, seven.records):  # one assay: the summary's stderr is the assay's own
        per_assay, summary = _stderrs(records, assay), _stderrs(records)
        assert summary == per_assay and all(value is not None and value > 0 for value in summary.values())
        assert all(r.stderr is None for r in records if r.assay is not None and r.assay.startswith("type:"))
    table = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert "±" in table.split("| proteingym |  |")[1].splitlines()[0]


SUITE = f"""- name: st
  kind: regression
  train_file: {DATA / "stability_train_slice.csv"}
  test_file: {DATA / "stability_valid_slice.csv"}
  max_train_samples: 32
  baselines: linear
  mode: [probe, lora, full]
  finetune: {{num_train_epochs: 1, lora_r: RANK}}
"""


@pytest.fixture
def fits(monkeypatch) -> list[str]:
    """The baselines fitted, by task type."""
    real, fitted = supervised_module.run_baselines, []

    def counted(task, splits, options):
        fitted.append(task)
        return real(task, splits, options)

    monkeypatch.setattr(supervised_module, "run_baselines", counted)
    return fitted


def test_one_baseline_fit_serves_every_mode_and_new_lora_settings_reuse_it(tmp_path, fits) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.replace("RANK", "2"), encoding="utf-8")
    first = evaluate([], read_suite(suite), EvaluateOptions(tmp_path / "out", bootstrap=5))
    assert fits == ["regression"] and (first.computed, first.reused) == (1, 2)
    rows = {(r.task, r.model): r for r in first.records}
    assert {task for task, _ in rows} == {"st", "st-lora", "st-full"}
    assert rows["st-lora", "onehot-linear"].value == rows["st", "onehot-linear"].value
    suite.write_text(SUITE.replace("RANK", "4"), encoding="utf-8")  # the lora row's key changes, not the data
    changed = evaluate([], read_suite(suite), EvaluateOptions(tmp_path / "out", bootstrap=5))
    assert fits == ["regression"] and (changed.computed, changed.reused) == (0, 3)
    assert changed.records == first.records
    other = evaluate([], read_suite(suite), EvaluateOptions(tmp_path / "out", bootstrap=9))
    assert fits == ["regression"] and other.computed == 1  # new stderrs from the kept predictions, no new fit
    assert other.records[0].value == first.records[0].value and other.records[0].stderr != first.records[0].stderr
