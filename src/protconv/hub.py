"""Hub-ready model folders: weights, config with a complete ``auto_map``, modeling code, tokenizer, model card.

Folders are written to a temporary sibling and renamed into place, so an interrupted save never leaves a
half-written model where a finished one is expected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
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


def save_hub_folder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path,
    card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` + ``tokenizer`` (+ model card) as a folder that loads with the Auto classes anywhere."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if card is not None:
            (staging / "README.md").write_text(card, encoding="utf-8")
        if folder.exists():  # move the old folder aside first: at every instant one complete folder exists
            backup = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, backup / folder.name)
            os.replace(staging, folder)
            shutil.rmtree(backup)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def push_folder(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None, api=None) -> str:
    """Upload a Hub-ready folder to ``repo_id`` (created if needed); returns the commit URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    has_weights = any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json"))
    if not (folder / "config.json").is_file() or not has_weights:
        raise FileNotFoundError(f"{folder} is not a saved model folder (config.json and safetensors weights needed)")
    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload protconv model")
    return str(getattr(commit, "commit_url", commit))
