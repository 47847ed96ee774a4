"""May this run write there? The checks every command runs before it opens an output for writing.

* :func:`check_outputs_are_not_inputs`: an output path that is also an input (the same path, ``./x`` and ``x``, a
  symbolic or a hard link) is refused before anything is opened: ``embed MODEL x.fasta x.fasta --overwrite`` must
  not replace the FASTA file with an empty HDF5 file.
* :class:`OutputFileLock`: a result file is locked for the whole run (``--overwrite`` included), so a second run
  writing the same file is refused naming the holder instead of renaming its file over the first run's work.

Both locks (this one and :class:`OutputDirLock`, an output folder's) are one implementation, :func:`lock_exclusive` /
:func:`unlock`: ``fcntl.flock`` on a lock file, which the kernel releases when the process exits however it exits
(a SIGKILL included), so a crashed run never blocks the next one. It does not depend on HDF5's own file locking
(``HDF5_USE_FILE_LOCKING=FALSE`` changes nothing). The lock is advisory and per host: files on a network file
system shared by several hosts are protected only where the file system implements ``flock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

_HOLDER_BYTES = 2000


class OutputIsInputError(ValueError):
    """An output path names one of the run's inputs (the same file, through a link or another spelling)."""


class LockHeldError(Exception):
    """The lock file is locked by another live process; ``holder`` is what that process wrote into it."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is locked by {holder}")
        self.path, self.holder = path, holder


class OutputFileInUseError(FileExistsError):
    """Another live run is writing the output file."""


def _input_files(path: Path) -> Iterable[Path]:
    """``path`` itself, and every file under it when it is a folder (a model folder's weights, config, ...)."""
    yield path
    if path.is_dir():
        yield from (item for item in path.rglob("*") if item.is_file())


def _same(output: Path, candidate: Path) -> bool:
    if output.resolve() == candidate.resolve():
        return True
    try:
        return output.exists() and candidate.exists() and os.path.samefile(output, candidate)
    except OSError:
        return False


def check_outputs_are_not_inputs(outputs: Iterable[str | Path | None], inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is one of ``inputs`` (or a file inside an input folder), by resolved path and by
    identity (``os.path.samefile``: symbolic and hard links); ``None`` entries are skipped. Call it before any
    output is opened: the message does not suggest ``--overwrite``, which would not help."""
    candidates = [Path(item) for item in inputs if item is not None]
    for output in (Path(item) for item in outputs if item is not None):
        for given in candidates:
            for candidate in _input_files(given):
                if _same(output, candidate):
                    shown = str(given) if candidate == given else f"{candidate}, inside {given}"
                    raise OutputIsInputError(
                        f"{output}: the output would overwrite the input file {shown} (the same file); choose "
                        "another output file"
                    )


def holder_line() -> str:
    """Who holds a lock: pid, host, start time and command line (written into the lock file)."""
    command = shlex.join(sys.argv) if sys.argv and sys.argv[0] else "python"
    return f"pid {os.getpid()} on {socket.gethostname()}, since {time.ctime()}, command: {command}"


def lock_exclusive(path: Path) -> int:
    """An exclusive, non-blocking ``flock`` on ``path`` (created if missing), holding :func:`holder_line`.

    Returns the open descriptor; raises :class:`LockHeldError` when another process holds it. Removing a lock file
    at release is safe because the lock is re-checked after locking: a process that locked a file that had just
    been removed from the path tries again with the new one.
    """
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, _HOLDER_BYTES).decode(errors="replace").strip() or "unknown process"
            os.close(descriptor)
            raise LockHeldError(path, holder) from None
        if _is_current(path, descriptor):
            break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{holder_line()}\n".encode())
    return descriptor


def _is_current(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def unlock(path: Path, descriptor: int, remove: bool = True) -> None:
    """Release a :func:`lock_exclusive` lock, removing the lock file first (while still holding it) if asked."""
    if remove:
        path.unlink(missing_ok=True)
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)


def lock_file_of(output: Path) -> Path:
    """The lock file of a result file: ``.<name>.protconv.lock`` next to it."""
    return output.with_name(f".{output.name}.protconv.lock")


class OutputFileLock:
    """The lock of one result file for a whole run, as a context manager; the lock file is removed at release.

    ``OutputFileLock(path)`` locks ``.<name>.protconv.lock`` next to ``path`` (whose folder must exist); a second
    run is refused with :class:`OutputFileInUseError` naming the holder (pid, host, command line).
    """

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.path = lock_file_of(self.output)
        self._descriptor: int | None = None

    def acquire(self) -> None:
        try:
            self._descriptor = lock_exclusive(self.path)
        except LockHeldError as held:
            raise OutputFileInUseError(
                f"{self.output}: is being written by another run ({held.holder}); wait for it to finish or choose "
                "another output file"
            ) from None

    def release(self) -> None:
        if self._descriptor is not None:
            unlock(self.path, self._descriptor)
            self._descriptor = None

    def __enter__(self) -> OutputFileLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


__all__ = [
    "LockHeldError",
    "OutputFileInUseError",
    "OutputFileLock",
    "OutputIsInputError",
    "check_outputs_are_not_inputs",
    "holder_line",
    "lock_exclusive",
    "lock_file_of",
    "unlock",
]


#: The lock file inside an output folder (pretraining, fine-tuning and evaluation runs).
LOCK_FILE = ".protconv.lock"


class OutputDirInUseError(FileExistsError):
    """Another live run holds the output folder."""


class OutputDirLock:
    """Exclusive, non-blocking lock of ``folder`` (created if missing), taken by the main process of a run.

    Two runs writing one folder would interleave checkpoints and metrics and leave one run's model under the other's
    card: pretraining, fine-tuning and evaluation hold it on ``--output_dir`` for the whole run.

    A run that fails before writing anything leaves no trace: ``release`` removes the lock file, and the folder
    if the lock created it and it is empty. Removing a lock file is safe because ``acquire`` checks, after locking,
    that the file it locked is still the one at the path (a waiter that locked a removed file tries again).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._descriptor: int | None = None
        self._created_folder = False

    def acquire(self) -> None:
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._descriptor = lock_exclusive(self.path)
        except LockHeldError as held:
            raise OutputDirInUseError(
                f"{self.folder} is in use by another run ({held.holder}); wait for it to finish or choose another "
                "--output_dir"
            ) from None

    def __enter__(self) -> OutputDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        if self._descriptor is None:
            return
        alone = not any(entry.name != LOCK_FILE for entry in os.scandir(self.folder))
        unlock(self.path, self._descriptor, remove=alone)  # still holding the lock: nobody can be using this file
        self._descriptor = None
        if alone and self._created_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()
