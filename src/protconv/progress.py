"""The one progress bar of protconv's commands (embed, score, predict, baselines).

Bars go to stderr so that stdout stays machine-readable; callers decide whether to draw one (``--progress``,
and the baselines only on a terminal, since their log files should not fill with bar lines).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "it") -> tqdm:
    """A bar of ``total`` steps that draws nothing unless ``enabled``."""
    return tqdm(total=total, unit=unit, desc=desc, disable=not enabled, dynamic_ncols=True, smoothing=0.1)


class TokenRate:
    """A bar of records that also shows the tokens per second since it started: embed and predict run batches
    of very different lengths, so records per second alone says little about the speed."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.tokens = 0
        self.started = time.perf_counter()

    def update(self, records: int, tokens: int) -> None:
        self.tokens += tokens
        self.bar.update(records)
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)


@contextmanager
def token_rate_bar(total: int, desc: str, enabled: bool) -> Iterator[TokenRate]:
    """A ``TokenRate`` over a bar of ``total`` records, closed when the block ends (also on an error)."""
    bar = progress_bar(total, desc, enabled, unit="rec")
    try:
        yield TokenRate(bar)
    finally:
        bar.close()
