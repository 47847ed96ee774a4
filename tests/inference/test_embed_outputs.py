"""embed's output options (issues 23, 24): the root ``ids`` in FASTA order (through kills, resumes and the shard
merge), the stacked ``mean`` matrix, float16 storage and compression as file settings, and the Parquet folder."""

from __future__ import annotations

import importlib
import logging
import re

import h5py
import numpy as np
import pytest

from protconv.inference import EmbeddingFileError, InferenceInputError, embed
from protconv.inference.embed import group_name
from protconv.inference.embedding_map import read_embedding_sample

from .conftest import FASTA, write_fasta

embed_module = importlib.import_module("protconv.inference.embed")
# Not in name order (HDF5 lists groups by name), two ids named like the root datasets, one needing escapes.
PROTEINS = [
    ("zeta", "MKVLAAGIVGLLLAAQPAMA"),
    ("ids", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"),
    ("alpha", "MDEFGHIKLMNPQRSTVWY"),
    ("mean", "MKKLLPTAAAGLLLLAAQPAMAMDEFG"),
    ("b/2%", "MSEQNNTEMTFQIQRIYTKDISFEAPNAPHVFQK"),
    ("mid", "MAHHHHHHVDDDDK"),
]
IN_ORDER = [name for name, _ in PROTEINS]


@pytest.fixture
def fasta(tmp_path):
    return write_fasta(tmp_path / "in.fasta", PROTEINS)


def ids_of(path) -> list[str]:
    with h5py.File(path, "r") as store:
        return store["ids"].asstr()[()].tolist()


def groups(path) -> dict[str, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as store:
        return {
            name: {key: item[key][()] for key in item} for name, item in store.items() if isinstance(item, h5py.Group)
        }


def interrupt_after(monkeypatch, batches: int) -> None:
    """A kill: the forward raises KeyboardInterrupt once ``batches`` batches went through."""
    real, calls = embed_module._embed_batch, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_embed_batch", flaky)


def test_ids_are_in_fasta_order_and_reserved_names_are_escaped(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, max_tokens_per_batch=60, progress=False)  # several batches, longest first
    assert ids_of(output) == IN_ORDER
    with h5py.File(output, "r") as store:
        assert isinstance(store["ids"], h5py.Dataset) and store["ids"].dtype.kind == "O"
        assert store["%69ds"].attrs["id"] == "ids" and store["%6Dean"].attrs["id"] == "mean"
        assert sorted(name for name in store if name != "ids") == sorted(group_name(i) for i in IN_ORDER)


def test_a_killed_run_has_no_ids_and_its_rerun_writes_them_complete(conv_folder, fasta, tmp_path, monkeypatch) -> None:
    output = tmp_path / "out.h5"
    with monkeypatch.context() as patch:
        interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            embed(conv_folder, fasta, output, max_tokens_per_batch=40, stack=True, progress=False)
    with h5py.File(output, "r") as store:
        assert "ids" not in store and "mean" not in store and 0 < len(store) < len(PROTEINS)
    result = embed(conv_folder, fasta, output, max_tokens_per_batch=40, stack=True, progress=False)
    assert result.skipped > 0 and ids_of(output) == IN_ORDER
    size = output.stat().st_size
    assert embed(conv_folder, fasta, output, stack=True, progress=False).written == 0
    assert output.stat().st_size == size  # nothing to do: the index is kept, not written again
    # The FASTA grows: the index is dropped at the first new record and written again at the end, in FASTA order;
    # records no longer in the FASTA come after it (kept, as before).
    grown = write_fasta(tmp_path / "grown.fasta", [("new", "MKVW"), *PROTEINS[1:]])
    embed(conv_folder, grown, output, stack=True, progress=False)
    assert ids_of(output) == ["new", *IN_ORDER[1:], "zeta"]
    with h5py.File(output, "r") as store:
        assert store["mean"].shape == (len(PROTEINS) + 1, 1, 32)
        np.testing.assert_array_equal(store["mean"][-1], store["zeta"]["mean"][()])


def test_stack_rows_follow_ids_and_the_map_reads_them(conv_folder, fasta, tmp_path) -> None:
    plain, stacked = tmp_path / "plain.h5", tmp_path / "stacked.h5"
    embed(conv_folder, fasta, plain, layers="last,1", progress=False)
    embed(conv_folder, fasta, stacked, layers="last,1", stack=True, progress=False)
    by_group = groups(stacked)
    with h5py.File(stacked, "r") as store:
        matrix = store["mean"][()]
    assert matrix.shape == (len(PROTEINS), 2, 32) and matrix.dtype == np.float32
    for row, record_id in enumerate(IN_ORDER):
        np.testing.assert_array_equal(matrix[row], by_group[group_name(record_id)]["mean"])
    for path in (plain, stacked):
        sample = read_embedding_sample(path, "1", max_points=4, seed=0)
        assert len(sample.ids) == 4 and sample.ids == [i for i in IN_ORDER if i in sample.ids]  # FASTA order
    one, other = (read_embedding_sample(path, "1", max_points=4, seed=0) for path in (plain, stacked))
    assert one.ids == other.ids
    np.testing.assert_array_equal(one.vectors, other.vectors)
    with pytest.raises(InferenceInputError, match="--stack stacks the mean"):
        embed(conv_folder, fasta, tmp_path / "x.h5", include="per_residue", stack=True, progress=False)


def test_float16_and_compression_are_stored_and_must_match_on_resume(conv_folder, fasta, tmp_path) -> None:
    reference, output = tmp_path / "float32.h5", tmp_path / "float16.h5"
    options = {"include": "mean,per_residue", "progress": False}
    embed(conv_folder, fasta, reference, **options)
    embed(conv_folder, fasta, output, storage_dtype="float16", compression="gzip", stack=True, **options)
    expected, got = groups(reference), groups(output)
    for name, items in expected.items():
        for key, value in items.items():
            assert got[name][key].dtype == np.float16
            np.testing.assert_array_equal(got[name][key], value.astype(np.float16))  # the same values, rounded
    with h5py.File(output, "r") as store:
        assert store.attrs["storage_dtype"] == "float16" and store.attrs["compression"] == "gzip"
        assert store["zeta"]["per_residue"].compression == "gzip" and store["zeta"]["mean"].compression is None
        assert store["mean"].dtype == np.float16 and store["mean"].compression == "gzip"
    with pytest.raises(EmbeddingFileError, match=r"storage_dtype='float16' \(now 'float32'\)"):
        embed(conv_folder, fasta, output, compression="gzip", **options)
    with pytest.raises(EmbeddingFileError, match=r"compression='gzip' \(now 'lzf'\)"):
        embed(conv_folder, fasta, output, storage_dtype="float16", compression="lzf", **options)
    with pytest.raises(InferenceInputError, match="--storage_dtype must be 'float32' or 'float16', got 'int8'"):
        embed(conv_folder, fasta, output, storage_dtype="int8", **options)  # type: ignore[arg-type]
    lzf = tmp_path / "lzf.h5"
    embed(conv_folder, fasta, lzf, compression="lzf", **options)
    with h5py.File(lzf, "r") as store:
        assert store["zeta"]["per_residue"].compression == "lzf"
        np.testing.assert_array_equal(store["zeta"]["per_residue"][()], expected["zeta"]["per_residue"])


def test_a_file_of_an_older_version_without_the_storage_settings_continues(conv_folder, fasta, tmp_path) -> None:
    output = tmp_path / "out.h5"
    embed(conv_folder, fasta, output, progress=False)
    with h5py.File(output, "a") as store:  # what an older protconv wrote: float32, uncompressed, no such attributes
        del store.attrs["storage_dtype"], store.attrs["compression"]
    assert embed(conv_folder, fasta, output, progress=False).skipped == len(PROTEINS)
    with pytest.raises(EmbeddingFileError, match="storage_dtype="):
        embed(conv_folder, fasta, output, storage_dtype="float16", progress=False)


def test_the_shard_merge_keeps_fasta_order_and_skips_a_shards_root_datasets(conv_folder, fasta, tmp_path) -> None:
    """A killed 2-process run's shard (here: a finished file of some records, with its own ``ids``, renamed as
    a shard) is taken in by a one-process rerun; OUTPUT's ``ids`` are the FASTA's order, not the merge's."""
    part = write_fasta(tmp_path / "part.fasta", [PROTEINS[4], PROTEINS[0]])
    shard = tmp_path / "out.h5.rank-1-of-2.partial.h5"
    embed(conv_folder, part, shard, max_tokens_per_batch=1, progress=False)
    reference, output = tmp_path / "one.h5", tmp_path / "out.h5"
    embed(conv_folder, fasta, reference, max_tokens_per_batch=1, progress=False)
    result = embed(conv_folder, fasta, output, max_tokens_per_batch=1, progress=False)
    assert (result.skipped, result.written) == (2, len(PROTEINS) - 2) and not shard.exists()
    assert ids_of(output) == IN_ORDER
    expected, got = groups(reference), groups(output)
    assert sorted(got) == sorted(expected)
    for name, items in expected.items():
        np.testing.assert_array_equal(got[name]["mean"], items["mean"])


def test_parquet_folder_loads_in_pandas_and_datasets_with_the_hdf5_values(conv_folder, fasta, tmp_path) -> None:
    pandas = pytest.importorskip("pandas")
    datasets = pytest.importorskip("datasets")
    reference, folder = tmp_path / "out.h5", tmp_path / "out"
    options = {"include": "mean,per_residue", "layers": "last,1", "chunk_size": 4, "progress": False}
    embed(conv_folder, fasta, reference, **options)
    result = embed(conv_folder, fasta, folder, output_format="parquet", **options)
    assert (result.records, result.written) == (len(PROTEINS), len(PROTEINS))
    assert sorted(path.name for path in folder.iterdir()) == [
        ".protconv_embeddings.json",
        "part-000000.parquet",
        "part-000001.parquet",
    ]
    frame = pandas.read_parquet(folder).sort_values("index")
    assert frame["id"].tolist() == IN_ORDER and frame["index"].tolist() == list(range(len(PROTEINS)))
    expected = groups(reference)
    for _, row in frame.iterrows():
        stored = expected[group_name(row["id"])]
        assert row["length"] == stored["per_residue"].shape[1]
        np.testing.assert_array_equal(np.stack(row["mean_1"]), stored["mean"][1])
        np.testing.assert_array_equal(np.stack(row["per_residue_last"]), stored["per_residue"][0])
    loaded = datasets.load_dataset("parquet", data_files=str(folder / "*.parquet"), split="train")
    assert loaded.num_rows == len(PROTEINS) and sorted(loaded["id"]) == sorted(IN_ORDER)
    assert datasets.load_dataset("parquet", data_dir=str(folder), split="train").num_rows == len(PROTEINS)
    mean = np.asarray(loaded.with_format("numpy")["mean_last"])[np.argsort(loaded["index"])]
    assert mean.shape == (len(PROTEINS), 32)
    np.testing.assert_array_equal(mean[0], expected["zeta"]["mean"][0])


def test_parquet_resumes_by_shard_and_refuses_a_changed_chunk(conv_folder, fasta, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "out"
    options = {"output_format": "parquet", "chunk_size": 2, "max_tokens_per_batch": 1, "progress": False}
    with monkeypatch.context() as patch:
        interrupt_after(patch, 3)  # chunk 0 complete, chunk 1 half done
        with pytest.raises(KeyboardInterrupt):
            embed(conv_folder, fasta, folder, **options)
    assert sorted(p.name for p in folder.iterdir()) == [".protconv_embeddings.json", "part-000000.parquet"]
    assert embed(conv_folder, fasta, folder, **options).skipped == 2
    assert embed(conv_folder, fasta, folder, **options).skipped == len(PROTEINS)
    changed = write_fasta(tmp_path / "changed.fasta", [*PROTEINS[:2], (PROTEINS[2][0], "MKV"), *PROTEINS[3:]])
    with pytest.raises(EmbeddingFileError, match=r"part-000001.parquet: does not hold the records of chunk 1"):
        embed(conv_folder, changed, folder, **options)
    again = embed(conv_folder, changed, folder, recompute_changed=True, **options)
    assert (again.skipped, again.written) == (4, 2)
    with pytest.raises(EmbeddingFileError, match=r"storage_dtype='float32' \(now 'float16'\)"):
        embed(conv_folder, fasta, folder, storage_dtype="float16", **options)
    half = embed(conv_folder, fasta, folder, storage_dtype="float16", overwrite=True, **options)
    assert half.written == len(PROTEINS)
    pa = pytest.importorskip("pyarrow")
    kind = pytest.importorskip("pyarrow.parquet").read_schema(folder / "part-000000.parquet").field("mean_last").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 32 and kind.value_type == pa.float16()


def test_parquet_refuses_what_it_cannot_write(conv_folder, fasta, tmp_path) -> None:
    with pytest.raises(InferenceInputError, match="--stack is for HDF5"):
        embed(conv_folder, fasta, tmp_path / "a", output_format="parquet", stack=True, progress=False)
    with pytest.raises(InferenceInputError, match="takes none or gzip"):
        embed(conv_folder, fasta, tmp_path / "b", output_format="parquet", compression="lzf", progress=False)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddingFileError, match="not a protconv Parquet embeddings folder"):
        embed(conv_folder, fasta, tmp_path / "user", output_format="parquet", progress=False)
    with pytest.raises(NotADirectoryError, match="is a file"):
        embed(conv_folder, fasta, fasta, output_format="parquet", progress=False)


def test_parquet_on_two_processes_then_a_killed_rank_continued_at_one(conv_folder, tmp_path, caplog) -> None:
    """Each rank writes its part of a chunk (``part-C-rKofN.parquet``, no merge); a chunk a killed rank left
    incomplete is computed again by a one-process rerun, which ends with the values of an uninterrupted run. One
    record per batch, so values do not depend on what ran together."""
    pandas = pytest.importorskip("pandas")
    from protconv.inference.distributed import EXIT_AFTER_ENV

    from .test_distributed import launch, one_thread

    folder = tmp_path / "two"
    options = ["--format", "parquet", "--chunk_size", "4", "--max_tokens_per_batch", "1", "--no_progress"]
    done = launch(2, "embed", str(conv_folder), str(FASTA), str(folder), *options, env={EXIT_AFTER_ENV: "1:3"})
    assert done.returncode != 0
    parts = sorted(path.name for path in folder.glob("part-*.parquet"))
    assert parts and all(re.fullmatch(r"part-00000\d-r[01]of2\.parquet", name) for name in parts), parts
    with one_thread():
        reference = embed(conv_folder, FASTA, tmp_path / "one", output_format="parquet", chunk_size=4,
                          max_tokens_per_batch=1, progress=False)  # fmt: skip
        with caplog.at_level(logging.WARNING):
            resumed = embed(conv_folder, FASTA, folder, output_format="parquet", chunk_size=4,
                            max_tokens_per_batch=1, progress=False)  # fmt: skip
    assert "chunk 1 is incomplete (a killed run)" in caplog.text  # rank 1 died in its second chunk
    assert 0 < resumed.skipped < reference.written and resumed.written == reference.written - resumed.skipped
    one, two = (
        pandas.read_parquet(path).sort_values("index").reset_index(drop=True) for path in (tmp_path / "one", folder)
    )
    assert one["id"].tolist() == two["id"].tolist() and len(one) == 15
    for a, b in zip(one["mean_last"], two["mean_last"], strict=True):
        np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_the_command_line_options_reach_embed(monkeypatch, capsys) -> None:
    import argparse

    from protconv.inference import add_embed_command

    seen: dict = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return embed_module.EmbedResult(args[2], 1, 1, 0, 0.1)

    monkeypatch.setattr(embed_module, "embed", fake)
    root = argparse.ArgumentParser(prog="protconv")
    add_embed_command(root.add_subparsers(dest="command"))
    argv = ["embed", "m", "in.fasta", "out", "--format", "parquet", "--storage_dtype", "float16", "--chunk_size", "7"]
    args = root.parse_args([*argv, "--compression", "gzip", "--stack", "--layers", "-1", "-2"])
    args.run(args)
    assert (seen["output_format"], seen["storage_dtype"], seen["compression"]) == ("parquet", "float16", "gzip")
    assert seen["stack"] is True and seen["chunk_size"] == 7 and seen["layers"] == "-1,-2"
    defaults = root.parse_args(["embed", "m", "in.fasta", "out.h5"])
    assert (defaults.output_format, defaults.storage_dtype, defaults.compression, defaults.stack) == (
        "hdf5",
        "float32",
        "none",
        False,
    )
    assert "wrote 1 records to out" in capsys.readouterr().out
