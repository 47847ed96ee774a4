"""Logging for protconv's commands and runs: one call, ``configure_logging``, sets up the console and a run's log file.

A run tells its story through the ``protconv`` logger hierarchy (``logging.getLogger(__name__)`` in every module).
This module decides where those records go:

- the console (stderr), at ``level`` (INFO by default, so that "indexed ...", "cached the profile of ..." and
  similar lines are visible), written through ``tqdm.write`` so that a progress bar is not torn by a log line;
- a log file (optional, typically ``OUTPUT_DIR/protconv.log``), appended to, one line per record with timestamp,
  level and logger name, so that a resumed run continues the same file.

Under ``accelerate launch`` every process runs the same code: only the main process shows INFO, the others WARNING
and above (prefixed with their rank), or N processes would print every line N times.

transformers' verbosity follows ``level`` but never goes below WARNING unless ``level`` is ``debug``: its INFO
records describe its own internals ("loading configuration file ...", "Model weights saved in ...") on every
``from_pretrained``/``save_pretrained``, which would drown a run's own lines.

Calling ``configure_logging`` again replaces what the previous call set up (no duplicated handlers), so a command can
set up the console first and add the run's log file once the output folder is known.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from accelerate import PartialState

#: The names ``--log_level`` accepts (in any case), lowest first.
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)

#: Loggers whose records protconv routes: its own hierarchy and transformers' (which does not propagate to root).
_ROUTED = ("protconv", "transformers")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The console shows the time of day; the file the full date (a run may last days, and resume later).
_CONSOLE_DATE = "%H:%M:%S"

#: Marks the handlers this module installed, so that the next call can remove exactly those.
_MARK = "_protconv_run_logging"


def configure_logging(level: str = "info", log_file: Path | None = None, *, main_process: bool | None = None) -> None:
    """Route protconv's (and transformers') log records to stderr and, if given, ``log_file``.

    ``main_process``: whether this process is the one that logs INFO (default: rank 0 of an ``accelerate`` /
    ``torchrun`` launch, read from accelerate's state if it exists, else the ``RANK`` environment variable).
    """
    console_level = _parse_level(level)
    main = _is_main_process() if main_process is None else main_process
    rank = _rank()
    if not main:
        console_level = max(console_level, logging.WARNING)
    root = logging.getLogger("protconv")
    _remove_own_handlers()
    root.setLevel(console_level)
    handlers: list[logging.Handler] = [_console_handler(console_level, rank if not main else None)]
    if log_file is not None:
        handlers.append(_file_handler(Path(log_file), console_level, rank if not main else None))
    for handler in handlers:
        root.addHandler(handler)
    _configure_transformers(console_level, handlers[1:])


def _parse_level(level: str) -> int:
    name = str(level).strip().lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; choose from {', '.join(LOG_LEVELS)}")
    return logging.getLevelNamesMapping()[name.upper()]


def _rank() -> int:
    """Global rank of this process (0 outside a distributed launch)."""
    state = _accelerate_state()
    if state is not None:
        return state.process_index
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _is_main_process() -> bool:
    return _rank() == 0


def _accelerate_state() -> PartialState | None:
    """accelerate's process state if something has already created it (never creates it: that may initialise the
    process group, which is the launcher's and the Accelerator's business)."""
    module = sys.modules.get("accelerate.state")
    if module is None:
        return None
    state_class = getattr(module, "PartialState", None)
    if state_class is None or not getattr(state_class, "_shared_state", None):
        return None
    return state_class()


class _TqdmConsoleHandler(logging.Handler):
    """Writes through ``tqdm.write`` (so that an active progress bar is redrawn below the line, not torn) to the
    current ``sys.stderr``, looked up at every record rather than bound once (tests and notebooks swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never break the run: report it the way logging does
            self.handleError(record)


def _console_handler(level: int, rank: int | None) -> logging.Handler:
    handler = _TqdmConsoleHandler(level)
    handler.setFormatter(logging.Formatter(_with_rank(_FORMAT, rank), datefmt=_CONSOLE_DATE))
    setattr(handler, _MARK, True)
    return handler


def _file_handler(path: Path, level: int, rank: int | None) -> logging.Handler:
    # delay: the file (and its folder) appear with the first record, so a run that fails before saying anything
    # leaves no trace (pretraining removes an output folder it created and never wrote to).
    handler = _AppendingFileHandler(path)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_with_rank(_FORMAT, rank)))
    setattr(handler, _MARK, True)
    return handler


class _AppendingFileHandler(logging.FileHandler):
    """Appends, creating the file's folder when the first record comes (``delay``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self) -> io.TextIOWrapper:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _with_rank(fmt: str, rank: int | None) -> str:
    return fmt if rank is None else f"[rank {rank}] {fmt}"


def _configure_transformers(level: int, extra_handlers: list[logging.Handler]) -> None:
    """transformers keeps its own stderr handler on its library logger; set its verbosity and give it the log file
    too, so that its warnings (a mismatched checkpoint, a deprecated option) are in the run's record."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(level if level <= logging.DEBUG else max(level, logging.WARNING))
    library = logging.getLogger(_ROUTED[1])
    for handler in extra_handlers:
        library.addHandler(handler)


def _remove_own_handlers() -> None:
    for name in _ROUTED:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(handler)
            handler.close()
