"""Crash-safe checkpoints in formats that cannot execute code: safetensors for tensors, JSON for the rest.

A checkpoint is shared and downloaded like a model, so resuming from one must never unpickle: accelerate's
``save_state``/``load_state`` store the scheduler, the RNG states and the optimizer with pickle (and load them with
``weights_only=False``), so protconv writes its own files instead:

- ``model.safetensors``: the full model state (gathered under FSDP);
- ``optimizer.safetensors`` + ``optimizer.json``: every optimizer tensor keyed ``<parameter name>/<field>``, and the
  parameter groups with parameter names instead of ids;
- ``scheduler.json`` and, with fp16 loss scaling, ``scaler.json``;
- ``rng_state_<rank>.safetensors``: each process's torch (CPU and accelerator) generator states as tensors, its
  Python and NumPy states as JSON in the file's metadata;
- ``trainer_state.json``, written last: the loop's position, the size and the SHA-256 of every other file.

The folder is written under a hidden ``.tmp-`` name and renamed, so a kill at any moment leaves either the previous
checkpoints untouched or a temporary folder that the next start deletes. Loading reads and checks every file (sizes
and SHA-256 digests against the manifest, headers, JSON) before any state is changed, so that flipped bytes inside
a tensor file are caught too, so a corrupt checkpoint is reported (and the loop
can fall back to an older one) without leaving the run half-restored.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, ValueType, get_state_dict, set_state_dict

from ..staging import content_digest, fsync_path

STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS_FILE = "optimizer.safetensors"
OPTIMIZER_GROUPS_FILE = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TEMPORARY_PREFIX = ".tmp-"
_FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)


class CheckpointError(RuntimeError):
    """A checkpoint to resume from is missing, incomplete, corrupt or does not fit this run."""


@dataclass
class TrainState:
    """Everything besides model/optimizer/scheduler/RNG state that a resumed run needs to continue exactly."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    tokens_seen: float = 0.0
    arguments: dict[str, Any] = field(default_factory=dict)
    #: ``{"train"|"validation": {FASTA path: record digest}}`` of the data the run trained on (empty in older
    #: checkpoints, which are resumed without this check).
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Trainables:
    """What a checkpoint saves besides ``TrainState``: the (prepared) model, optimizer, scheduler, loss scaler."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any = None


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"checkpoint-{step:08d}"


def rng_file(rank: int) -> str:
    return f"rng_state_{rank}.safetensors"


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


# ------------------------------------------------------------------------------------------------------- saving
def save_checkpoint(accelerator: Accelerator, root: Path, state: TrainState, trainables: Trainables, keep: int) -> Path:
    """Save everything needed to resume at ``state.step``, then prune to the newest ``keep`` checkpoints.

    Every process takes part in gathering the model and optimizer state (a collective under FSDP) and writes its
    own RNG state into the temporary folder (a shared file system is assumed, as for any multi-node checkpoint);
    the main process writes the rest, the manifest last, and renames.
    """
    final = checkpoint_dir(root, state.step)
    staging = root / f"{_TEMPORARY_PREFIX}{final.name}"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    model_state, optimizer_state = get_state_dict(trainables.model, _bare(trainables.optimizer), options=_FULL_STATE)
    _save_rng_state(staging / rng_file(accelerator.process_index))
    if accelerator.is_main_process:
        save_file(_contiguous(model_state), staging / MODEL_FILE)
        _save_optimizer(optimizer_state, staging)
        _write_json(staging / SCHEDULER_FILE, trainables.scheduler.state_dict())
        if trainables.scaler is not None:
            _write_json(staging / SCALER_FILE, trainables.scaler.state_dict())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        manifest = {path.name: path.stat().st_size for path in sorted(staging.iterdir())}
        for name in manifest:
            fsync_path(staging / name)
        digests = {name: content_digest(staging / name) for name in manifest}
        _write_json(staging / STATE_FILE, {**asdict(state), "files": manifest, "sha256": digests})
        if final.exists():  # re-saving a step after resuming from an older checkpoint
            shutil.rmtree(final)
        os.replace(staging, final)
        fsync_path(root)
        for old in complete_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _bare(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper (the state-dict helpers need the real one)."""
    return getattr(optimizer, "optimizer", optimizer)


