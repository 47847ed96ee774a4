"""MSAs as a pretraining corpus: cached profiles keyed by file hash, per-residue targets aligned with tokens."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from protconv import staging
from protconv.data import msa_corpus
from protconv.data.batching import Batch, TokenBudgetBatcher
from protconv.data.masking import IGNORE_INDEX, PretrainingCollator
from protconv.data.msa import read_alignment
from protconv.data.msa_corpus import MSACorpus, ProfiledSequence, find_profile_sources
from protconv.data.profiles import BACKGROUND, compute_profile
from protconv.tokenization import build_tokenizer
from tests.helpers import MSA


def test_members_carry_their_columns_profile_and_inserts_the_background(tmp_path) -> None:
    corpus = MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"], cache_dir=tmp_path)
    alignment = read_alignment(MSA / "UniRef50_E9K9Y4.a3m")
    profile = compute_profile(alignment).probabilities
    members = list(corpus)
    assert [m.residues for m in members] == [s for s in alignment.sequences if s]
    for member, columns in zip(members, alignment.match_columns, strict=False):
        targets = member.targets()
        assert targets.shape == (len(member), 20) and targets.dtype == np.float32
        np.testing.assert_allclose(targets[columns >= 0], profile[columns[columns >= 0]], rtol=1e-6)
        np.testing.assert_allclose(targets[columns < 0], np.broadcast_to(BACKGROUND, targets[columns < 0].shape))
    assert any((c < 0).any() for c in alignment.match_columns), "the file must exercise insert residues"
    masked = list(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"], inserts="mask"))
    for member, columns in zip(masked, alignment.match_columns, strict=False):
        assert (member.targets()[columns < 0] == 0).all()


def test_profiles_are_computed_once_and_keyed_by_file_content(tmp_path, monkeypatch) -> None:
    source = tmp_path / "family.a3m"
    shutil.copy(MSA / "UniRef50_E9K9Y4.a3m", source)
    cache = tmp_path / "cache"
    first = [m.targets() for m in MSACorpus([source], cache_dir=cache)]
    assert len(list(cache.glob("family.a3m.*.npz"))) == 1

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cached profile must be reused")

    monkeypatch.setattr(msa_corpus, "compute_profile", no_recompute)
    again = [m.targets() for m in MSACorpus([source], cache_dir=cache)]  # a new process: reads the cache
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    source.write_text(source.read_text().replace(">", ">edited ", 1))  # same name, new bytes: new key
    with pytest.raises(AssertionError, match="cached profile must be reused"):
        list(MSACorpus([source], cache_dir=cache))
    with pytest.raises(AssertionError, match="cached profile must be reused"):
        list(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"], cache_dir=cache, prior="dirichlet"))  # settings are keyed too
    assert not list(cache.glob(".*")), "no half-written cache file or staging folder is left behind"


def test_stale_partials_are_removed_and_a_running_writers_are_kept(tmp_path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    killed.kill()
    killed.wait()
    name = "other.a3m.0123456789abcdef0123456789abcdef.npz"
    dead = cache / f".{name}.{staging._host()}.{killed.pid}.0123abcd"  # killed mid-save
    running = cache / f".{name}.{staging._host()}.{os.getpid()}.4567cdef"  # a live writer's
    for folder in (dead, running):
        folder.mkdir()
        (folder / "profile.npz").write_bytes(b"PK\x03\x04half")
    old, fresh = cache / ".partial-k2x_9ab1.npz", cache / ".partial-q7m3zz0p.npz"  # older versions' mkstemp files
    old_index = cache / ".partial-p.fasta.gz-0123456789abcdef0123-a1b2c3d4"  # an older version's index mkdtemp
    for leftover in (old, fresh, old_index):
        if leftover is old_index:
            leftover.mkdir()
            (leftover / "data.fasta").write_bytes(b">half\nMKT")
        else:
            leftover.write_bytes(b"PK\x03\x04half")
    day_ago = time.time() - staging.STALE_AFTER_SECONDS - 60
    for leftover in (old, old_index, old_index / "data.fasta"):
        os.utime(leftover, (day_ago, day_ago))
    list(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"], cache_dir=cache))
    assert not dead.exists() and not old.exists() and not old_index.exists()
    assert running.exists() and fresh.exists(), "a writer that may still run keeps its partial"
    assert len(list(cache.glob("UniRef50_E9K9Y4.a3m.*.npz"))) == 1


def test_directories_profile_files_and_bad_paths(tmp_path) -> None:
    files = find_profile_sources([MSA])
    assert {p.name for p in files} >= {"globins4.sto", "UniRef50_E9K9Y4.a3m", "hhsuite_query.hhm", "toy.hmm"}
    hhm = list(MSACorpus([MSA / "hhsuite_query.hhm"]))
    assert len(hhm) == 1 and len(hhm[0]) == 431
    toy = list(MSACorpus([MSA / "toy.hmm"]))
    assert [len(m) for m in toy] == [4, 2]  # two models, each on its own profile rows
    assert not np.allclose(toy[0].targets()[:2], toy[1].targets())
    (tmp_path / "notes.txt").write_text("not an alignment")
    with pytest.raises(ValueError, match=r"notes\.txt: not an MSA or profile file"):
        MSACorpus([tmp_path / "notes.txt"])
    with pytest.raises(FileNotFoundError, match="no MSA or profile files"):
        MSACorpus([tmp_path])
    with pytest.raises(FileNotFoundError, match=r"missing\.a3m"):
        MSACorpus([tmp_path / "missing.a3m"])


def test_held_out_split_is_a_partition() -> None:
    paths = [MSA / "pfam_fn3_seed_slice.sto", MSA / "UniRef50_E9K9Y4.a3m"]
    everything = [m.residues for m in MSACorpus(paths)]
    train = [m.residues for m in MSACorpus(paths, held_out_fraction=0.3, side="train")]
    held = [m.residues for m in MSACorpus(paths, held_out_fraction=0.3, side="validation")]
    assert held and sorted(train + held) == sorted(everything)


def test_cropping_keeps_residues_and_targets_together() -> None:
    member = next(iter(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"])))
    batcher = TokenBudgetBatcher(max_tokens=64, max_length=22, special_tokens=2, seed=3)
    cropped = next(iter(batcher.batches([member]))).sequences[0]
    assert isinstance(cropped, ProfiledSequence) and len(cropped) == 20
    offset = member.residues.index(cropped.residues)
    np.testing.assert_array_equal(cropped.targets(), member.targets()[offset : offset + 20])


def test_collator_aligns_targets_with_tokens_and_zeroes_everything_else() -> None:
    tokenizer = build_tokenizer(add_cls=True, add_eos=True)
    member = next(iter(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"])))[:10]
    batch = Batch((member, "MKV"), (0, 1))
    collator = PretrainingCollator(tokenizer, mlm=True, profile=True, mlm_probability=0.5)
    tensors = collator(batch, seed=0)
    targets = tensors["profile_targets"]
    assert targets.shape == (2, 12, 20)
    np.testing.assert_array_equal(targets[0, 1:11].numpy(), member.targets())
    assert (targets[0, [0, 11]] == 0).all(), "<cls> and <eos> have no target"
    assert (targets[1] == 0).all(), "a protein without an alignment has no profile target"
    original, _ = collator.encode(batch.sequences)
    chosen = tensors["labels"] != IGNORE_INDEX
    assert chosen.any() and torch.equal(tensors["labels"][chosen], original[chosen]), "MLM masking applies on top"
    again = collator(batch, seed=0)
    assert all(torch.equal(tensors[k], again[k]) for k in tensors), "masking is a pure function of the seed"
    filler = collator(Batch((member,), (), filler=True), seed=0)
    assert (filler["profile_targets"] == 0).all() and (filler["labels"] == IGNORE_INDEX).all()


def test_profile_only_collation_leaves_the_input_unmasked() -> None:
    tokenizer = build_tokenizer(add_cls=False, add_eos=False)
    member = next(iter(MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"])))
    tensors = PretrainingCollator(tokenizer, mlm=False, profile=True, mlm_probability=0.5)(Batch((member,), (0,)), 0)
    assert "labels" not in tensors
    assert tokenizer.decode(tensors["input_ids"][0]) == member.residues
    with pytest.raises(ValueError, match="at least one of mlm and profile"):
        PretrainingCollator(tokenizer, mlm=False, profile=False)


def test_a_file_whose_only_member_is_held_out_is_not_an_error() -> None:
    hhm = [MSA / "hhsuite_query.hhm"]
    assert len(list(MSACorpus(hhm, held_out_fraction=0.999999, side="validation"))) == 1
    assert list(MSACorpus(hhm, held_out_fraction=0.999999, side="train")) == []


def test_an_unreadable_cache_file_is_recomputed(tmp_path) -> None:
    source = [MSA / "UniRef50_E9K9Y4.a3m"]
    expected = [m.targets() for m in MSACorpus(source, cache_dir=tmp_path)]
    (cached,) = tmp_path.glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated, as by a full disk
    again = [m.targets() for m in MSACorpus(source, cache_dir=tmp_path)]
    assert all(np.array_equal(a, b) for a, b in zip(expected, again, strict=True))
    assert len(cached.read_bytes()) > 100, "the broken entry is rewritten"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("progress", "terminal", "shown"), [(True, True, True), (True, False, False), (False, True, False)]
)
def test_preparing_profiles_shows_a_bar_on_a_terminal_when_asked(tmp_path, monkeypatch, progress, terminal, shown):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    MSACorpus([MSA / "UniRef50_E9K9Y4.a3m"], cache_dir=tmp_path, progress=progress).prepare()
    assert ("MSA profiles" in stderr.getvalue()) == shown
