"""Helpers shared by test modules (plain functions, not fixtures, so they can take any arguments)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

#: Real-data slices (tests/data/SOURCES.md) and their MSA subfolder.
DATA = Path(__file__).parent / "data"
MSA = DATA / "msa"


def python_without_protconv(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter that cannot import protconv.

    ``-S`` skips site initialisation, so the editable install's path hook (.pth) never runs; site-packages is
    then appended by hand so that torch and transformers stay importable. Scripts should still assert that
    ``import protconv`` fails, or a passing test could prove nothing.
    """
    prelude = f"import sys; sys.path.extend({site.getsitepackages()!r})\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cwd / "modules"), "PYTHONPATH": ""}
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + textwrap.dedent(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
