"""Hub-ready model folders: weights, config with a complete ``auto_map``, modeling code, tokenizer, model card.

Folders are written to a temporary sibling and renamed into place, so an interrupted save never leaves a
half-written model where a finished one is expected. The siblings are named ``.<name>.<host>.<pid>.<random>``
(staging) and ``.<name>.old.<host>.<pid>.<random>`` (the previous folder, moved aside for the swap); what a
killed process left behind is removed (or, for a lost swap, restored) by the next save to the same target.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase


def model_card(model: PreTrainedModel, title: str, summary: str, details: Mapping[str, Any] | None = None) -> str:
    """A model card (README.md) with Hub metadata, usage with and without protconv, and the given details."""
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    rows = {
        "architecture": type(model).__name__,
        "parameters": f"{n_params:,}",
        "layers": config.num_hidden_layers,
        "hidden size": config.hidden_size,
        "vocabulary": config.vocab_size,
        **(details or {}),
    }
    table = "\n".join(f"| {key} | {value} |" for key, value in rows.items())
    auto_class = next(
        (name for name, target in config.auto_map.items() if target.endswith(f".{type(model).__name__}")),
        "AutoModel",
    )
    return f"""---
library_name: transformers
pipeline_tag: fill-mask
tags:
- protconv
- protein
- protein-language-model
---

# {title}

{summary}

| | |
|---|---|
{table}

## Usage

With protconv installed (`import protconv` registers the model type):

```python
import protconv
from transformers import AutoTokenizer, {auto_class}

tokenizer = AutoTokenizer.from_pretrained("REPO_OR_FOLDER")
model = {auto_class}.from_pretrained("REPO_OR_FOLDER")
```

Without protconv, the modeling code shipped in this repository is used:

```python
model = {auto_class}.from_pretrained("REPO_OR_FOLDER", trust_remote_code=True)
```
"""


#: Leftovers whose writer cannot be checked (another host, or an older protconv that put no pid in the name)
#: are removed once untouched for this long: no export takes a day.
STALE_AFTER_SECONDS = 24 * 3600


def save_hub_folder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path,
    card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` + ``tokenizer`` (+ model card) as a folder that loads with the Auto classes anywhere.

    The folder gets ordinary permissions (those of ``mkdir``: 0o777 less the umask). Staging folders of this
    target left by dead processes are cleaned up first.
    """
    folder = Path(folder)
    if folder.parent.is_dir():
        remove_stale_staging(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_sibling(folder, "")
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if card is not None:
            (staging / "README.md").write_text(card, encoding="utf-8")
        if folder.exists():  # move the old folder aside first: at every instant one complete folder exists
            backup = _make_sibling(folder, "old.")
            os.replace(folder, backup / folder.name)
            os.replace(staging, folder)
            shutil.rmtree(backup)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _make_sibling(folder: Path, kind: str) -> Path:
    """A new hidden sibling ``.<name>.<kind><host>.<pid>.<random>``, created by ``mkdir`` so the umask applies
    (``tempfile.mkdtemp`` would make it, and so the renamed model folder, 0o700)."""
    while True:
        path = folder.parent / f".{folder.name}.{kind}{_host()}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def remove_stale_staging(folder: str | Path) -> list[Path]:
    """Remove the staging and backup siblings of ``folder`` that no running writer owns; returns them.

    A sibling is stale if it names this host and a process that no longer runs, or if it names another host
    and has not been modified for ``STALE_AFTER_SECONDS``. Siblings of older protconv versions
    (``tempfile.mkdtemp`` names, no pid) are removed after that time too, when their content is an export's.
    If a writer died between moving the old folder aside and moving the new one in, ``folder`` is missing and
    the backup holds the previous complete folder: it is put back rather than deleted.
    """
    folder = Path(folder)
    name = re.escape(folder.name)
    current = re.compile(rf"\.{name}\.(?P<old>old\.)?(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{{8}}")
    legacy = re.compile(rf"\.{name}\.(?P<old>old\.)?[a-z0-9_]{{8}}")
    removed = []
    for path in sorted(folder.parent.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        if match := current.fullmatch(path.name):
            if match["host"] == _host():
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = _untouched_for(path, STALE_AFTER_SECONDS)
        elif match := legacy.fullmatch(path.name):
            # mkdtemp's 8 random characters nearly always hold a digit or '_'; a user's ".model.snapshot" does not
            stale = (
                re.search(r"[0-9_]", path.name[-8:]) is not None
                and _untouched_for(path, STALE_AFTER_SECONDS)
                and _holds_only_an_export(path, folder.name)
            )
        else:
            continue
        if not stale:
            continue
        if match["old"] and (path / folder.name).is_dir() and not folder.exists():
            os.replace(path / folder.name, folder)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _untouched_for(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:  # removed meanwhile by its owner
        return False


def _holds_only_an_export(path: Path, name: str) -> bool:
    """Files ``save_pretrained`` writes (config, weights, tokenizer, card, code), or the moved-aside folder."""
    export_files = re.compile(r"[\w.-]+\.(json|safetensors|md|py|txt|model|jinja)")
    return all(entry.name == name or export_files.fullmatch(entry.name) for entry in path.iterdir())


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    api=None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload a Hub-ready folder to ``repo_id`` (created if needed); returns the commit URL (or the pull request's).

    ``revision`` is the branch to commit to (created from main if missing; with ``create_pr``, the branch the
    pull request targets). ``token`` defaults to the logged-in user's (``hf auth login`` or ``HF_TOKEN``).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    has_weights = any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json"))
    if not (folder / "config.json").is_file() or not has_weights:
        raise FileNotFoundError(f"{folder} is not a saved model folder (config.json and safetensors weights needed)")
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    upload = {
        "folder_path": str(folder),
        "repo_id": repo_id,
        "commit_message": commit_message or "Upload protconv model",
    }
    if revision is not None:
        if not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        upload["revision"] = revision
    if create_pr:
        upload["create_pr"] = True
    commit = api.upload_folder(**upload)
    return str(getattr(commit, "pr_url", None) or getattr(commit, "commit_url", commit))
