"""Write beside, then rename in: the staging siblings of every folder protconv writes whole (exports, FASTA indexes,
decompressed caches), the removal of those that dead writers left, and the two checks every checkpoint writer
shares (a file's content digest, an fsync that makes a rename durable).

A staging folder is a hidden sibling ``.<name>.<kind><host>.<pid>.<random>`` of its target, so a later run can tell
whether its writer still runs (same host: ask the kernel about the pid; another host: wait a day) and remove it
only then; one rule, so no kind of leftover outlives its writer.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

#: Leftovers whose writer cannot be checked (another host, or an older protconv that put no pid in the name)
#: are removed once untouched for this long: no export takes a day.
STALE_AFTER_SECONDS = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def make_staging_sibling(folder: Path, kind: str) -> Path:
    """A new hidden sibling ``.<name>.<kind><host>.<pid>.<random>``, created by ``mkdir`` so the umask applies
    (``tempfile.mkdtemp`` would make it, and so the renamed model folder, 0o700)."""
    while True:
        path = folder.parent / f".{folder.name}.{kind}{_host()}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def remove_stale_staging(folder: str | Path) -> list[Path]:
    """Remove the staging and backup siblings of ``folder`` that no running writer owns; returns them.

    A sibling is stale if it names this host and a process that no longer runs, or if it names another host
    and has not been modified for ``STALE_AFTER_SECONDS``. Siblings of older protconv versions
    (``tempfile.mkdtemp`` names, no pid) are removed after that time too, when their content is an export's.
    If a writer died between moving the old folder aside and moving the new one in, ``folder`` is missing and
    the backup holds the previous complete folder: it is put back rather than deleted.
    """
    folder = Path(folder)
    name = re.escape(folder.name)
    current = re.compile(rf"\.{name}\.(?P<old>old\.)?(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{{8}}")
    legacy = re.compile(rf"\.{name}\.(?P<old>old\.)?[a-z0-9_]{{8}}")
    removed = []
    for path in sorted(folder.parent.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        if match := current.fullmatch(path.name):
            if match["host"] == _host():
                stale = not _pid_alive(int(match["pid"]))
            else:
                stale = _untouched_for(path, STALE_AFTER_SECONDS)
        elif match := legacy.fullmatch(path.name):
            # mkdtemp's 8 random characters nearly always hold a digit or '_'; a user's ".model.snapshot" does not
            stale = (
                re.search(r"[0-9_]", path.name[-8:]) is not None
                and _untouched_for(path, STALE_AFTER_SECONDS)
                and _holds_only_an_export(path, folder.name)
            )
        else:
            continue
        if not stale:
            continue
        if match["old"] and (path / folder.name).is_dir() and not folder.exists():
            os.replace(path / folder.name, folder)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


#: What ``tempfile.mkdtemp``/``mkstemp`` left under older protconv versions: FASTA index and dataset-cache folders
#: (``.partial-<name>-<8 random>``) and MSA profile cache files (``.partial-<8 random>.npz``).
_LEGACY_PARTIAL = re.compile(r"\.partial-[\w.-]*[a-z0-9_]{8}(\.npz)?")


def remove_legacy_partials(parent: str | Path) -> list[Path]:
    """Remove the ``.partial-*`` files and folders of older protconv versions in ``parent``; returns them.

    Their names hold no pid, so their writer cannot be asked about: like the export's legacy siblings they are
    stale only once nothing in them has been modified for ``STALE_AFTER_SECONDS`` (a writer that still runs keeps
    touching the file it writes, and no cache build takes a day), so a concurrent writer's partial is never taken.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    removed = []
    for path in sorted(parent.iterdir()):
        if path.is_symlink() or not _LEGACY_PARTIAL.fullmatch(path.name):
            continue
        if not all(_untouched_for(entry, STALE_AFTER_SECONDS) for entry in _self_and_inside(path)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _self_and_inside(path: Path) -> list[Path]:
    return [path, *path.rglob("*")] if path.is_dir() else [path]


def _untouched_for(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:  # removed meanwhile by its owner
        return False


def _holds_only_an_export(path: Path, name: str) -> bool:
    """Files ``save_pretrained`` writes (config, weights, tokenizer, card, code), or the moved-aside folder."""
    export_files = re.compile(r"[\w.-]+\.(json|safetensors|md|py|txt|model|jinja)")
    return all(entry.name == name or export_files.fullmatch(entry.name) for entry in path.iterdir())


def content_digest(path: Path) -> str:
    """SHA-256 of the whole file (about 1.2 s per GB from the page cache here): what checkpoint manifests and FASTA
    indexes record, so that a file altered with its size kept is still caught."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk, so that a power loss cannot undo a completed write
    or rename."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
