"""embed: values equal single-sequence model outputs, layers, the HDF5 layout, resuming, bad input up front."""

from __future__ import annotations

import importlib

import h5py
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import protconv
from protconv.data import read_fasta
from protconv.inference import EmbeddingFileError, InferenceInputError, embed, plan_batches
from protconv.inference.embed import group_name
from protconv.tokenization.encoding import SequenceEncoder

from .conftest import FASTA, save_model, write_fasta

ATOL = 2e-5
# The module, not the function of the same name that protconv.inference exports.
embed_module = importlib.import_module("protconv.inference.embed")
common_module = importlib.import_module("protconv.inference.common")


def alone(folder, sequence: str):
    """The model's outputs for one sequence, run alone (no padding)."""
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(sequence, return_tensors="pt", return_special_tokens_mask=True)
    residues = ~encoded.pop("special_tokens_mask")[0].bool()
    with torch.no_grad():
        return model(**encoded, output_hidden_states=True), residues


def test_mean_and_per_residue_equal_the_model_run_alone(any_folder, tmp_path) -> None:
    """Small batches (several proteins padded together, chunks of 4 records): padding never leaks."""
    output = tmp_path / "out.h5"
    result = embed(
        any_folder, FASTA, output, include="mean,per_residue", max_tokens_per_batch=1500, chunk_size=4, progress=False
    )
    records = list(read_fasta(FASTA))
    assert (result.records, result.written, result.skipped) == (15, 15, 0)
    model = AutoModel.from_pretrained(any_folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(any_folder)
    with h5py.File(output, "r") as store:
        assert store.attrs["format"] == "protconv-embeddings/1"
        assert store.attrs["model"] == str(any_folder)
        assert store.attrs["protconv_version"] == protconv.__version__
        assert list(store.attrs["layers"]) == ["last"] and list(store.attrs["include"]) == ["mean", "per_residue"]
        assert len(store) == 16  # a group per record and the root dataset ids
        assert store["ids"].asstr()[()].tolist() == [record.id for record in records]
        for record in records:
            group = store[record.id]
            encoded = tokenizer(record.sequence, return_tensors="pt", return_special_tokens_mask=True)
            residues = ~encoded.pop("special_tokens_mask")[0].bool()
            with torch.no_grad():
                out = model(**encoded)
            assert group.attrs["length"] == len(record.sequence) and group.attrs["id"] == record.id
            assert list(group.attrs["layers"]) == ["last"]
            assert group["mean"].shape == (1, 32) and group["mean"].dtype == np.float32
            assert group["per_residue"].shape == (1, len(record.sequence), 32)
            np.testing.assert_allclose(group["mean"][0], out.pooler_output[0].numpy(), atol=ATOL)
            np.testing.assert_allclose(group["per_residue"][0], out.last_hidden_state[0, residues].numpy(), atol=ATOL)


def test_chosen_layers_with_negative_indices(performer_folder, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(performer_folder, FASTA, output, include="per_residue,mean", layers="0,-1,last,1", progress=False)
    sequence = next(iter(read_fasta(FASTA)))
    out, residues = alone(performer_folder, sequence.sequence)
    expected = [out.hidden_states[0], out.hidden_states[-1], out.last_hidden_state, out.hidden_states[1]]
    with h5py.File(output, "r") as store:
        group = store[sequence.id]
        assert list(group.attrs["layers"]) == ["0", "2", "last", "1"]  # -1 of a 2-layer model is hidden_states[2]
        assert group["per_residue"].shape == (4, len(sequence.sequence), 32)
        for row, states in enumerate(expected):
            per_residue = states[0, residues].numpy()
            np.testing.assert_allclose(group["per_residue"][row], per_residue, atol=ATOL)
            np.testing.assert_allclose(group["mean"][row], per_residue.mean(axis=0), atol=ATOL)


@pytest.mark.parametrize(
    ("layers", "message"), [("5", "out of range"), ("-6", "out of range"), ("4,-1", "twice"), ("top", "neither")]
)
def test_bad_layers_are_refused(conv_folder, tmp_path, layers, message) -> None:
    """The tiny Conv model has 4 blocks: hidden_states 0..4."""
    with pytest.raises(InferenceInputError, match=message):
        embed(conv_folder, FASTA, tmp_path / "out.h5", layers=layers, progress=False)
    assert not (tmp_path / "out.h5").exists()


def test_cls_pooled_model_mean_is_over_residues_and_cls_is_its_pooler_output(tmp_path, tiny_conv_config) -> None:
    tiny_conv_config.pooling = "cls"
    folder = save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "cls")
    output = tmp_path / "out.h5"
    embed(folder, FASTA, output, include="mean,cls", progress=False)
    record = next(iter(read_fasta(FASTA)))
    out, residues = alone(folder, record.sequence)
    with h5py.File(output, "r") as store:
        np.testing.assert_allclose(store[record.id]["cls"][0], out.pooler_output[0].numpy(), atol=ATOL)
        mean = out.last_hidden_state[0, residues].mean(dim=0).numpy()
        np.testing.assert_allclose(store[record.id]["mean"][0], mean, atol=ATOL)


def test_include_cls_needs_a_cls_token(carp_folder, tmp_path) -> None:
    with pytest.raises(InferenceInputError, match="no <cls>"):
        embed(carp_folder, FASTA, tmp_path / "out.h5", include="cls", progress=False)


def _interrupt_after(monkeypatch, batches: int) -> None:
    """Simulate a kill: the model forward raises KeyboardInterrupt once ``batches`` batches went through."""
    real = embed_module._embed_batch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_embed_batch", flaky)


def _contents(path) -> dict[str, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as store:
        return {name: {key: group[key][()] for key in group} for name, group in store.items() if name != "ids"}


def test_resume_after_a_kill_skips_done_records_and_gives_the_same_values(conv_folder, tmp_path, monkeypatch) -> None:
    options = {"include": "mean,per_residue", "layers": "last,2", "max_tokens_per_batch": 2000, "progress": False}
    reference = tmp_path / "reference.h5"
    embed(conv_folder, FASTA, reference, **options)

    output = tmp_path / "out.h5"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            embed(conv_folder, FASTA, output, **options)
    done = _contents(output)  # the killed run's file is readable, with whole records
    assert 0 < len(done) < 15
    pending = sorted({record.id for record in read_fasta(FASTA)} - set(done))[0]
    with h5py.File(output, "a") as store:  # what a kill in the middle of a write could leave
        names = sorted(store)
        del store[names[0]]["per_residue"]  # a group missing a dataset
        del store[names[1]].attrs["length"]  # a group without its completeness mark
        store.create_group(pending)  # an empty group
    complete = len(done) - 2

    result = embed(conv_folder, FASTA, output, **options)
    assert (result.skipped, result.written) == (complete, 15 - complete)
    expected, got = _contents(reference), _contents(output)
    assert sorted(got) == sorted(expected)
    for name, items in expected.items():
        for key, value in items.items():
            np.testing.assert_allclose(got[name][key], value, atol=ATOL)
    again = embed(conv_folder, FASTA, output, **options)  # everything present: nothing to do
    assert (again.skipped, again.written) == (15, 0)


def test_resume_refuses_other_settings_or_another_model(conv_folder, carp_folder, tmp_path, tiny_conv_config) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, FASTA, output, progress=False)
    with pytest.raises(EmbeddingFileError, match="include="):
        embed(conv_folder, FASTA, output, include="per_residue", progress=False)
    with pytest.raises(EmbeddingFileError, match="layers="):
        embed(conv_folder, FASTA, output, layers="-1", progress=False)
    with pytest.raises(EmbeddingFileError, match="dtype="):
        embed(conv_folder, FASTA, output, dtype="bfloat16", progress=False)
    changed = write_fasta(tmp_path / "changed.fasta", [("UniRef50_E9K9Y4", "MKV")])
    with pytest.raises(EmbeddingFileError, match=r"holds record 'UniRef50_E9K9Y4' with 98 residues, but .*has 3"):
        embed(conv_folder, changed, output, progress=False)
    other = save_model(protconv.ConvForMaskedLM(tiny_conv_config), tmp_path / "other")
    with pytest.raises(EmbeddingFileError, match="fingerprint"):
        embed(other, FASTA, output, progress=False)
    moved = tmp_path / "moved"
    conv_folder.rename(moved)  # the same weights elsewhere: the file continues
    assert embed(moved, FASTA, output, progress=False).skipped == 15
    assert embed(other, FASTA, output, overwrite=True, progress=False).written == 15
    not_ours = tmp_path / "not_ours.h5"
    with h5py.File(not_ours, "w") as store:
        store.attrs["x"] = 1
    with pytest.raises(EmbeddingFileError, match="not a protconv embeddings file"):
        embed(other, FASTA, not_ours, progress=False)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(EmbeddingFileError, match="cannot be read as HDF5"):
        embed(other, FASTA, garbage, progress=False)


def _forbid_model_loading(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was validated")

    monkeypatch.setattr(common_module, "load_model", refuse)


def test_duplicate_ids_and_invalid_characters_fail_before_any_work(conv_folder, tmp_path, monkeypatch) -> None:
    _forbid_model_loading(monkeypatch)
    output = tmp_path / "out.h5"
    duplicate = write_fasta(tmp_path / "dup.fasta", [("a", "MKV"), ("b first", "ACD"), ("b second", "EFG")])
    with pytest.raises(InferenceInputError, match=r"dup.fasta:5: record 'b' repeats the id of the record at line 3"):
        embed(conv_folder, duplicate, output, progress=False)
    invalid = write_fasta(tmp_path / "bad.fasta", [("a", "MKV"), ("b", "ACDJ1K")])
    with pytest.raises(protconv.InvalidSequenceError, match=r"bad.fasta:3 \(>b\): character '1' at position 5"):
        embed(conv_folder, invalid, output, progress=False)
    no_id = tmp_path / "noid.fasta"
    no_id.write_text(">\nMKV\n")
    with pytest.raises(InferenceInputError, match="without an id"):
        embed(conv_folder, no_id, output, progress=False)
    assert not output.exists()


def test_unknown_x_maps_invalid_characters(conv_folder, tmp_path) -> None:
    fasta = write_fasta(tmp_path / "x.fasta", [("odd/id%1", "MK1V")])
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, unknown="X", include="per_residue", progress=False)
    out, residues = alone(conv_folder, "MKXV")
    with h5py.File(output, "r") as store:
        group = store[group_name("odd/id%1")]
        assert group.name == "/odd%2Fid%251" and group.attrs["id"] == "odd/id%1" and group.attrs["length"] == 4
        np.testing.assert_allclose(group["per_residue"][0], out.last_hidden_state[0, residues].numpy(), atol=ATOL)


def test_absolute_positions_refuse_a_too_long_record_up_front(tmp_path, tiny_performer_config, monkeypatch) -> None:
    tiny_performer_config.position_embedding_type = "absolute"
    tiny_performer_config.max_position_embeddings = 300
    folder = save_model(protconv.PerformerForMaskedLM(tiny_performer_config), tmp_path / "absolute")
    _forbid_model_loading(monkeypatch)
    with pytest.raises(
        InferenceInputError, match=r"record 'UniRef50_A0A1E3NP16': 430 tokens .* max_position_embeddings=300"
    ):
        embed(folder, FASTA, tmp_path / "out.h5", progress=False)


def test_absolute_positions_run_records_within_the_limit(tmp_path, tiny_performer_config) -> None:
    tiny_performer_config.position_embedding_type = "absolute"
    folder = save_model(protconv.PerformerForMaskedLM(tiny_performer_config), tmp_path / "absolute")
    fasta = write_fasta(tmp_path / "short.fasta", [("a", "MKV" * 100), ("b", "ACDEF" * 30)])
    output = tmp_path / "out.h5"
    embed(folder, fasta, output, max_tokens_per_batch=100, progress=False)  # each record alone, over the budget
    out, _ = alone(folder, "MKV" * 100)
    with h5py.File(output, "r") as store:
        np.testing.assert_allclose(store["a"]["mean"][0], out.pooler_output[0].numpy(), atol=ATOL)


def test_plan_batches_sorts_cuts_at_the_budget_and_isolates_long_sequences() -> None:
    lengths = [10, 50, 11, 300, 12, 49]
    batches = plan_batches(lengths, max_tokens=110, special_tokens=2)
    assert batches == [[3], [1, 5], [4, 2, 0]]  # longest first; 300 + 2 > 110 runs alone
    for batch in batches:
        assert len(batch) == 1 or len(batch) * (max(lengths[i] for i in batch) + 2) <= 110
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))


@pytest.mark.parametrize("framing", [(True, True), (False, False), (True, False)])
def test_batch_encoder_gives_the_tokenizer_ids(framing) -> None:
    tokenizer = protconv.build_tokenizer(*framing)
    encoder = SequenceEncoder(tokenizer)
    assert encoder.fast
    sequences = ["MKV", "ACDEFGHIKLMNPQRSTVWYBZXJOU-*", "W"]
    expected = tokenizer(sequences, padding=True, return_tensors="pt")
    got = encoder(sequences, torch.device("cpu"))
    assert torch.equal(got["input_ids"], expected["input_ids"])
    assert torch.equal(got["attention_mask"], expected["attention_mask"])
    left = protconv.build_tokenizer()
    left.padding_side = "left"
    assert not SequenceEncoder(left).fast  # falls back to the tokenizer itself
