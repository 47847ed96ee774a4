"""--max_length against the model's positions: only learned absolute positions limit it
(``model_source.position_limit``), so a rotary Performer pretrains on sequences longer than its
``max_position_embeddings`` and an absolute-position one is refused before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.state import AcceleratorState, GradientState

from protconv.pretraining import parse_arguments, pretrain
from protconv.pretraining.loop import _check_max_length, _config_overrides
from protconv.registry import resolve_config
from tests.helpers import DATA

TINY_PERFORMER = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32,nb_features=16"


def performer_arguments(positions: str, output_dir: Path | None = None) -> list[str]:
    """A Performer with 64 positions of kind ``positions``, asked for 256 tokens per sequence."""
    overrides = f"{TINY_PERFORMER},position_embedding_type={positions},max_position_embeddings=64"
    argv = ["--model", "protconv_performer", "--config_overrides", overrides, "--max_length", "256"]
    argv += ["--train_files", str(DATA / "some_proteins.fasta")]
    return argv + (["--output_dir", str(output_dir), "--disable_tqdm", "true"] if output_dir else [])


def test_a_rotary_performer_is_not_limited_by_max_position_embeddings() -> None:
    model_args, data_args, _ = parse_arguments(performer_arguments("rotary"))
    config = resolve_config(model_args.model, _config_overrides(model_args))
    assert (config.position_embedding_type, config.max_position_embeddings, data_args.max_length) == ("rotary", 64, 256)
    _check_max_length(config, data_args.max_length)  # no error: rotary positions take any length


def test_an_absolute_position_performer_is_refused_a_longer_max_length() -> None:
    model_args, data_args, _ = parse_arguments(performer_arguments("absolute"))
    config = resolve_config(model_args.model, _config_overrides(model_args))
    with pytest.raises(
        ValueError,
        match=r"^--max_length 256 exceeds the model's max_position_embeddings=64 \(learned absolute positions\)$",
    ):
        _check_max_length(config, data_args.max_length)


def test_pretrain_refuses_it_before_reading_data(tmp_path) -> None:
    try:
        with pytest.raises(ValueError, match=r"--max_length 256 exceeds the model's max_position_embeddings=64"):
            pretrain(*parse_arguments(performer_arguments("absolute", tmp_path / "run")))
    finally:  # accelerate keeps process-wide singletons that must not leak into other tests
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    assert not (tmp_path / "run" / "data_cache").exists()
