"""``load_bytes`` in worker processes (issue 21): the API parses uploads here, not in its own threads.

Why a process: a parse (PDF rendering, RapidOCR, python-docx) in a thread of the API process shares the
server's GIL and CPU share with its searches. A child process runs at a lower priority (``RAG_PARSE_NICE``,
default +10) with ONNX Runtime and BLAS on one thread, so the kernel gives searches the CPU first. A child
also bounds what a thread could not:

* time: the loaders check the file's budget in their loops (``base.check_deadline``); a parse still running
  ``grace`` seconds past it is ended by killing its child (a thread could only be abandoned, still running);
* memory: the child's address space is capped (``RAG_PARSE_MEMORY_MB``, ``RLIMIT_AS``): a parse that needs more
  gets a ``MemoryError`` (422 "too large to read in memory") or its child dies (422 naming the signal); the
  server's memory is not touched.

A :class:`ParsePool` keeps ``size`` children, each started at its first use and kept for the next file (the
OCR models stay loaded); one that died or was killed is replaced at the next use. The child gets the parent's
``RAG_*`` settings with every file. Messages are JSON and raw bytes over a socket pair, never pickle: the
child reads hostile files, the parent trusts nothing it sends back but a document's fields or a typed error.
A child ends within a second of its parent (it watches its parent's pid), so a ``kill -9`` of the server leaves
no parser behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from rag.core import errors
from rag.core.errors import ParseTimeoutError, RagError, UnreadableFileError
from rag.core.types import Document

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``rag`` package
NICE_ENV, MEMORY_ENV = "RAG_PARSE_NICE", "RAG_PARSE_MEMORY_MB"
DEFAULT_NICE = 10
DEFAULT_MEMORY_MB = 4096  # address space, not resident memory: ONNX Runtime and numpy reserve much they never touch
PARSE_GRACE = 5.0  # seconds past a file's budget before its child is killed
OUT_OF_MEMORY = 3  # a child's exit status when a file did not fit in its address space
POLL = 0.25  # seconds between checks of the deadline and of ``stop`` while a child parses
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAG_OCR_THREADS": "1",
              "MALLOC_ARENA_MAX": "2"}


class ParseCancelled(Exception):  # noqa: N818 - not an error: the caller asked to stop
    """``stop()`` said to give up: the child was killed and nothing was parsed."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        logger.warning("%s=%r is not an integer: using %d", name, raw, default)
        return default


def _signal_name(code: int) -> str:
    if code == OUT_OF_MEMORY:
        return "out of memory"
    with contextlib.suppress(ValueError):
        return signal.Signals(-code).name if code < 0 else f"exit status {code}"
    return f"exit status {code}"


class _Child:
    """One worker process and the parent's end of its socket."""

    def __init__(self, nice: int, memory_mb: int) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, **{k: v for k, v in ONE_THREAD.items() if k not in os.environ}}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.memory_mb = memory_mb
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.ingest.isolated", str(theirs.fileno()), str(nice), str(memory_mb)],
            pass_fds=(theirs.fileno(),), cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.conn.close()

    def died(self, name: str) -> UnreadableFileError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        code = self.proc.returncode if self.proc.returncode is not None else 0
        self.kill()
        return UnreadableFileError(
            f"{name}: the parser stopped before finishing ({_signal_name(code)}): the file needs more than the "
            f"{self.memory_mb} MB a parse may use ({MEMORY_ENV}) or is malformed; send a smaller or simpler copy")

    def run(self, data: bytes, name: str, doc_id: str | None, meta: dict[str, Any], timeout: float,
            progress: Callable[[int, int], None] | None, stop: Callable[[], bool] | None) -> Document:
        env = {k: v for k, v in os.environ.items() if k.startswith("RAG_")}
        head = {"name": name, "doc_id": doc_id, "meta": meta, "timeout": timeout, "env": env}
        try:
            self.conn.send_bytes(json.dumps(head, ensure_ascii=False).encode())
            self.conn.send_bytes(data)
        except OSError:
            raise self.died(name) from None
        limit = time.monotonic() + timeout + PARSE_GRACE if timeout > 0 else None
        while True:
            if stop is not None and stop():
                self.kill()
                raise ParseCancelled(name)
            if limit is not None and time.monotonic() > limit:
                self.kill()
                raise ParseTimeoutError(f"{name}: reading it took longer than {timeout:g} s; split the file or "
                                        "send a simpler copy")
            try:
                if not self.conn.poll(POLL):
                    continue
                msg = json.loads(self.conn.recv_bytes().decode("utf-8", "surrogatepass"))
            except (EOFError, OSError, ValueError):
                raise self.died(name) from None
            if "progress" in msg:
                if progress is not None:
                    progress(int(msg["progress"][0]), int(msg["progress"][1]))
                continue
            if "error" in msg:
                raise _error(str(msg["error"][0]), str(msg["error"][1]))
            d = msg["doc"]
            return Document(str(d["doc_id"]), str(d["text"]), title=str(d["title"]), source=str(d["source"]),
                            meta=dict(d["meta"]))


