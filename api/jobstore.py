"""Upload jobs on disk (issue 21): one SQLite row per job and its spooled files, so a restart neither forgets a
job nor loses the files it was given.

A job is ``queued`` -> ``running`` -> ``done`` | ``failed``, or ``cancelled`` (``DELETE /v1/jobs/{id}``) while
queued or parsing; once it has recorded the documents it is about to write (stage ``indexing``) it can no
longer be cancelled. Every change is its own committed transaction (WAL):
what ``GET /v1/jobs/{id}`` reports is what survives a ``kill -9``. The uploaded bytes wait in
``<jobs dir>/spool/<id>/<n>`` until the job ends. On open (``recover``), a job left ``running`` by a process
that died was interrupted:

* if it had reached ``indexing`` and every document it recorded (doc id + sha256, written before the index
  write started) is in the current index, the write went through before the crash: ``done``;
* else, if it has had fewer than ``attempts`` runs, it is queued again (resumed from its spooled files);
* else ``failed``, saying so. The index itself is never partial (``rag.index.store`` switches versions
  atomically), so an interrupted job leaves the previous version in place.

One server process per jobs folder (like the index folder): ``recover`` takes every ``running`` job for one
that died.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.core.config import Settings
from rag.core.errors import JobQueueFullError, JobStateError, NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, created REAL NOT NULL, started REAL, finished REAL, owner TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL, stage TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}', files TEXT NOT NULL DEFAULT '[]', docs TEXT NOT NULL DEFAULT '[]',
    result TEXT, message TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
"""
KEEP_DAYS = 7.0  # finished jobs are forgotten after this long
ACTIVE = ("queued", "running")
JSON_COLS = ("files", "docs", "result", "meta")


def jobs_dir(settings: Settings) -> Path:
    if settings.jobs_dir.strip():
        return Path(settings.jobs_dir.strip())
    index = Path(settings.index_dir).resolve()
    return index.parent / f"{index.name}.jobs"


