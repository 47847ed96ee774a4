"""benchmarks/gpu_training.py --tiny: every section of the prepared GPU run works on a CPU, and its checks bite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_training.py"


@pytest.fixture(scope="module")
def gpu_training():
    spec = importlib.util.spec_from_file_location("gpu_training", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_training"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_training", None)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.mark.slow  # ~10 s; what its sections check is tested directly (below, tests/modeling, tests/pretraining)
def test_tiny_run_reaches_every_section_and_passes_its_checks(gpu_training, tmp_path) -> None:
    out = tmp_path / "tiny.md"
    report = gpu_training.main(["--tiny", "--out", str(out)])
    assert report.failures == []
    assert set(report.rows) == {"correctness", "pretraining", "throughput", "embed"}
    modes = {(row["family"], row["mode"]) for row in report.rows["correctness"] if "skipped" not in row}
    assert ("performer", "bf16-autocast") in modes and ("conv", "bf16-weights") in modes
    assert all(row["favor_features"] == "fp32" for row in report.rows["correctness"] if row["family"] == "performer")
    assert report.rows["pretraining"][0]["resume_bit_identical"] is True
    timed = [row for row in report.rows["throughput"] if "mfu" in row]
    assert {"esm2", "compiled", "softmax"} <= {word for row in timed for word in row["case"].replace("(", " ").split()}
    assert all(float(row["tokens_per_s"].replace(",", "")) > 0 for row in timed)
    assert float(report.rows["embed"][0]["embed_over_bare"]) > 0
    assert "Failed checks: none" in out.read_text()


def test_a_padding_leak_and_half_precision_features_are_caught(gpu_training, monkeypatch) -> None:
    """Break what section 1 guards (padded keys in the FAVOR+ normaliser; features under autocast): it fails."""
    original = gpu_training.favor.favor_attention

    def leaky(q, k, v, projection, key_mask=None, **kwargs):
        return original(q, k, v, projection, None, **kwargs)  # padded keys attended to, as performer-pytorch

    monkeypatch.setattr("protconv.modeling.modeling_performer.favor_attention", leaky)
    monkeypatch.setattr(gpu_training.favor, "_without_autocast", lambda device: torch.autocast(device.type))
    report = gpu_training.Report()
    gpu_training.section_correctness(report, torch.device("cpu"), True, gpu_training.Budget(60))
    assert any("performer fp32: padding changes outputs" in failure for failure in report.failures)
    assert any("FAVOR+ features not computed in fp32" in failure for failure in report.failures)
    assert not any(failure.startswith("conv") for failure in report.failures)


def test_flop_counts_follow_the_docstring_formulas(gpu_training) -> None:
    case = gpu_training.Case("c", "conv", {"hidden_size": 4, "intermediate_size": 2, "num_hidden_layers": 3}, 10, 10)
    assert gpu_training.forward_flops_per_token(case) == 2 * (8 * 4 + 3 * (8 + 5 * 4 + 8) + 4 * 33)
    shape = {
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "nb_features": 3,
    }
    favor = gpu_training.Case("p", "performer", shape, 100, 100)
    exact = gpu_training.Case("p", "performer", shape, 100, 100, "softmax")
    dense = 2 * 2 * (4 * 64 + 2 * 8 * 16) + 2 * 8 * 33
    assert gpu_training.forward_flops_per_token(favor) == dense + 2 * 2 * 8 * 3 * 5
    assert gpu_training.forward_flops_per_token(exact) == dense + 2 * 4 * 100 * 8
