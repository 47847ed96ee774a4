"""Helpers shared by test modules (plain functions, not fixtures, so they can take any arguments)."""

from __future__ import annotations

import inspect
import json
import os
import site
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

#: Real-data slices (tests/data/SOURCES.md) and their MSA subfolder.
DATA = Path(__file__).parent / "data"
MSA = DATA / "msa"


def python_without_protconv(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter that cannot import protconv.

    ``-S`` skips site initialisation, so the editable install's path hook (.pth) never runs; site-packages is
    then appended by hand so that torch and transformers stay importable. Scripts should still assert that
    ``import protconv`` fails, or a passing test could prove nothing. Standard input is closed, so that a prompt
    (transformers asks before running remote code it was not told to trust) fails at once instead of waiting.
    """
    prelude = f"import sys; sys.path.extend({site.getsitepackages()!r})\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cwd / "modules"), "PYTHONPATH": ""}
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + textwrap.dedent(script)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def flat_outputs(output) -> dict:
    """The tensors of a model output by name, ``None`` fields left out and tuples (``hidden_states``) spread as
    ``name.index``: one flat dict to compare two outputs field by field or to store in a safetensors file.

    Self-contained (no annotation needing an import): ``assert_loads_without_protconv`` runs its source in the child.
    """
    flat = {}
    for name, value in output.items():
        if isinstance(value, tuple):
            flat.update({f"{name}.{index}": item for index, item in enumerate(value)})
        elif value is not None:
            flat[name] = value
    return flat


#: Run by ``assert_loads_without_protconv`` in an interpreter without protconv (``str.format`` fills the fields).
_REMOTE_CHECK = """
import json

try:
    import protconv
except ImportError:
    pass
else:
    raise SystemExit("protconv is importable: the test would prove nothing")
import torch
import transformers
from safetensors.torch import load_file

folder, sequences = {folder!r}, {sequences!r}
saved = json.loads(open(folder + "/config.json", encoding="utf-8").read())
auto_map = saved["auto_map"]


def check_shipped(obj, qualified_name):
    assert type(obj).__module__.startswith("transformers_modules."), type(obj).__module__
    assert type(obj).__name__ == qualified_name.rsplit(".", 1)[1], (type(obj).__name__, qualified_name)


{flat_outputs}

config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
check_shipped(config, auto_map["AutoConfig"])
assert json.loads(config.to_json_string()) == saved, "the shipped config class does not reproduce config.json"

cases = {{}}
for key, tensor in load_file({cases_file!r}).items():
    auto, part, name = key.split("/", 2)
    cases.setdefault(auto, {{"inputs": {{}}, "expected": {{}}, "initialised": {{}}}})[part][name] = tensor
assert set(cases) == set(auto_map) - {{"AutoConfig"}}, sorted(cases)
if sequences is not None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    batch = tokenizer(sequences, padding=True, return_tensors="pt")

for auto, case in sorted(cases.items()):
    model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
    check_shipped(model, auto_map[auto])
    # Weights the checkpoint lacks (another task's head) were initialised at random: take the in-process ones.
    unexpected = model.load_state_dict(case["initialised"], strict=False).unexpected_keys
    assert not unexpected, (auto, unexpected)
    if sequences is not None:
        for name in ("input_ids", "attention_mask"):
            assert torch.equal(batch[name], case["inputs"][name]), ("tokenizer", auto, name)
    with torch.no_grad():
        got = flat_outputs(model(**case["inputs"], output_hidden_states=True))
    assert set(got) == set(case["expected"]), (auto, sorted(got), sorted(case["expected"]))
    for name, tensor in got.items():
        expected = case["expected"][name]
        assert torch.equal(tensor, expected), (auto, name, float((tensor - expected).abs().max()))
print("REMOTE-OK")
"""


def assert_loads_without_protconv(
    folder: Path, inputs: Mapping[str, Mapping[str, torch.Tensor]], workdir: Path, sequences: list[str] | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Check that the saved ``folder`` loads through every Auto class of its ``auto_map`` where protconv is absent
    and computes exactly what protconv computes.

    ``inputs`` maps every model Auto class of the ``auto_map`` (all of them: a missing one fails) to the keyword
    tensors of one forward pass. Each Auto class loads the folder here, into protconv's class of its ``auto_map``
    entry, and then in a fresh interpreter that cannot import protconv (``python_without_protconv``), with
    ``trust_remote_code=True``. There the config must be the shipped class and reproduce config.json, each model
    must be the shipped class its ``auto_map`` entry names, and every output (``flat_outputs``,
    ``output_hidden_states=True``) must equal the in-process one bit for bit. Weights the checkpoint lacks (another
    task's head) are random at load time, so the in-process ones are sent along. With ``sequences``, the folder's
    tokenizer must also turn them into the given ``input_ids`` and ``attention_mask``. Tensors travel in a
    safetensors file (no pickle) in ``workdir``, which also holds the child's modules cache.

    Returns the in-process outputs by Auto class, for the caller to compare with the model it saved.
    """
    auto_map = json.loads((folder / "config.json").read_text(encoding="utf-8"))["auto_map"]
    assert set(inputs) == set(auto_map) - {"AutoConfig"}, f"inputs for {sorted(inputs)}, auto_map {auto_map}"
    tensors, outputs = {}, {}
    for auto, kwargs in inputs.items():
        model, info = getattr(transformers, auto).from_pretrained(folder, output_loading_info=True)
        model.eval()
        assert type(model).__module__.startswith("protconv."), type(model).__module__
        assert type(model).__name__ == auto_map[auto].rsplit(".", 1)[1], (type(model).__name__, auto_map[auto])
        with torch.no_grad():
            outputs[auto] = flat_outputs(model(**kwargs, output_hidden_states=True))
        state = model.state_dict()
        initialised = {name: state[name] for name in info["missing_keys"]}
        for part, named in (("inputs", kwargs), ("expected", outputs[auto]), ("initialised", initialised)):
            for name, tensor in named.items():
                tensors[f"{auto}/{part}/{name}"] = tensor.detach().contiguous().clone()
    cases_file = workdir / "remote_cases.safetensors"
    save_file(tensors, cases_file)
    script = _REMOTE_CHECK.format(
        folder=str(folder),
        sequences=sequences,
        cases_file=str(cases_file),
        flat_outputs=inspect.getsource(flat_outputs),
    )
    result = python_without_protconv(script, workdir)
    assert result.returncode == 0 and "REMOTE-OK" in result.stdout, result.stdout[-2000:] + result.stderr[-4000:]
    return outputs
