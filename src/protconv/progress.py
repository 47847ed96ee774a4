"""The one progress bar of protconv's commands (embed, score, predict, baselines).

Bars go to stderr so that stdout stays machine-readable; callers decide whether to draw one (``--progress``,
and the baselines only on a terminal, since their log files should not fill with bar lines).
"""

from __future__ import annotations

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "it") -> tqdm:
    """A bar of ``total`` steps that draws nothing unless ``enabled``."""
    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)
