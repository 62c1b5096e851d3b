"""One writer per run folder: an OS advisory lock (``flock``) taken before anything is written.

:func:`hold_run_folder` locks ``<folder>/.lock`` (search and training runs);
:func:`hold_output_file` locks ``.<name>.lock`` beside one output file (a latency table, an
exported model). The lock is held until the block ends and is released by the kernel whenever
the process ends, a crash or SIGKILL included, so it is never stale. The lock file records the
holder's PID, host and start time, which a refused writer names; it is removed on release. A
process may take a lock it already holds (nested calls); the outermost block releases it.

Once the lock is held, the temporary files of atomic writes that a killed writer left behind
(``.NAME.tmp``, ``.NAME.XXXXXXXX`` with an optional ``.tmp`` / ``.onnx`` / ``.pt``, as written by
``tempfile.mkstemp(prefix=".NAME.")``) are removed: no other process can be writing them.

``flock`` works on local filesystems and on NFS (Linux clients map it to NFS byte-range locks);
a filesystem without locks is refused with one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from proxylessnas.errors import ProxylessError

LOCK_NAME = ".lock"
TEMP_FILE = re.compile(r"^\.(?P<target>.+)\.(?:tmp|[a-z0-9_]{8}(?:\.tmp|\.onnx|\.pt)?)$")
HOLDER_WAIT_SECONDS = 1.0  # a holder writes its PID right after locking: how long a reader waits for it
ATTEMPTS = 5  # a lock file replaced between open and flock (its holder let go): try the new one


@dataclass
class _Held:
    fd: int
    depth: int


_HELD: dict[tuple[int, str], _Held] = {}  # (pid, lock file) -> open lock of this process
_GUARD = threading.Lock()


@contextlib.contextmanager
def hold_run_folder(folder: str | os.PathLike, what: str = "run folder",
                    subfolders: Iterable[str] = ()) -> Iterator[Path]:
    """Lock ``folder`` (created if missing) for the block, then remove stale temporary files in
    it and in its ``subfolders``. Another process holding it raises a :class:`ProxylessError`
    naming its PID and host. A folder this call created is removed again if it ends empty."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ProxylessError(f"the {what} is a file, not a folder", str(folder),
                             "give a folder path (or remove the file)")
    created = _make_folder(folder, what)
    try:
        with _locked(folder / LOCK_NAME, what, folder) as first:
            if first:
                remove_stale_temp_files(folder, subfolders=subfolders)
            yield folder
    finally:
        _remove_if_empty(created)


@contextlib.contextmanager
def hold_output_file(path: str | os.PathLike, what: str = "output file") -> Iterator[Path]:
    """Lock the single file ``path`` (``.<name>.lock`` beside it) for the block, then remove
    stale temporary files of ``path``; see :func:`hold_run_folder`."""
    path = Path(path)
    if path.is_dir():
        raise ProxylessError(f"the {what} is a folder, not a file", str(path),
                             "give a file path inside the folder")
    created = _make_folder(path.parent, f"folder of the {what}")
    try:
        with _locked(path.parent / f".{path.name}.lock", what, path) as first:
            if first:
                remove_stale_temp_files(path.parent, targets=[path.name])
            yield path
    finally:
        _remove_if_empty(created)


RUN_FILES = ("checkpoint.pt", "last.pt", "best.pt", "metrics.jsonl", "arch.json", "run.json", "summary.json")


def refuse_earlier_run(folder: Path, what: str) -> None:
    """A fresh ``what`` must not write over the files of an earlier run of any kind (a search's
    or a training's): one line naming them."""
    found = [name for name in RUN_FILES if (Path(folder) / name).exists()]
    if found:
        raise ProxylessError(f"the folder already holds an earlier run ({', '.join(found)})", str(folder),
                             f"pass --resume to continue a {what} there, or choose another --out")


def remove_stale_temp_files(folder: Path, *, targets: Iterable[str] | None = None,
                            subfolders: Iterable[str] = ()) -> list[Path]:
    """Remove the temporary files of atomic writes in ``folder`` (and its ``subfolders``), only
    those of the file names ``targets`` when given; returns what was removed. Call it only with
    the lock held."""
    prefixes = None if targets is None else tuple(f".{name}." for name in targets)
    removed = []
    for where in [folder, *(folder / name for name in subfolders)]:
        if not where.is_dir():
            continue
        for entry in where.iterdir():
            if TEMP_FILE.match(entry.name) is None or entry.is_symlink() or not entry.is_file():
                continue
            if prefixes is not None and not entry.name.startswith(prefixes):
                continue
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# -- the lock ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(lock_path: Path, what: str, subject: Path) -> Iterator[bool]:
    """Hold the flock on ``lock_path``; yields whether this is the outermost hold of this process."""
    key = (os.getpid(), os.path.realpath(lock_path))
    with _GUARD:
        held = _HELD.get(key)
        first = held is None
        if held is None:
            _HELD[key] = _Held(_acquire(Path(key[1]), what, subject), 1)
        else:
            held.depth += 1
    try:
        yield first
    finally:
        with _GUARD:
            held = _HELD[key]
            held.depth -= 1
            if held.depth == 0:
                del _HELD[key]
                _release(Path(key[1]), held.fd)


def _acquire(lock_path: Path, what: str, subject: Path) -> int:
    """The descriptor of ``lock_path``, exclusively flocked, with this process's PID and host in it."""
    for _ in range(ATTEMPTS):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise ProxylessError(f"cannot create the lock file of the {what} ({err.strerror})",
                                 str(lock_path), "choose a place you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ProxylessError(f"the {what} is in use by {holder}", str(subject),
                                 "wait for that run to end (or stop it), then rerun; two writers would "
                                 "mix their files") from None
        except OSError as err:
            os.close(fd)
            raise ProxylessError(f"cannot lock the {what} ({err.strerror})", str(subject),
                                 "use a local disk or a filesystem with file locks") from None
        if _is_current(fd, lock_path):
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "command": " ".join(sys.argv)[:500]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            return fd
        os.close(fd)
    raise ProxylessError(f"cannot lock the {what}: its lock file keeps being replaced", str(lock_path),
                         "rerun; if this persists, something else is deleting files in that folder")


def _release(lock_path: Path, fd: int) -> None:
    """Remove the lock file (if it is still ours), then let go of the lock."""
    try:
        if _is_current(fd, lock_path):
            lock_path.unlink()
    finally:
        os.close(fd)


def _is_current(fd: int, lock_path: Path) -> bool:
    """Whether ``fd`` is the file at ``lock_path`` now (not one a releasing holder unlinked)."""
    try:
        on_disk = os.stat(lock_path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _holder(fd: int) -> str:
    """"PID n on host h (since t)" from the lock file, waiting briefly for a holder that has just
    locked it to write that line."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        try:
            record = json.loads(os.pread(fd, 4096, 0))
            return f"PID {int(record['pid'])} on host {record['host']} (since {record['started']})"
        except (ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "another process (it has not recorded its PID)"
        time.sleep(0.05)


# -- folders -------------------------------------------------------------------------------------

def _make_folder(folder: Path, what: str) -> list[Path]:
    """Create ``folder`` with its parents; returns the folders created, deepest first."""
    missing = []
    at = folder
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ProxylessError(f"cannot create the {what} ({err.strerror})", str(folder),
                             "choose a path you can write to") from None
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    """Remove the folders a hold created, deepest first, while they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return  # it holds files (this run's or another writer's), or is gone: keep the rest
