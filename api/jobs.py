"""Background upload jobs (issue 21): ``POST /v1/documents?async=true``, or any upload past
``RAG_ASYNC_UPLOAD_MB`` or with more than ``RAG_ASYNC_OCR_PAGES`` pages to OCR, answers ``202 Accepted`` with
a job id and ``Location: /v1/jobs/{id}`` as soon as its files are spooled, and is parsed and indexed here.

``RAG_JOB_WORKERS`` threads (default 1) take jobs from the table (``api.jobstore``) oldest first. A job parses
its files one by one in a parse process (api/parsing.py: a lower priority than searches, a memory cap; progress:
files, and OCR pages of the current file; ``RAG_JOB_PARSE_TIMEOUT`` per file, a parse stuck past it is killed),
records the documents it is about to write, then embeds and writes them all (in the server) as one new index
version through ``Pipeline.update`` (the index folder lock and the atomic version switch of
``rag.index``): a job's documents all go in, or none do. A file that cannot be read is listed with its cause
and the rest go in; a job none of whose files could be read, or whose write failed, is ``failed`` with the
message. ``DELETE /v1/jobs/{id}`` cancels a job that is queued or still parsing (its parse process is killed;
nothing of it is written). The write is audited as the submitter's upload (api/audit.py). Jobs interrupted by a
restart are settled by ``JobQueue.recover`` when the next server starts; with the jobs in PostgreSQL (shared by
replicas, api/jobstore/postgres.py) every server also recovers, every ``RAG_JOB_LEASE / 2`` seconds, the jobs
whose server stopped renewing their lease, and stops a job of its own that was cancelled or taken over elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api import parsing
from api.access import principal_of
from api.jobstore import JobQueue, open_jobstore
from api.scoped import collection_of, text_hash
from api.security import client_address
from rag.core.config import Settings
from rag.core.errors import InvalidInputError, RagError
from rag.core.types import Document
from rag.ingest.isolated import ParseCancelled
from rag.ingest.loaders.pdf import scanned_pages
from rag.pipeline import Pipeline

logger = logging.getLogger(__name__)

IMAGES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
PROGRESS_EVERY = 0.5  # seconds between progress writes


def ocr_pages(data: bytes, name: str) -> int:
    """Pages of one file that will need OCR, estimated cheaply (a sample of a PDF's pages; an image is one)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf":
        return scanned_pages(data)
    return 1 if suffix in IMAGES else 0


async def wants_job(files: list[tuple[str, bytes]], settings: Settings) -> bool:
    """Whether an upload is too big to answer within the request: past ``async_upload_mb`` in all, or with
    more than ``async_ocr_pages`` pages to OCR (a long scan would outlast RAG_PARSE_TIMEOUT)."""
    if sum(len(d) for _, d in files) > settings.async_upload_mb * 1024 * 1024:
        return True
    if settings.async_ocr_pages <= 0:
        return False
    pages = 0
    for name, data in files:
        pages += await run_in_threadpool(ocr_pages, data, name)
        if pages > settings.async_ocr_pages:
            return True
    return False


def accepted(job_id: str) -> JSONResponse:
    where = f"/v1/jobs/{job_id}"
    return JSONResponse({"job_id": job_id, "status": "queued", "location": where}, status_code=202,
                        headers={"Location": where})


class JobRunner:
    """The worker threads over a ``JobStore``; ``on_indexed`` runs after each successful index write; ``audit``
    gives the audit log (api/audit.py) each job's write is recorded in, as the submitter's."""

    def __init__(self, settings: Settings, pipeline: Pipeline, on_indexed: Callable[[], None] = lambda: None,
                 audit: Callable[[], Any] = lambda: None):
        self.store: JobQueue = open_jobstore(settings)
        self.pipeline, self.on_indexed, self.audit = pipeline, on_indexed, audit
        self.workers, self.parse_timeout = settings.job_workers, settings.job_parse_timeout
        self.recover_every = settings.job_lease / 2
        self._wake, self._stop = threading.Event(), threading.Event()
        self._threads: list[threading.Thread] = []
        self._cancelled: set[str] = set()

    def start(self) -> None:
        self.recover()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"rag-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.store.shared:  # other servers may die holding jobs: look for lapsed leases while running
            t = threading.Thread(target=self._recovering, name="rag-job-recover", daemon=True)
            t.start()
            self._threads.append(t)

    def recover(self) -> None:
        """Settle the jobs whose run stopped (``JobQueue.recover``) against the live index (a shared store: the
        version another replica may have written; not checkable while the index server is away: next round)."""
        if self.store.shared:
            try:
                self.pipeline.refresh()
            except RagError as e:
                logger.warning("upload job recovery waits for the index: %s", e.message)
                return
        index = self.pipeline.index

        def indexed(doc_id: str, sha256: str) -> bool:
            doc = index.documents.get(doc_id) if index is not None else None
            return doc is not None and doc.meta.get("sha256") == sha256

        rec = self.store.recover(indexed)
        for job in rec.landed:  # a write that landed just before its server stopped: audited now
            if index is not None:
                self._record(job, [index.documents[d] for d, _ in job["docs"] if d in index.documents],
                             {"recovered": True})
        if rec.requeued:
            logger.warning("resuming %d interrupted upload job(s): %s", len(rec.requeued), rec.requeued)
            self._wake.set()

    def _recovering(self) -> None:
        while not self._stop.wait(self.recover_every):
            try:
                self.recover()
            except Exception:  # noqa: BLE001 - the database is away: try again at the next round
                logger.exception("could not recover upload jobs")

    def stop(self, wait: float = 2.0) -> None:
        """Stop taking jobs; one still running is left ``running`` and settled by the next start (PostgreSQL:
        its lease handed back, resumed by the next ``recover`` of any server)."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(wait)
        if not any(t.is_alive() for t in self._threads):  # else a job still writes to it until the process ends
            self.store.close()

    def submit(self, files: list[tuple[str, bytes]], failed: list[tuple[str, str]], meta: dict[str, Any],
               owner: str = "") -> str:
        job_id = self.store.create(files, failed, meta, owner)
        self._wake.set()
        return job_id

    def cancel(self, job_id: str, owner: str = "") -> dict[str, Any]:
        """Cancel a queued job or one still parsing (``JobStore.cancel``); a running one's parse is stopped."""
        job = self.store.cancel(job_id, owner)
        self._cancelled.add(job_id)
        return job

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim()
            except Exception:  # the database closed under us at shutdown, or the database server is away
                if self._stop.is_set():
                    return
                logger.exception("could not take an upload job; trying again")
                self._stop.wait(2.0)
                continue
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(job)
            except Exception as e:
                logger.exception("upload job %s failed", job["id"])
                self.store.finish(job["id"], "failed", f"internal error ({type(e).__name__}); see the server log")
            finally:
                self._cancelled.discard(job["id"])

    def _halt(self, job_id: str) -> bool:
        """Stop the job: shutting down, cancelled here, or cancelled or taken over elsewhere (shared store)."""
        return self._stop.is_set() or job_id in self._cancelled or self.store.lost(job_id)

    def _halted(self, job_id: str) -> None:
        """After a cancel: drop the spool (the row says ``cancelled`` already). At shutdown the job stays
        ``running`` and the next start (or another server, PostgreSQL) resumes it."""
        if self.store.status(job_id) == "cancelled":
            self.store.finish(job_id, "cancelled")
            logger.info("upload job %s cancelled; nothing of it was written", job_id)
        elif self.store.lost(job_id):
            self.store.release(job_id)
            logger.warning("upload job %s was taken over by another server (this one's lease lapsed); stopped "
                           "here before writing", job_id)

    def _run(self, job: dict[str, Any]) -> None:
        job_id, files, meta = job["id"], job["files"], dict(job["meta"])
        fixed_id = meta.pop("doc_id", None)
        meta.pop("by", None)  # who submitted it: for the audit row, not the documents' metadata
        docs: list[Document] = []
        for rec in files:
            if not rec["spool"]:
                continue  # refused before the job was queued
            if self._halt(job_id):
                self._halted(job_id)
                return
            rec.update(status="running", error="", doc_id="", pages_done=0, pages_total=0)
            self.store.update(job_id, files=files)
            try:
                doc = self._parse(job_id, files, rec, self.store.spooled(job_id, rec["spool"]), fixed_id, meta)
                if any(d.doc_id == doc.doc_id for d in docs):
                    raise InvalidInputError(f"{rec['file']}: a second file with doc_id {doc.doc_id!r} in this "
                                            "upload; the first one was used")
                rec.update(status="parsed", doc_id=doc.doc_id, pages_done=rec["pages_total"])
                docs.append(doc)
            except ParseCancelled:
                self._halted(job_id)
                return
            except RagError as e:
                rec.update(status="failed", error=e.message)
            self.store.update(job_id, files=files)
        if not docs:
            errors = [f"{r['file']}: {r['error']}" if not r["error"].startswith(r["file"]) else r["error"]
                      for r in files if r["status"] == "failed"]
            self.store.finish(job_id, "failed", errors[0] if len(errors) == 1 else
                              f"none of the {len(files)} files could be read: " + "; ".join(errors), files=files)
            return
        if self._halt(job_id) or not self.store.start_indexing(
                job_id, [[d.doc_id, d.meta.get("sha256", "")] for d in docs]):
            self._halted(job_id)  # cancelled (or stopping) before the write: nothing is written
            return
        try:
            rep = self.pipeline.update(docs, [])
        except RagError as e:
            self.store.finish(job_id, "failed", f"the index write failed: {e.message}", files=files)
            return
        for rec in files:
            if rec["status"] == "parsed":
                rec["status"] = "done"
        self.on_indexed()
        self.store.finish(job_id, "done", job["message"], files=files, result=dict(rep.__dict__))
        self._record(job, docs, {"version": rep.version})
        logger.info("upload job %s done: +%s ~%s", job_id, rep.added, rep.replaced)

    def _record(self, job: dict[str, Any], docs: list[Document], detail: dict[str, Any]) -> None:
        """The job's write in the audit log, as a synchronous upload's: the submitter, the documents and the
        sha256 of their text (api/audit.py)."""
        log = self.audit()
        if log is None:
            return
        by = job["meta"].get("by") or {}
        try:
            log.record(str(by.get("name", "unknown")), str(by.get("role", "")), str(by.get("source", "")),
                       "upload", "POST", f"/v1/jobs/{job['id']}", 201, str(by.get("client", "")),
                       [d.doc_id for d in docs], {d.doc_id: text_hash(d) for d in docs},
                       {"job_id": job["id"], "collections": sorted({collection_of(d) for d in docs}), **detail})
        except Exception:  # noqa: BLE001 - the write is done; say loudly that its row is missing
            logger.exception("could not write the audit row of upload job %s", job["id"])

    def _parse(self, job_id: str, files: list[dict[str, Any]], rec: dict[str, Any], data: bytes,
               doc_id: str | None, meta: dict[str, Any]) -> Document:
        """``load_bytes`` in a parse process (api/parsing.py) under the job's budget, its OCR pages reported as
        progress; a cancel or shutdown stops it (ParseCancelled)."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            rec["pages_done"], rec["pages_total"] = done, total
            if time.monotonic() - last[0] >= PROGRESS_EVERY:
                last[0] = time.monotonic()
                self.store.update(job_id, files=files)

        return parsing.pool().parse(data, rec["file"], doc_id, dict(meta), self.parse_timeout, report,
                                    lambda: self._halt(job_id))


def submitter(request: Any) -> dict[str, str]:
    """Who queued a job, for its audit row: the principal's name, role and how it signed in, the client."""
    p = principal_of(request)
    return {"name": p.name, "role": p.role, "source": p.source, "client": client_address(request)}
