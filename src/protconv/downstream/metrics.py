"""Moved to :mod:`protconv.metrics` (shared with inference); this re-export stays for one release."""

from ..metrics import *  # noqa: F403
