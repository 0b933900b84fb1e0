"""Upload jobs in SQLite (the default, no ``RAG_DATABASE_URL``; issue 21): one row per job in
``<jobs dir>/jobs.sqlite3`` and its uploaded bytes in ``<jobs dir>/spool/<id>/<n>`` until the job ends, so a
restart neither forgets a job nor loses the files it was given.

Every change is its own committed transaction (WAL, synchronous=FULL): what ``GET /v1/jobs/{id}`` reports is
what survives a ``kill -9``. One server process per jobs folder (like the index folder): ``recover``, run when
the server starts, takes every ``running`` job for one whose process died (``JobQueue.recover`` has the rules).

Schema::

    jobs(id TEXT PRIMARY KEY, created REAL, started REAL, finished REAL, owner TEXT, status TEXT,
         stage TEXT, attempts INTEGER, meta TEXT (JSON: collection, tags, date, doc_id),
         files TEXT (JSON list: file, spool, size, status, error, doc_id, pages_done, pages_total),
         docs TEXT (JSON: [[doc_id, sha256], ...] being indexed), result TEXT (JSON), message TEXT)
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from api.jobstore.base import ACTIVE, FINAL, KEEP_DAYS, JobQueue, decode, encode, file_records, not_found
from rag.core.errors import JobQueueFullError, JobStateError, NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, started REAL, finished REAL, owner TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL, stage TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}', files TEXT NOT NULL DEFAULT '[]', docs TEXT NOT NULL DEFAULT '[]',
    result TEXT, message TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""


class JobStore(JobQueue):
    kind = "sqlite"

    def __init__(self, folder: Path, attempts: int = 2, max_active: int = 20) -> None:
        super().__init__(attempts, max_active)
        self.folder = Path(folder)
        self.spool = self.folder / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "jobs.sqlite3", check_same_thread=False, isolation_level=None,
                                   timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a 202 names a job that survives a power cut
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # -- writes ------------------------------------------------------------------------------------------------
    def create(self, files: list[tuple[str, bytes]], failed: list[tuple[str, str]], meta: dict[str, Any],
               owner: str = "") -> str:
        if self._count(ACTIVE) >= self.max_active:
            raise JobQueueFullError(f"{self.max_active} upload jobs are queued or running (RAG_MAX_QUEUED_JOBS): "
                                    "retry when some have finished (GET /v1/jobs)")
        job_id = uuid.uuid4().hex
        folder = self.spool / job_id
        folder.mkdir()
        for n, (_, data) in enumerate(files):
            with open(folder / str(n), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        self._tx("INSERT INTO jobs(id, created, owner, status, meta, files) VALUES (?, ?, ?, 'queued', ?, ?)",
                 (job_id, time.time(), owner, json.dumps(meta, ensure_ascii=False),
                  json.dumps(file_records(files, failed), ensure_ascii=False)))
        return job_id

    def claim(self) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("UPDATE jobs SET status = 'running', stage = 'parsing', started = ?, "
                                   "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE status = "
                                   "'queued' ORDER BY created LIMIT 1) RETURNING *", (time.time(),)).fetchone()
        return decode(row) if row is not None else None

    def update(self, job_id: str, **fields: Any) -> None:
        cols, vals = encode(fields)
        self._tx(f"UPDATE jobs SET {', '.join(cols)} WHERE id = ?", (*vals, job_id))

    def finish(self, job_id: str, status: str, message: str = "", **fields: Any) -> None:
        self._settle(job_id, **fields, status=status, message=message, stage="")

    def start_indexing(self, job_id: str, docs: list[list[str]]) -> bool:
        row = self._tx("UPDATE jobs SET stage = 'indexing', docs = ? WHERE id = ? AND status = 'running' "
                       "RETURNING id", (json.dumps(docs, ensure_ascii=False), job_id)).fetchall()
        return bool(row)

    def cancel(self, job_id: str, owner: str = "") -> dict[str, Any]:
        with self._lock:  # read and change under one lock: a worker's claim cannot come in between
            was = self._db.execute("SELECT owner, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if was is None or (owner and was["owner"] != owner):
                raise NotFoundError(not_found(job_id))
            row = self._db.execute(
                "UPDATE jobs SET status = 'cancelled', stage = '', finished = ?, message = ? WHERE id = ? AND "
                "(status = 'queued' OR (status = 'running' AND stage != 'indexing')) RETURNING *",
                (time.time(), f"cancelled while {'queued' if was['status'] == 'queued' else 'parsing'}: nothing "
                 "of it was written to the index", job_id)).fetchall()
        if not row:
            now = self.get(job_id, owner)
            if now["status"] == "running":
                raise JobStateError(f"job {job_id} is writing its documents to the index (one atomic switch) and "
                                    "can no longer be cancelled: delete its documents once it is done")
            raise JobStateError(f"job {job_id} has already ended ({now['status']}): nothing to cancel")
        if was["status"] == "queued":  # a running one is left to its worker, which stops and drops the spool
            shutil.rmtree(self.spool / job_id, ignore_errors=True)
        return decode(row[0])

    # -- recovery (one process per jobs folder: every running job at start was left by a dead one) ----------
    def _stale(self) -> list[dict[str, Any]]:
        return [decode(r) for r in self._tx("SELECT * FROM jobs WHERE status = 'running'").fetchall()]

    def _settle(self, job_id: str, **fields: Any) -> bool:
        if fields.get("status") in FINAL:
            fields["finished"] = time.time()
        cols, vals = encode(fields)
        done = self._tx(f"UPDATE jobs SET {', '.join(cols)} WHERE id = ? AND status = 'running' RETURNING id",
                        (*vals, job_id)).fetchall()
        if fields.get("status") in FINAL:
            shutil.rmtree(self.spool / job_id, ignore_errors=True)
        return bool(done)

    def _purge(self) -> None:
        self._tx("DELETE FROM jobs WHERE status IN ('done', 'failed', 'cancelled') AND finished < ?",
                 (time.time() - KEEP_DAYS * 86400,))
        live = {r["id"] for r in self._tx("SELECT id FROM jobs WHERE status IN ('queued', 'running')")}
        for folder in self.spool.iterdir():  # spool of jobs that ended or were forgotten
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)

    # -- reads -------------------------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> dict[str, Any]:
        row = self._tx("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (owner and row["owner"] != owner):
            raise NotFoundError(not_found(job_id))
        return decode(row)

    def list(self, owner: str = "", limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT * FROM jobs" + (" WHERE owner = ?" if owner else "") + " ORDER BY created DESC LIMIT ?"
        return [decode(r) for r in self._tx(sql, (owner, limit) if owner else (limit,)).fetchall()]

    def status(self, job_id: str) -> str:
        row = self._tx("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return str(row["status"]) if row is not None else ""

    def spooled(self, job_id: str, spool: str) -> bytes:
        return (self.spool / job_id / spool).read_bytes()

    def _count(self, statuses: tuple[str, ...]) -> int:
        marks = ", ".join("?" for _ in statuses)
        return int(self._tx(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", statuses).fetchone()[0])
