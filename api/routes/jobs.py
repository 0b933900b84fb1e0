"""Upload jobs (issue 21): GET /v1/jobs/{id} (status, progress, per-file errors, the documents written),
GET /v1/jobs (the latest), DELETE /v1/jobs/{id} (cancel one queued or still parsing: nothing of it is written;
409 once it ended or is writing to the index). A job is made by POST /v1/documents?async=true or by an upload
too big to answer within the request (api/jobs.py).

They need write access, as the upload did (a key once RAG_API_KEYS is set, else this machine and the same
origin); a caller with a key sees only its own jobs, and cancels one only while it may write the job's collection.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.access import check_write, principal_of
from api.deps import WriteAccess
from api.followup import caller_owner
from api.jobs import JobRunner
from api.schemas import ErrorResponse
from rag.core.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["jobs"], responses={404: {"model": ErrorResponse}},
                   dependencies=[WriteAccess])
ID = Path(..., pattern=r"^[0-9a-f]{32}$", description="job_id of a 202 upload response")


class JobFile(BaseModel):
    file: str
    status: str  # queued | running | parsed | done | failed
    error: str = ""
    doc_id: str = ""
    pages_done: int = 0  # OCR pages, where the loader can tell
    pages_total: int = 0


class Progress(BaseModel):
    files_done: int
    files_total: int
    pages_done: int
    pages_total: int


class JobOut(BaseModel):
    job_id: str
    status: str  # queued | running | done | failed | cancelled
    stage: str = ""  # parsing | indexing while running
    created: str
    started: str | None = None
    finished: str | None = None
    attempts: int
    progress: Progress
    files: list[JobFile]
    errors: list[dict[str, str]]  # the files that could not be read, with their cause
    doc_ids: list[str]  # documents written (added, replaced or unchanged) once done
    result: dict[str, Any] | None = None  # the index change once done: added, replaced, unchanged, version, chunks
    message: str = ""


def _runner(request: Request) -> JobRunner:
    runner: JobRunner | None = getattr(request.app.state, "jobs", None)
    if runner is None:
        raise NotFoundError("upload jobs are not running on this server")
    return runner


def _time(t: float | None) -> str | None:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds") if t else None


def job_out(job: dict[str, Any]) -> JobOut:
    files = [JobFile(**{k: f[k] for k in JobFile.model_fields if k in f}) for f in job["files"]]
    result = job["result"]
    doc_ids = [] if result is None else [*result.get("added", []), *result.get("replaced", []),
                                         *result.get("unchanged", [])]
    return JobOut(job_id=job["id"], status=job["status"], stage=job["stage"], created=_time(job["created"]) or "",
                  started=_time(job["started"]), finished=_time(job["finished"]), attempts=job["attempts"],
                  progress=Progress(files_done=sum(f.status in ("parsed", "done", "failed") for f in files),
                                    files_total=len(files), pages_done=sum(f.pages_done for f in files),
                                    pages_total=sum(f.pages_total for f in files)),
                  files=files, errors=[{"file": f.file, "error": f.error} for f in files if f.status == "failed"],
                  doc_ids=doc_ids, result=result, message=job["message"])


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(request: Request, job_id: str = ID) -> JobOut:
    """One upload job: status, progress (files, and OCR pages where the loader can tell), per-file errors and
    the documents written."""
    owner = caller_owner(request, request.app.state.settings)
    return job_out(await run_in_threadpool(_runner(request).store.get, job_id, owner))


@router.get("/jobs", response_model=list[JobOut])
async def list_jobs(request: Request, limit: int = Query(20, ge=1, le=200)) -> list[JobOut]:
    """The latest upload jobs, newest first (kept 7 days after they end)."""
    owner = caller_owner(request, request.app.state.settings)
    return [job_out(j) for j in await run_in_threadpool(_runner(request).store.list, owner, limit)]


@router.delete("/jobs/{job_id}", response_model=JobOut, responses={409: {"model": ErrorResponse}})
async def cancel_job(request: Request, job_id: str = ID) -> JobOut:
    """Cancel a job that is queued or still parsing: its parse stops, nothing of it is written, its status is
    ``cancelled``. 409 when it has ended or is already writing its documents to the index (one atomic switch);
    404 for an unknown job or another key's."""
    runner = _runner(request)
    owner = caller_owner(request, request.app.state.settings)
    job = await run_in_threadpool(runner.store.get, job_id, owner)
    check_write(principal_of(request), str(job["meta"].get("collection", "default")))
    return job_out(await run_in_threadpool(runner.cancel, job_id, owner))
