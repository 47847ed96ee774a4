"""Families, presets and ``--model`` resolution: weights are loaded safely or refused, never silently replaced by
random ones, and a misspelled config field is an error."""

from __future__ import annotations

import os

import pytest
import torch

import protconv
from protconv.modeling import MODEL_FAMILIES
from protconv.pretraining.model_setup import build_pretraining_model
from protconv.registry import WeightsFormatError, available_presets, has_saved_weights, resolve_config


def test_every_family_registers_every_preset() -> None:
    presets = available_presets()
    for config_class in MODEL_FAMILIES:
        assert set(config_class.presets) <= set(presets)
        assert all(presets[name] is config_class for name in config_class.presets)


def _bin_folder(tmp_path, tiny_conv_config, state: object) -> str:
    folder = tmp_path / "bin-model"
    tiny_conv_config.save_pretrained(folder)
    torch.save(state, folder / "pytorch_model.bin")
    return str(folder)


def test_a_pytorch_model_bin_folder_loads_its_weights_not_random_ones(tmp_path, tiny_conv_config) -> None:
    original = protconv.ConvForMaskedLM(tiny_conv_config)
    folder = _bin_folder(tmp_path, tiny_conv_config, original.state_dict())
    assert has_saved_weights(folder)
    loaded = build_pretraining_model(folder)
    for name, tensor in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


class _Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pytorch_model_bin_with_a_payload_is_refused_without_running_it(tmp_path, tiny_conv_config) -> None:
    marker = tmp_path / "executed"
    folder = _bin_folder(tmp_path, tiny_conv_config, {"weights": _Payload(marker)})
    with pytest.raises(WeightsFormatError, match="objects other than tensors"):
        build_pretraining_model(folder)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pt", "checkpoint.ckpt", "weights.bin", "flax_model.msgpack"])
def test_weights_in_other_formats_are_refused_not_ignored(tmp_path, tiny_conv_config, name) -> None:
    folder = tmp_path / "model"
    tiny_conv_config.save_pretrained(folder)
    (folder / name).write_bytes(b"weights")
    with pytest.raises(WeightsFormatError, match=name.replace(".", r"\.")):
        build_pretraining_model(str(folder))


def test_a_config_only_folder_is_a_fresh_model(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.save_pretrained(tmp_path / "config-only")
    assert not has_saved_weights(tmp_path / "config-only")
    assert build_pretraining_model(str(tmp_path / "config-only")).config.hidden_size == 32


@pytest.mark.parametrize("model", ["carp-600k", "protconv_performer", "folder"])
def test_misspelled_config_overrides_are_errors(tmp_path, tiny_conv_config, model) -> None:
    if model == "folder":
        tiny_conv_config.save_pretrained(tmp_path / "folder")
        model = str(tmp_path / "folder")
    with pytest.raises(ValueError, match=r"'hiden_size' \(did you mean 'hidden_size'\?\)"):
        resolve_config(model, {"hiden_size": 64})
    assert resolve_config(model, {"hidden_size": 64, "num_labels": 3}).hidden_size == 64


def test_finetuning_loads_a_bin_folder_and_refuses_a_payload(tmp_path, tiny_conv_config) -> None:
    from protconv.downstream.finetune import build_task_model

    original = protconv.ConvForMaskedLM(tiny_conv_config)
    folder = _bin_folder(tmp_path, tiny_conv_config, original.state_dict())
    model = build_task_model(folder, "regression", 1)
    assert torch.equal(model.conv.layers[0].dilated_conv.weight, original.conv.layers[0].dilated_conv.weight)
    marker = tmp_path / "executed"
    (tmp_path / "bin-model" / "pytorch_model.bin").unlink()
    torch.save({"weights": _Payload(marker)}, tmp_path / "bin-model" / "pytorch_model.bin")
    with pytest.raises(WeightsFormatError):
        build_task_model(folder, "regression", 1)
    assert not marker.exists()
