"""One run per output folder: an advisory lock held for the whole run.

Two runs writing one folder would interleave checkpoints and metrics and leave one run's model under the other's
card. The lock is ``fcntl.flock`` on ``OUTPUT/.protconv.lock``: the kernel releases it when the process exits, however
it exits (a SIGKILL included), so a crashed run never blocks the next one. It is advisory and per host: folders on a
network file system shared by several hosts are protected only where the file system implements ``flock``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..file_guards import LockHeldError, lock_exclusive, unlock

LOCK_FILE = ".protconv.lock"


class OutputDirInUseError(FileExistsError):
    """Another live run holds the output folder."""


class OutputDirLock:
    """Exclusive, non-blocking lock of ``folder`` (created if missing), taken by the main process of a run.

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

    def release(self) -> None:
        if self._descriptor is None:
            return
        alone = not any(entry.name != LOCK_FILE for entry in os.scandir(self.folder))
        unlock(self.path, self._descriptor, remove=alone)  # still holding the lock: nobody can be using this file
        self._descriptor = None
        if alone and self._created_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()
