"""Durable file writes: a reader (or a power cut) sees the old file or the new one, never half.

Write to a temporary file in the same directory, fsync it, rename it over the target, then fsync
the directory: a rename survives a power cut only once its directory is on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None, keep_owner: bool = False) -> None:
    """Replace `path` with `data`. `mode`: the new file's permissions (default: the old file's, or
    0644 for a new one). `keep_owner`: give it the old file's owner and group (a new file: its
    directory's group), so a file another service reads after dropping root stays readable."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else (st.st_mode & 0o7777) if st is not None else 0o644)
        if keep_owner:
            uid = st.st_uid if st is not None else -1
            gid = st.st_gid if st is not None else path.parent.stat().st_gid
            try:
                os.chown(tmp, uid, gid)
            except PermissionError:  # not root: keep our own uid, and the group if we are in it
                with contextlib.suppress(PermissionError):
                    os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(directory: Path, name: str) -> Iterator[None]:
    """An exclusive lock on `directory/name` for the block: one writer at a time across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
