"""One writer per index folder, across processes: an exclusive ``fcntl.flock`` on ``<index_dir>/.lock``.

Every read-modify-write of the index (the API's uploads and deletes through ``update.apply_changes``, `rag
ingest` and ``build.build_index``) runs under it, so a writer always builds its new version from the latest
current version, read after the lock was taken: two writers can no longer both start from the same snapshot
and the second switch silently drop the first one's documents. Readers never take it.

The lock is re-entrant within a thread (the CLI holds it around its decision to build or update, and the
function it calls takes it again); another thread or process waits, up to ``RAG_INDEX_LOCK_TIMEOUT`` seconds
(default 600), then gets an ``IndexBusyError`` naming the holder. The kernel drops the lock when its holder
dies, even on ``kill -9``: a stale lock file is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rag.core.errors import IndexBusyError

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
LOCK_TIMEOUT_ENV = "RAG_INDEX_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = 600.0
_held = threading.local()  # path -> (fd, depth) for this thread


def lock_timeout() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        info = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if info:
            return info
    return "another process"


@contextlib.contextmanager
def index_lock(index_dir: Path, timeout: float | None = None, purpose: str = "write") -> Iterator[None]:
    """Hold the index folder's write lock (created with the folder if needed) for the block."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    key = str(index_dir.resolve())
    held: dict[str, tuple[int, int]] = _held.__dict__.setdefault("locks", {})
    if key in held:  # re-entrant in this thread
        fd, depth = held[key]
        held[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = held[key]
            held[key] = (fd, depth - 1)
        return
    wait = lock_timeout() if timeout is None else timeout
    fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        t0 = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - t0
                if waited >= wait:
                    raise IndexBusyError(
                        f"the index at {index_dir.name} is being written by {_holder(fd)} "
                        f"(waited {waited:.0f} s, {LOCK_TIMEOUT_ENV}={wait:g}): retry when it has finished"
                    ) from None
                if not told and waited > 1:
                    logger.info("waiting for the index write lock held by %s", _holder(fd))
                    told = True
                time.sleep(0.05)
        with contextlib.suppress(OSError):  # who holds it, for the messages of those who wait
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({purpose})".encode(), 0)
        held[key] = (fd, 1)
        try:
            yield
        finally:
            del held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
