"""Upload jobs in PostgreSQL (``RAG_DATABASE_URL=postgresql://…``, issue 18): the job table and the uploaded
bytes both live in the database, so several API servers (replicas behind one Milvus) share one queue and none
keeps a job on its local disk. Any server may take any job; the files are read back from the database by the one
that claims it.

* **Claim**: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)``: two servers never take the same job.
  The claim writes ``claimed_by`` (``host:pid/<claim>``) and ``lease_until`` (the database's clock plus
  ``lease`` seconds).
* **Lease**: a thread renews the leases of the jobs this store runs every third of ``lease``. A job whose
  server died (or hung, or lost the database) past its lease is stale: ``recover``, which the runner calls
  every ``lease / 2`` seconds on every server, settles it (``JobQueue.recover``: done, queued again, or
  failed). A job a live server runs keeps its lease and is never taken. A server's writes to a job carry its
  claim, so one whose lease lapsed and was taken over elsewhere changes nothing (``start_indexing`` says
  False, the runner stops it); its renewal finds the job gone and ``lost`` says so.
* **Cancel** through any server: the row says ``cancelled``; the running server sees it at its next renewal.

Schema (beside the conversation tables, ``rag.conversations.db``)::

    upload_jobs(… the SQLite jobs columns (api/jobstore/sqlite.py), epoch seconds as DOUBLE PRECISION …,
                claimed_by TEXT, lease_until DOUBLE PRECISION)
    upload_job_files(job_id TEXT REFERENCES upload_jobs ON DELETE CASCADE, n INTEGER, data BYTEA)
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from api.jobstore.base import FINAL, KEEP_DAYS, JobQueue, decode, encode, file_records, not_found
from rag.conversations.db import PostgresDatabase, Result, Run
from rag.core.errors import ConfigError, JobQueueFullError, JobStateError, JobStoreUnavailableError, NotFoundError

logger = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS upload_jobs (
    id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, started DOUBLE PRECISION, finished DOUBLE PRECISION,
    owner TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, stage TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0, meta TEXT NOT NULL DEFAULT '{}', files TEXT NOT NULL DEFAULT '[]',
    docs TEXT NOT NULL DEFAULT '[]', result TEXT, message TEXT NOT NULL DEFAULT '',
    claimed_by TEXT NOT NULL DEFAULT '', lease_until DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS upload_jobs_status ON upload_jobs(status, created);
CREATE TABLE IF NOT EXISTS upload_job_files (
    job_id TEXT NOT NULL REFERENCES upload_jobs(id) ON DELETE CASCADE, n INTEGER NOT NULL, data BYTEA NOT NULL,
    PRIMARY KEY (job_id, n));
"""
NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"  # the database's clock: one for every server
STALE = f"status = 'running' AND (lease_until IS NULL OR lease_until < {NOW})"
_LOCK = 0x72616A6F  # pg_advisory_xact_lock key: the schema created once, the queue bound counted exactly


