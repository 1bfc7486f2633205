"""Small file primitives shared by the model caches and the ingest checkpoint."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def file_sha1(path: Path) -> str:
    """sha1 hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha1()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half of it:
    a temporary file in the same folder (created if missing), fsync, ``os.replace``, then a
    best-effort fsync of the folder so the rename is durable too. The temporary file is
    removed if anything fails. The file gets the replaced file's permissions, or for a new
    file what ``open`` would give under the process umask (``mkstemp`` alone makes it 0600,
    unreadable to a service running as another user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
