"""One run per output folder: an advisory lock held for the whole run.

Two runs writing one folder would interleave checkpoints and metrics and leave one run's model under the other's
card. The lock is ``fcntl.flock`` on ``OUTPUT/.protconv.lock``: the kernel releases it when the process exits, however
it exits (a SIGKILL included), so a crashed run never blocks the next one. It is advisory and per host: folders on a
network file system shared by several hosts are protected only where the file system implements ``flock``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".protconv.lock"


class OutputDirInUseError(FileExistsError):
    """Another live run holds the output folder."""


class OutputDirLock:
    """Exclusive, non-blocking lock of ``folder`` (created if missing), taken by the main process of a run."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "unknown process"
            os.close(descriptor)
            raise OutputDirInUseError(
                f"{self.path.parent} is in use by another run ({holder}); wait for it to finish or choose another "
                "--output_dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}, since {time.ctime()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None
