"""Crash-safe checkpoints: ``accelerator.save_state`` into a hidden temporary folder, then a rename.

A checkpoint counts only once its ``trainer_state.json`` (written last) is present and the folder carries its final
name, so a kill at any moment leaves either the previous checkpoints untouched or a hidden ``.tmp-`` folder that
the next start deletes: the run is always resumable from the newest complete checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TEMPORARY_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint to resume from is missing, incomplete or unreadable."""


@dataclass
class TrainState:
    """Everything besides model/optimizer/scheduler/RNG state that a resumed run needs to continue exactly."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    tokens_seen: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"checkpoint-{step:08d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [path for _, path in sorted(found)]


def remove_partial(root: Path) -> None:
    """Delete what an interrupted save left behind (main process only)."""
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(_TEMPORARY_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(accelerator: Accelerator, root: Path, state: TrainState, keep: int) -> Path:
    """Save everything needed to resume at ``state.step``, then prune to the newest ``keep`` checkpoints.

    Every process writes its own RNG state into the temporary folder (shared file system assumed, as for any
    multi-node checkpoint); the main process writes the state file and renames.
    """
    final = checkpoint_dir(root, state.step)
    staging = root / f"{_TEMPORARY_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_json(staging / STATE_FILE, asdict(state))
        if final.exists():  # re-saving a step after resuming from an older checkpoint
            shutil.rmtree(final)
        os.replace(staging, final)
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> TrainState:
    """Restore model, optimizer, scheduler and RNG states from ``path`` and return the loop's state."""
    state_file = path / STATE_FILE
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not state_file.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete (no {STATE_FILE}); resume from an older one")
    try:
        fields = json.loads(state_file.read_text(encoding="utf-8"))
        if "rounds" in fields:  # the name of ``batches_done`` in checkpoints written before protconv 0.1's layout
            fields["batches_done"] = fields.pop("rounds")
        state = TrainState(**fields)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} has an unreadable {STATE_FILE}: {error}") from error
    try:
        accelerator.load_state(str(path))
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} could not be loaded ({type(error).__name__}: {error}); it may be corrupt, or "
            "from a different model or number of processes: delete it to resume from an older one"
        ) from error
    return state


def _write_json(path: Path, value: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
