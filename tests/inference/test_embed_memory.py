"""What keeps ``embed``'s resident memory flat over a large FASTA file (benchmarks/results/embed_memory.md): a
bounded HDF5 metadata cache on the output and a disabled oneDNN primitive cache. Settings, not timings."""

from __future__ import annotations

import importlib
import os

import h5py

from protconv.inference import embed

from .conftest import FASTA

embed_module = importlib.import_module("protconv.inference.embed")
ONEDNN_CACHE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


def test_the_output_is_written_with_a_bounded_metadata_cache(conv_folder, tmp_path, monkeypatch) -> None:
    seen: list[int] = []
    pending = embed_module._embed_pending

    def spy(store: h5py.File, *args, **kwargs) -> None:
        seen.append(store.id.get_mdc_config().max_size)
        pending(store, *args, **kwargs)

    monkeypatch.setattr(embed_module, "_embed_pending", spy)
    embed(conv_folder, FASTA, tmp_path / "out.h5", progress=False)
    assert len(seen) == 1 and seen[0] <= 1 << 20  # HDF5's default grows to 32 MiB
    with h5py.File(tmp_path / "out.h5", "r") as store:
        assert len(store) == 16  # 15 record groups and the root dataset ids


def test_embed_turns_off_the_onednn_primitive_cache_unless_the_user_set_it(conv_folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ONEDNN_CACHE, "")
    monkeypatch.delenv(ONEDNN_CACHE)
    embed(conv_folder, FASTA, tmp_path / "a.h5", progress=False)
    assert os.environ[ONEDNN_CACHE] == "0"
    monkeypatch.setenv(ONEDNN_CACHE, "64")
    embed(conv_folder, FASTA, tmp_path / "b.h5", progress=False)
    assert os.environ[ONEDNN_CACHE] == "64"