def _contiguous(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors ready for ``save_file``. ``Any``: torch types a gathered state's values as any state
    (``ValueType``), but a full model state, like the optimizer fields picked here, holds tensors only."""
    return {name: tensor.detach().contiguous() for name, tensor in tensors.items()}


def _save_optimizer(optimizer_state: dict[str, Any], folder: Path) -> None:
    """Tensors to safetensors (``<parameter>/<field>``); parameter groups and any scalar fields to JSON."""
    tensors, scalars = {}, {}
    for parameter, fields in optimizer_state["state"].items():
        for name, value in fields.items():
            if torch.is_tensor(value):
                tensors[f"{parameter}/{name}"] = value
            else:
                scalars[f"{parameter}/{name}"] = value
    save_file(_contiguous(tensors), folder / OPTIMIZER_TENSORS_FILE)
    _write_json(folder / OPTIMIZER_GROUPS_FILE, {"param_groups": optimizer_state["param_groups"], "scalars": scalars})


def _save_rng_state(path: Path) -> None:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    legacy = np.random.get_state(legacy=True)
    if not isinstance(legacy, tuple):  # numpy returns a dict only for legacy=False
        raise TypeError(f"numpy.random.get_state(legacy=True) returned {type(legacy).__name__}, not a tuple")
    kind, keys, position, has_gauss, cached = legacy
    metadata = {
        "python": json.dumps(random.getstate()),
        "numpy": json.dumps([kind, keys.tolist(), position, has_gauss, cached]),
    }
    save_file(tensors, path, metadata=metadata)


# ------------------------------------------------------------------------------------------------------ loading
@dataclass
class CheckpointContents:
    """A checkpoint read into memory and checked, not yet applied."""

    path: Path
    state: TrainState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: tuple[dict[str, torch.Tensor], dict[str, str]]


def read_checkpoint(path: Path, rank: int) -> CheckpointContents:
    """Read and check every file of ``path`` that process ``rank`` needs; raises ``CheckpointError``."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    fields = _read_json(path, STATE_FILE)
    manifest = fields.pop("files", None)
    digests = fields.pop("sha256", None)  # absent in older checkpoints: their sizes are checked alone
    if "rounds" in fields:  # the name of ``batches_done`` in checkpoints written before the 0.1 layout
        fields["batches_done"] = fields.pop("rounds")
    try:
        state = TrainState(**fields)
    except TypeError as error:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} has unexpected fields ({error})") from error
    if not isinstance(manifest, dict):
        raise CheckpointError(
            f"checkpoint {path} has no file list in {STATE_FILE}: it was written by an older protconv in a "
            "format that loads with pickle, which protconv no longer reads; restart, or convert it in a trusted "
            "environment"
        )
    _check_sizes(path, manifest, rank)
    if isinstance(digests, dict):
        _check_digests(path, digests, rank)
    groups = _read_json(path, OPTIMIZER_GROUPS_FILE)
    optimizer = {"state": _nest(_read_tensors(path, OPTIMIZER_TENSORS_FILE), groups.get("scalars", {}))}
    optimizer["param_groups"] = groups["param_groups"]
    return CheckpointContents(
        path=path,
        state=state,
        model=_read_tensors(path, MODEL_FILE),
        optimizer=optimizer,
        scheduler=_read_json(path, SCHEDULER_FILE),
        scaler=_read_json(path, SCALER_FILE) if (path / SCALER_FILE).is_file() else None,
        rng=_read_rng(path, rng_file(rank)),
    )


def apply_checkpoint(contents: CheckpointContents, trainables: Trainables) -> TrainState:
    """Restore model, optimizer, scheduler, loss scaler and this process's RNG states from ``contents``."""
    optimizer = _bare(trainables.optimizer)
    _restore_group_types(contents.optimizer["param_groups"], optimizer.state_dict()["param_groups"])
    try:
        set_state_dict(
            trainables.model,
            optimizer,
            model_state_dict=dict[str, ValueType](contents.model),  # torch types the (read-only) argument dict
            optim_state_dict=contents.optimizer,
            options=StateDictOptions(full_state_dict=True),
        )
        trainables.scheduler.load_state_dict(contents.scheduler)
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {contents.path} does not fit this model or optimizer ({type(error).__name__}: {error})"
        ) from error
    if trainables.scaler is not None:
        if contents.scaler is None:
            raise CheckpointError(f"checkpoint {contents.path} has no {SCALER_FILE}, but this run uses fp16")
        trainables.scaler.load_state_dict(contents.scaler)
    _restore_rng(*contents.rng)
    return contents.state


def _check_sizes(path: Path, manifest: dict[str, int], rank: int) -> None:
    """Every file the manifest lists exists with its recorded size (a truncated copy or a torn download shows)."""
    needed = {MODEL_FILE, OPTIMIZER_TENSORS_FILE, OPTIMIZER_GROUPS_FILE, SCHEDULER_FILE, rng_file(rank)}
    missing = sorted(needed - set(manifest))
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)} (a checkpoint of another number of processes?)"
        )
    for name, size in manifest.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path}: {name} is missing")
        if file.stat().st_size != size:
            raise CheckpointError(
                f"checkpoint {path}: {name} has {file.stat().st_size} bytes, {size} were written (truncated or altered)"
            )


def _check_digests(path: Path, digests: dict[str, str], rank: int) -> None:
    """Every file this process reads has the content it was written with: a flipped byte inside a tensor keeps
    sizes and headers intact, and would otherwise load without complaint. Other processes' RNG files are theirs
    to check."""
    for name, expected in sorted(digests.items()):
        if name.startswith("rng_state_") and name != rng_file(rank):
            continue
        if content_digest(path / name) != expected:
            raise CheckpointError(
                f"checkpoint {path}: {name} does not match the SHA-256 recorded when it was saved (altered or "
                "damaged on disk)"
            )


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        value = json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(f"checkpoint {path} is incomplete (no {name})") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"checkpoint {path}: {name} is not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {path}: {name} does not hold a JSON object")
    return value


def _read_tensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(path / name)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: {name} is unreadable ({error})") from error


def _nest(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"<parameter>/<field>": value}`` -> ``{parameter: {field: value}}``."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *scalars.items()]:
        parameter, _, name = key.rpartition("/")
        state.setdefault(parameter, {})[name] = value
    return state


def _restore_group_types(saved: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
    """JSON turned tuples (e.g. Adam's ``betas``) into lists: give them back the optimizer's own types."""
    for saved_group, current_group in zip(saved, current, strict=False):
        for key, value in current_group.items():
            if isinstance(value, tuple) and isinstance(saved_group.get(key), list):
                saved_group[key] = tuple(saved_group[key])


def _read_rng(path: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(path / name, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open has no iter)
        python, numpy_state = json.loads(metadata["python"]), json.loads(metadata["numpy"])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: {name} is unreadable ({type(error).__name__}: {error})") from error
    if "torch" not in tensors:
        raise CheckpointError(f"checkpoint {path}: {name} has no torch generator state")
    return tensors, {"python": python, "numpy": numpy_state}


def _restore_rng(tensors: dict[str, torch.Tensor], states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors) - 1) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _write_json(path: Path, value: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
