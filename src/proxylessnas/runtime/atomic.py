"""Atomic file writes: a file is either its old self or wholly the new one, never half written.

The content goes to a temporary file beside the target, ``.NAME.XXXXXXXX[suffix]`` (the pattern
:func:`~proxylessnas.runtime.runfolder_lock.remove_stale_temp_files` sweeps up after a killed
writer), which ``os.replace`` then puts under the real name (atomic within one filesystem). A
failure, in the writer or in a check of what it wrote, removes the temporary file and leaves the
target as it was.

Files get the permissions a plain ``open`` would give (0666 less the umask: run folders, arch
files and checkpoints are for the user's other tools too); ``shared=False`` keeps the private
0600 that ``tempfile.mkstemp`` gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

Content = bytes | str | Callable[[BinaryIO], object]


@contextlib.contextmanager
def atomic_replace(path: str | os.PathLike, *, suffix: str = "", shared: bool = True) -> Iterator[Path]:
    """A temporary file beside ``path`` (folders created) for the block to write, by name; it
    replaces ``path`` when the block ends, and is removed instead when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        if shared:
            os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, content: Content, *, suffix: str = "", fsync: bool = False,
                 shared: bool = True) -> Path:
    """Write ``content`` (bytes, text as UTF-8, or a function writing to the open binary file) to
    ``path`` atomically; ``fsync`` also forces it to the disk before the rename."""
    with atomic_replace(path, suffix=suffix, shared=shared) as temporary, temporary.open("wb") as handle:
        if callable(content):
            content(handle)
        else:
            handle.write(content.encode() if isinstance(content, str) else content)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as JSON (indent 2, a final newline), written atomically."""
    return atomic_write(path, json.dumps(data, indent=2) + "\n")


def _umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask
