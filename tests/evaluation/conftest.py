"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest

from tests.helpers import DATA


@pytest.fixture
def supervised_suite_yaml() -> str:
    """Two supervised suite tasks (a regression and a per-residue task, one CNN epoch each) as suite YAML entries,
    shared by the tests that run the baselines and probes through ``evaluate``."""
    return f"""
- name: stability
  kind: regression
  train_file: {DATA / "stability_train_slice.csv"}
  test_file: {DATA / "stability_valid_slice.csv"}
  cnn_epochs: 1
- name: ss3
  kind: token-classification
  train_file: {DATA / "ss_sequences_slice.fasta"}
  labels_file: {DATA / "ss_labels_slice.fasta"}
  mask_file: {DATA / "ss_mask_slice.fasta"}
  cnn_epochs: 1
"""
