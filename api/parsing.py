"""Where the API parses uploads (issue 21): ``RAG_PARSE_WORKERS`` worker processes (default 2,
``rag.ingest.isolated``), shared by the upload routes and the background jobs (api/jobs.py), started at their
first use. Off the event loop and out of the server process: a heavy file (OCR, a long DOCX) takes the CPU at a
lower priority than searches and never holds the server's GIL. At most that many files are parsed at once;
more wait their turn. Each has its time budget (``RAG_PARSE_TIMEOUT`` for an upload answered within the
request, ``RAG_JOB_PARSE_TIMEOUT`` for a job's file) and the memory cap of its process
(``RAG_PARSE_MEMORY_MB``); a parse past either is a 422 naming the file. Embedding stays in the server.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rag.core.types import Document
from rag.ingest.isolated import ParsePool
from rag.ingest.loaders import parse_timeout

_raw = os.environ.get("RAG_PARSE_WORKERS", "2").strip()
PARSE_WORKERS = max(1, int(_raw)) if _raw.isdigit() else 2
_pool: ParsePool | None = None
_threads: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def pool() -> ParsePool:
    """The process-wide pool of parse processes."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ParsePool(PARSE_WORKERS)
        return _pool


def _waiters() -> ThreadPoolExecutor:
    # one thread per parse process waits for its answer: waiting uploads queue here, not in the server's pool
    global _threads
    with _lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="rag-parse")
        return _threads


async def parse_upload(data: bytes, name: str, doc_id: str | None, meta: dict[str, Any]) -> Document:
    """``load_bytes`` in a parse process, under RAG_PARSE_TIMEOUT; its typed errors (422) raised here."""
    fut = _waiters().submit(pool().parse, data, name, doc_id, meta, parse_timeout())
    return await asyncio.wrap_future(fut)