class JobStore:
    def __init__(self, folder: Path, attempts: int = 2, max_active: int = 20) -> None:
        self.folder = Path(folder)
        self.spool = self.folder / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.attempts, self.max_active = attempts, max_active
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
        """Spool the files and queue the job (its row is committed before this returns); ``failed`` are files
        of the upload already refused (listed with their cause)."""
        if self._count(ACTIVE) >= self.max_active:
            raise JobQueueFullError(f"{self.max_active} upload jobs are queued or running (RAG_MAX_QUEUED_JOBS): "
                                    "retry when some have finished (GET /v1/jobs)")
        job_id = uuid.uuid4().hex
        folder = self.spool / job_id
        folder.mkdir()
        records: list[dict[str, Any]] = []
        for n, (name, data) in enumerate(files):
            path = folder / str(n)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            records.append({"file": name, "spool": str(n), "size": len(data), "status": "queued", "error": "",
                            "doc_id": "", "pages_done": 0, "pages_total": 0})
        records += [{"file": name, "spool": "", "size": 0, "status": "failed", "error": err, "doc_id": "",
                     "pages_done": 0, "pages_total": 0} for name, err in failed]
        self._tx("INSERT INTO jobs(id, created, owner, status, meta, files) VALUES (?, ?, ?, 'queued', ?, ?)",
                 (job_id, time.time(), owner, json.dumps(meta, ensure_ascii=False),
                  json.dumps(records, ensure_ascii=False)))
        return job_id

    def claim(self) -> dict[str, Any] | None:
        """The oldest queued job, now ``running`` (one more attempt), or None."""
        with self._lock:
            row = self._db.execute("UPDATE jobs SET status = 'running', stage = 'parsing', started = ?, "
                                   "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs WHERE status = "
                                   "'queued' ORDER BY created LIMIT 1) RETURNING *", (time.time(),)).fetchone()
        return _row(row) if row is not None else None

    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns (``files``, ``docs``, ``result`` as Python values, stored as JSON)."""
        cols = [f"{k} = ?" for k in fields]
        vals = [json.dumps(v, ensure_ascii=False) if k in JSON_COLS else v for k, v in fields.items()]
        self._tx(f"UPDATE jobs SET {', '.join(cols)} WHERE id = ?", (*vals, job_id))

    def finish(self, job_id: str, status: str, message: str = "", **fields: Any) -> None:
        """End a running job (one cancelled meanwhile stays ``cancelled``) and drop its spooled files."""
        fields.update(status=status, message=message, finished=time.time(), stage="")
        cols = [f"{k} = ?" for k in fields]
        vals = [json.dumps(v, ensure_ascii=False) if k in JSON_COLS else v for k, v in fields.items()]
        self._tx(f"UPDATE jobs SET {', '.join(cols)} WHERE id = ? AND status = 'running'", (*vals, job_id))
        shutil.rmtree(self.spool / job_id, ignore_errors=True)

    def start_indexing(self, job_id: str, docs: list[list[str]]) -> bool:
        """Record the documents about to be written and enter ``indexing``; False if the job was cancelled
        first (then it writes nothing). From here on a cancel is refused: the write is one atomic switch."""
        row = self._tx("UPDATE jobs SET stage = 'indexing', docs = ? WHERE id = ? AND status = 'running' "
                       "RETURNING id", (json.dumps(docs, ensure_ascii=False), job_id)).fetchall()
        return bool(row)

    def cancel(self, job_id: str, owner: str = "") -> dict[str, Any]:
        """``cancelled`` for a queued job or one still parsing (nothing of it is written); NotFoundError for
        an unknown id (or another owner's), JobStateError for one that ended or is writing to the index."""
        with self._lock:  # read and change under one lock: a worker's claim cannot come in between
            was = self._db.execute("SELECT owner, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if was is None or (owner and was["owner"] != owner):
                raise NotFoundError(f"no job {job_id!r}: jobs are kept {KEEP_DAYS:g} days after they end")
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
        return _row(row[0])

    def status(self, job_id: str) -> str:
        row = self._tx("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return str(row["status"]) if row is not None else ""

    def recover(self, indexed: Callable[[str, str], bool]) -> list[str]:
        """Settle the jobs a dead process left ``running`` (see the module doc); ``indexed(doc_id, sha256)``
        says whether the current index holds that document. Returns the ids of the jobs queued again."""
        again = []
        for job in [_row(r) for r in self._tx("SELECT * FROM jobs WHERE status = 'running'").fetchall()]:
            where = job["stage"] or "parsing"
            if job["stage"] == "indexing" and job["docs"] and all(indexed(d, h) for d, h in job["docs"]):
                self.finish(job["id"], "done", "the server stopped after the index write and before the job "
                            "was marked done; its documents are in the index",
                            result={"added": [d for d, _ in job["docs"]]})
            elif job["attempts"] < self.attempts:
                self.update(job["id"], status="queued", stage="", message=f"resumed: run {job['attempts']} "
                            f"was interrupted while {where} (server restart); the index was left as before it")
                again.append(job["id"])
            else:
                self.finish(job["id"], "failed", f"interrupted while {where} by a server restart, "
                            f"{job['attempts']} time(s); the index is as it was before this job: upload the "
                            "files again (or in smaller parts)")
        self._tx("DELETE FROM jobs WHERE status IN ('done', 'failed', 'cancelled') AND finished < ?",
                 (time.time() - KEEP_DAYS * 86400,))
        live = {r["id"] for r in self._tx("SELECT id FROM jobs WHERE status IN ('queued', 'running')")}
        for folder in self.spool.iterdir():  # spool of jobs that ended or were forgotten
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)
        return again

    # -- reads -------------------------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> dict[str, Any]:
        row = self._tx("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or (owner and row["owner"] != owner):
            raise NotFoundError(f"no job {job_id!r}: jobs are kept {KEEP_DAYS:g} days after they end")
        return _row(row)

    def list(self, owner: str = "", limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT * FROM jobs" + (" WHERE owner = ?" if owner else "") + " ORDER BY created DESC LIMIT ?"
        return [_row(r) for r in self._tx(sql, (owner, limit) if owner else (limit,)).fetchall()]

    def spooled(self, job_id: str, spool: str) -> bytes:
        return (self.spool / job_id / spool).read_bytes()

    def _count(self, statuses: tuple[str, ...]) -> int:
        marks = ", ".join("?" for _ in statuses)
        return int(self._tx(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", statuses).fetchone()[0])


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for k in ("meta", "files", "docs"):
        out[k] = json.loads(out[k] or ("{}" if k == "meta" else "[]"))
    out["result"] = json.loads(out["result"]) if out["result"] else None
    return out