def _error(kind: str, message: str) -> RagError:
    """The typed error the child named (a ``RagError`` of ``rag.core.errors`` only), else an unreadable file."""
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, RagError):
        return cls(message)
    return UnreadableFileError(message)


class ParsePool:
    """``size`` worker processes; :meth:`parse` takes a free one (waiting for one if all are busy)."""

    def __init__(self, size: int, nice: int | None = None, memory_mb: int | None = None) -> None:
        self.size = max(1, size)
        self.nice = _env_int(NICE_ENV, DEFAULT_NICE) if nice is None else nice
        self.memory_mb = _env_int(MEMORY_ENV, DEFAULT_MEMORY_MB) if memory_mb is None else memory_mb
        self._free: queue.Queue[_Child | None] = queue.Queue()
        for _ in range(self.size):
            self._free.put(None)  # a child is started at its first use
        self._all: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    def parse(self, data: bytes, name: str, doc_id: str | None = None, meta: dict[str, Any] | None = None,
              timeout: float = 120.0, progress: Callable[[int, int], None] | None = None,
              stop: Callable[[], bool] | None = None) -> Document:
        """``load_bytes(data, name, doc_id, meta, timeout)`` in a child; its typed errors re-raised here.
        ``progress(done, total)`` hears the OCR pages; ``stop()`` true -> the child is killed, ParseCancelled."""
        child = self._free.get()
        try:
            if child is None or not child.alive():
                if child is not None:
                    child.kill()
                    self._forget(child)
                child = self._start()
            return child.run(data, name, doc_id, dict(meta or {}), timeout, progress, stop)
        finally:
            if child is not None and not child.alive():
                self._forget(child)
                child = None
            self._free.put(child)

    def _start(self) -> _Child:
        with self._lock:
            if self._closed:
                raise UnreadableFileError("the server is shutting down: upload the file again")
            child = _Child(self.nice, self.memory_mb)
            self._all.add(child)
            return child

    def _forget(self, child: _Child) -> None:
        with self._lock:
            self._all.discard(child)

    def pids(self) -> list[int]:
        with self._lock:
            return [c.proc.pid for c in self._all if c.alive()]

    def close(self) -> None:
        """Kill every child (one parsing right now too: its caller gets an error)."""
        with self._lock:
            self._closed = True
            children, self._all = list(self._all), set()
        for c in children:
            c.kill()


# -- the child -------------------------------------------------------------------------------------------------


def _limit_self(nice: int, memory_mb: int) -> None:
    parent = os.getppid()

    def watch() -> None:  # a parent killed with -9 closes no socket we are not reading: end with it
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if nice > 0:
        os.nice(nice)
    if memory_mb > 0:
        import resource

        cap = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _apply_env(env: dict[str, str]) -> None:
    for k in [k for k in os.environ if k.startswith("RAG_") and k not in env and k not in ONE_THREAD]:
        del os.environ[k]
    os.environ.update(env)


def _serve(conn: Connection) -> None:
    from rag.ingest.loaders import load_bytes
    from rag.ingest.loaders.base import progress_to

    def report(done: int, total: int) -> None:
        conn.send_bytes(json.dumps({"progress": [done, total]}).encode())

    while True:
        try:
            head = json.loads(conn.recv_bytes())
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent closed its end
        except MemoryError:  # the file alone is past the cap; the rest of it is still unread: end here
            os._exit(OUT_OF_MEMORY)
        name = str(head["name"])
        _apply_env(head["env"])
        out: dict[str, Any]
        try:
            with progress_to(report):
                doc = load_bytes(data, name, head["doc_id"], head["meta"], timeout=float(head["timeout"]))
            out = {"doc": {"doc_id": doc.doc_id, "text": doc.text, "title": doc.title, "source": doc.source,
                           "meta": doc.meta}}
            del doc
        except RagError as e:
            out = {"error": [type(e).__name__, e.message]}
        except MemoryError:
            out = {"error": ["UnreadableFileError", f"{name}: too large to read in memory"]}
        except Exception as e:  # noqa: BLE001 - load_bytes maps parser errors; anything else still names the file
            out = {"error": ["UnreadableFileError", f"{name}: unreadable file ({type(e).__name__})"]}
        del data
        try:
            body = json.dumps(out, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        except MemoryError:
            body = json.dumps({"error": ["UnreadableFileError", f"{name}: too large to read in memory"]}).encode()
        conn.send_bytes(body)


def main(argv: list[str]) -> None:
    fd, nice, memory_mb = (int(a) for a in argv[:3])
    _limit_self(nice, memory_mb)
    logging.basicConfig(level=logging.WARNING)
    _serve(Connection(fd))


if __name__ == "__main__":
    main(sys.argv[1:])