class Guarded:
    """The database of a running server: a lost connection (after the one reconnect ``PostgresDatabase`` tries)
    is a ``JobStoreUnavailableError`` naming the database (HTTP 503), not an untyped driver error."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db, self.where = db, db.where

    def _down(self, e: Exception) -> JobStoreUnavailableError | None:
        import psycopg

        if not isinstance(e, (psycopg.OperationalError, ConfigError)):
            return None
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return JobStoreUnavailableError(f"the upload job database {self.where} is unavailable ({why}): retry "
                                        "when it is back")

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        try:
            return self.db.run(sql, args)
        except Exception as e:
            if (down := self._down(e)) is None:
                raise
            raise down from e

    @contextmanager
    def transaction(self) -> Iterator[Run]:
        try:
            with self.db.transaction() as run:
                yield run
        except Exception as e:  # a typed error of the body (a full queue, an unknown job) passes unchanged
            if (down := self._down(e)) is None:
                raise
            raise down from e

    def close(self) -> None:
        self.db.close()


class PostgresJobStore(JobQueue):
    kind = "postgresql"
    shared = True
    cause = "server that died or hung (its lease lapsed)"

    def __init__(self, url: str, attempts: int = 2, max_active: int = 20, lease: float = 30.0) -> None:
        super().__init__(attempts, max_active)
        self.lease = lease
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.db = Guarded(PostgresDatabase(url))
        with self.db.transaction() as run:
            run("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    run(stmt)
        self._mine: dict[str, str] = {}  # job id -> the claim this store holds on it
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._renewing, name="rag-job-lease", daemon=True)
        self._beat.start()

    # -- writes ------------------------------------------------------------------------------------------------
    def create(self, files: list[tuple[str, bytes]], failed: list[tuple[str, str]], meta: dict[str, Any],
               owner: str = "") -> str:
        job_id = uuid.uuid4().hex
        with self.db.transaction() as run:  # the row and its bytes commit together
            run("SELECT pg_advisory_xact_lock(?)", (_LOCK,))  # the bound holds across servers
            row = run("SELECT COUNT(*) AS n FROM upload_jobs WHERE status IN ('queued', 'running')").one()
            if row is not None and row["n"] >= self.max_active:
                raise JobQueueFullError(f"{self.max_active} upload jobs are queued or running "
                                        "(RAG_MAX_QUEUED_JOBS): retry when some have finished (GET /v1/jobs)")
            run(f"INSERT INTO upload_jobs(id, created, owner, status, meta, files) VALUES (?, {NOW}, ?, 'queued', "
                "?, ?)", (job_id, owner, json.dumps(meta, ensure_ascii=False),
                          json.dumps(file_records(files, failed), ensure_ascii=False)))
            for n, (_, data) in enumerate(files):
                run("INSERT INTO upload_job_files(job_id, n, data) VALUES (?, ?, ?)", (job_id, n, data))
        return job_id

    def claim(self) -> dict[str, Any] | None:
        token = f"{self.replica}/{uuid.uuid4().hex[:8]}"
        row = self.db.run(
            f"UPDATE upload_jobs SET status = 'running', stage = 'parsing', started = {NOW}, "
            f"attempts = attempts + 1, claimed_by = ?, lease_until = {NOW} + ? WHERE status = 'queued' AND id = "
            "(SELECT id FROM upload_jobs WHERE status = 'queued' ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING *", (token, self.lease)).one()
        if row is None:
            return None
        with self._guard:
            self._mine[row["id"]] = token
        return decode(row)

    def _claimed(self, job_id: str) -> tuple[str, tuple[Any, ...]]:
        """The condition that a job is still this store's claim (none for a job it did not claim)."""
        with self._guard:
            token = self._mine.get(job_id)
        return ("", ()) if token is None else (" AND claimed_by = ?", (token,))

    def update(self, job_id: str, **fields: Any) -> None:
        cols, vals = encode(fields)
        mine, arg = self._claimed(job_id)
        self.db.run(f"UPDATE upload_jobs SET {', '.join(cols)} WHERE id = ?{mine}", (*vals, job_id, *arg))

    def finish(self, job_id: str, status: str, message: str = "", **fields: Any) -> None:
        cols, vals = encode({**fields, "status": status, "message": message, "stage": ""})
        mine, arg = self._claimed(job_id)
        with self.db.transaction() as run:
            run(f"UPDATE upload_jobs SET {', '.join(cols)}, finished = {NOW} WHERE id = ? AND status = 'running'"
                f"{mine}", (*vals, job_id, *arg))
            self._drop_spool(run, job_id)
        self.release(job_id)

    @staticmethod
    def _drop_spool(run: Any, job_id: str) -> None:
        """The job's bytes, unless it is active (queued again or running elsewhere)."""
        run("DELETE FROM upload_job_files WHERE job_id = ? AND NOT EXISTS (SELECT 1 FROM upload_jobs WHERE "
            "id = ? AND status IN ('queued', 'running'))", (job_id, job_id))

    def start_indexing(self, job_id: str, docs: list[list[str]]) -> bool:
        mine, arg = self._claimed(job_id)
        row = self.db.run("UPDATE upload_jobs SET stage = 'indexing', docs = ? WHERE id = ? AND status = 'running'"
                          f"{mine} RETURNING id", (json.dumps(docs, ensure_ascii=False), job_id, *arg)).one()
        return row is not None

    def cancel(self, job_id: str, owner: str = "") -> dict[str, Any]:
        with self.db.transaction() as run:  # the row locked: a claim cannot come in between
            was = run("SELECT owner, status FROM upload_jobs WHERE id = ? FOR UPDATE", (job_id,)).one()
            if was is None or (owner and was["owner"] != owner):
                raise NotFoundError(not_found(job_id))
            row = run(f"UPDATE upload_jobs SET status = 'cancelled', stage = '', finished = {NOW}, message = ? "
                      "WHERE id = ? AND (status = 'queued' OR (status = 'running' AND stage != 'indexing')) "
                      "RETURNING *", (f"cancelled while {'queued' if was['status'] == 'queued' else 'parsing'}: "
                                      "nothing of it was written to the index", job_id)).one()
            if row is not None and was["status"] == "queued":
                self._drop_spool(run, job_id)  # a running one's is dropped by its server when it stops
        if row is None:
            now = self.get(job_id, owner)
            if now["status"] == "running":
                raise JobStateError(f"job {job_id} is writing its documents to the index (one atomic switch) and "
                                    "can no longer be cancelled: delete its documents once it is done")
            raise JobStateError(f"job {job_id} has already ended ({now['status']}): nothing to cancel")
        return decode(row)

    # -- leases ------------------------------------------------------------------------------------------------
    def lost(self, job_id: str) -> bool:
        with self._guard:
            return job_id in self._lost

    def release(self, job_id: str) -> None:
        with self._guard:
            self._mine.pop(job_id, None)
            self._lost.discard(job_id)

    def renew(self) -> None:
        """Extend the leases of the jobs this store runs; a job no longer running under its claim is lost."""
        with self._guard:
            mine = dict(self._mine)
        if not mine:
            return
        rows = self.db.run(f"UPDATE upload_jobs SET lease_until = {NOW} + ? WHERE id = ANY(?) AND "
                           "claimed_by = ANY(?) AND status = 'running' RETURNING id",
                           (self.lease, list(mine), list(mine.values()))).rows
        kept = {r["id"] for r in rows}
        with self._guard:
            for job_id, token in mine.items():
                if job_id not in kept and self._mine.get(job_id) == token:
                    self._lost.add(job_id)

    def _renewing(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.renew()
            except Exception as e:  # noqa: BLE001 - the database is away: retry at the next beat
                logger.warning("could not renew upload job leases in %s: %s", self.db.where, e)

    # -- recovery ----------------------------------------------------------------------------------------------
    def _stale(self) -> list[dict[str, Any]]:
        return [decode(r) for r in self.db.run(f"SELECT * FROM upload_jobs WHERE {STALE}").rows]

    def _settle(self, job_id: str, **fields: Any) -> bool:
        fields.update(claimed_by="", lease_until=None)
        cols, vals = encode(fields)
        end = f", finished = {NOW}" if fields.get("status") in FINAL else ""
        with self.db.transaction() as run:
            row = run(f"UPDATE upload_jobs SET {', '.join(cols)}{end} WHERE id = ? AND {STALE} RETURNING id",
                      (*vals, job_id)).one()
            self._drop_spool(run, job_id)
        return row is not None

    def _purge(self) -> None:
        with self.db.transaction() as run:
            run(f"DELETE FROM upload_jobs WHERE status IN ('done', 'failed', 'cancelled') AND finished < {NOW} - ?",
                (KEEP_DAYS * 86400,))
            run("DELETE FROM upload_job_files f WHERE NOT EXISTS (SELECT 1 FROM upload_jobs j WHERE "
                "j.id = f.job_id AND j.status IN ('queued', 'running'))")

    # -- reads -------------------------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str = "") -> dict[str, Any]:
        row = self.db.run("SELECT * FROM upload_jobs WHERE id = ?", (job_id,)).one()
        if row is None or (owner and row["owner"] != owner):
            raise NotFoundError(not_found(job_id))
        return decode(row)

    def list(self, owner: str = "", limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT * FROM upload_jobs" + (" WHERE owner = ?" if owner else "") + " ORDER BY created DESC LIMIT ?"
        return [decode(r) for r in self.db.run(sql, (owner, limit) if owner else (limit,)).rows]

    def status(self, job_id: str) -> str:
        row = self.db.run("SELECT status FROM upload_jobs WHERE id = ?", (job_id,)).one()
        return str(row["status"]) if row is not None else ""

    def spooled(self, job_id: str, spool: str) -> bytes:
        row = self.db.run("SELECT data FROM upload_job_files WHERE job_id = ? AND n = ?", (job_id, int(spool))).one()
        if row is None:
            raise NotFoundError(f"the uploaded file {spool} of job {job_id} is no longer in the database")
        return bytes(row["data"])

    def close(self) -> None:
        """Stop renewing and hand back the leases of jobs still claimed here (left ``running`` by a shutdown):
        the next ``recover`` on any server resumes them at once instead of after the lease."""
        self._stop.set()
        self._beat.join(5)
        with self._guard:
            mine = dict(self._mine)
        if mine:
            try:
                self.db.run("UPDATE upload_jobs SET lease_until = 0 WHERE id = ANY(?) AND claimed_by = ANY(?) AND "
                            "status = 'running'", (list(mine), list(mine.values())))
            except Exception as e:  # noqa: BLE001 - the leases then lapse on their own
                logger.warning("could not hand back upload job leases: %s", e)
        self.db.close()
