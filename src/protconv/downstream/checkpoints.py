"""Fine-tuning checkpoints that are complete or absent, and ``--resume_from_checkpoint true`` that finds one.

Trainer writes ``checkpoint-N`` in place, so a kill mid-save leaves a folder under the final name that resume then
fails on. ``AtomicCheckpointTrainer`` lets Trainer write the checkpoint into ``OUTPUT/.tmp-checkpoint/``, adds
``protconv_checkpoint.json`` (every file's size and SHA-256) last, and renames the folder into place; older
checkpoints are renamed into the staging folder before they are deleted. So every ``checkpoint-N`` it leaves is
complete, a kill leaves at most the staging folder, which the next start removes, and a checkpoint damaged on disk
later (flipped bytes keep sizes and headers) fails its digests and is skipped for the older complete one.

Resuming loads nothing that can execute code: Trainer reads the weights with safetensors and the optimizer,
scheduler, scaler and RNG states with ``torch.load(weights_only=True)`` (``training_args.bin`` is never read back);
protconv also sets ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` while it trains, so no ``torch.load`` call inside can unpickle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..staging import content_digest, fsync_path
from .report import logger

__all__ = [
    "MARKER_FILE",
    "STAGING_FOLDER",
    "AtomicCheckpointTrainer",
    "FinetuneCheckpointError",
    "incomplete_reason",
    "resolve_resume",
    "weights_only_loading",
]

MARKER_FILE = "protconv_checkpoint.json"
STAGING_FOLDER = ".tmp-checkpoint"
_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_TRUE = {"true", "latest", "last"}


class FinetuneCheckpointError(ValueError):
    """A checkpoint named by ``--resume_from_checkpoint`` is missing or incomplete."""


class AtomicCheckpointTrainer(Trainer):
    """``Trainer`` whose checkpoints appear under their final name only once complete (see the module doc)."""

    _staging_root: str | None = None

    def _get_output_dir(self, trial) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        staging = run_dir / STAGING_FOLDER
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self._staging_root = str(staging)
        try:  # Trainer's own save (and its rotation, a no-op in the staging folder that holds one checkpoint)
            super()._save_checkpoint(model, trial)
        finally:
            self._staging_root = None
        best = self.state.best_model_checkpoint
        if best is not None and Path(best).parent == staging:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            self.state.save_to_json(str(staging / name / "trainer_state.json"))  # with the final best path
            _publish(staging / name, run_dir / name)
            _rotate(run_dir / name, staging, self.args.save_total_limit, self.state.best_model_checkpoint)
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()


def _publish(staged: Path, final: Path) -> None:
    """Write the marker (every file's size and SHA-256) last, after every other file reached the disk, then rename
    the folder into place."""
    sizes, digests = {}, {}
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        fsync_path(path)
        name = path.relative_to(staged).as_posix()
        sizes[name], digests[name] = path.stat().st_size, content_digest(path)
    marker = staged / MARKER_FILE
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump({"files": sizes, "sha256": digests}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    if final.exists():  # the same step saved again (e.g. after a resume from an earlier one)
        os.replace(final, staged.parent / f"old-{final.name}")
    os.replace(staged, final)
    fsync_path(final.parent)


def _rotate(saved: Path, staging: Path, limit: int | None, best: str | None) -> None:
    """Trainer's ``save_total_limit`` rule (keep the one just ``saved`` and the best), each deleted folder first
    renamed into ``staging`` so that a kill mid-delete leaves no half-deleted checkpoint under its name."""
    if not limit or limit <= 0:
        return
    run_dir = saved.parent
    checkpoints = _checkpoints(run_dir)
    protected = {saved}
    if best is not None:
        protected.add(run_dir / Path(best).name)
    keep, remaining = max(limit, len(protected)), len(checkpoints)
    for path in checkpoints:
        if remaining <= keep:
            break
        if path in protected:
            continue
        remaining -= 1
        doomed = staging / f"deleting-{path.name}"
        os.replace(path, doomed)
        shutil.rmtree(doomed)


def _checkpoints(run_dir: Path) -> list[Path]:
    """``checkpoint-N`` folders, oldest step first."""
    found = [p for p in run_dir.iterdir() if _NAME.match(p.name) and p.is_dir()] if run_dir.is_dir() else []
    return sorted(found, key=lambda p: int(_NAME.match(p.name)[1]))  # type: ignore[index]


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or None if it is complete.

    A protconv checkpoint is complete when its marker lists every file at its size and SHA-256 (an older
    protconv's marker, without digests, at its size alone); one without the marker
    (written by plain Trainer or an older protconv) is accepted if its ``trainer_state.json`` parses.
    """
    if not checkpoint.is_dir():
        return "it is not a folder"
    marker = checkpoint / MARKER_FILE
    if not marker.is_file():
        try:
            json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "it has no readable trainer_state.json (a save was interrupted)"
        return None
    try:
        manifest = json.loads(marker.read_text(encoding="utf-8"))
        sizes, digests = dict(manifest["files"]), dict(manifest.get("sha256", {}))  # no digests: an older protconv's
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MARKER_FILE} does not parse"
    for name, size in sizes.items():
        path = checkpoint / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or not {size} bytes"
    for name, expected in sorted(digests.items()):
        if content_digest(checkpoint / name) != expected:
            return f"{name} does not match the SHA-256 recorded when it was saved (altered or damaged on disk)"
    return None


def resolve_resume(value: str | None, output: Path) -> str | None:
    """The checkpoint to resume from: ``true`` is the newest complete one in ``output`` (incomplete ones are
    skipped, each named in a warning; with none, the run starts at step 0 and says so); a path must be complete.
    Staging left by a killed run is removed first."""
    shutil.rmtree(output / STAGING_FOLDER, ignore_errors=True)
    if value is None or value.lower() in {"false", "none", ""}:
        return None
    if value.lower() not in _TRUE:
        reason = incomplete_reason(Path(value))
        if reason is not None:
            raise FinetuneCheckpointError(
                f"--resume_from_checkpoint {value}: cannot resume from it, {reason}; pass "
                "--resume_from_checkpoint true for the newest complete checkpoint"
            )
        return value
    for checkpoint in reversed(_checkpoints(output)):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            logger.info("resuming from %s, the newest complete checkpoint", checkpoint)
            return str(checkpoint)
        logger.warning("skipping %s: %s", checkpoint, reason)
    logger.warning("no complete checkpoint in %s: starting from step 0", output)
    return None


@contextmanager
def weights_only_loading() -> Iterator[None]:
    """Every ``torch.load`` inside refuses pickled objects other than tensors and plain containers."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
