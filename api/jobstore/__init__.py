"""Where upload jobs live (issues 21, 18): the job table and the uploaded bytes waiting to be parsed.

* No ``RAG_DATABASE_URL`` (the default): SQLite and a spool folder in ``RAG_JOBS_DIR`` (``<index>.jobs``),
  one server per folder (``sqlite.JobStore``).
* ``RAG_DATABASE_URL=postgresql://…``: both in PostgreSQL, shared by every server that names it; jobs are
  claimed with ``FOR UPDATE SKIP LOCKED`` under a renewed lease (``postgres.PostgresJobStore``), so replicas
  share one upload queue and keep nothing of it on their disks.

``base.JobQueue`` is what both do (and the recovery rules); ``open_jobstore`` picks one from the settings.
"""

from __future__ import annotations

from pathlib import Path

from api.jobstore.base import KEEP_DAYS, JobQueue, Recovery
from api.jobstore.postgres import PostgresJobStore
from api.jobstore.sqlite import JobStore
from rag.conversations.db import is_url
from rag.core.config import Settings


def jobs_dir(settings: Settings) -> Path:
    if settings.jobs_dir.strip():
        return Path(settings.jobs_dir.strip())
    index = Path(settings.index_dir).resolve()
    return index.parent / f"{index.name}.jobs"


def open_jobstore(settings: Settings) -> JobQueue:
    """PostgreSQL when RAG_DATABASE_URL is a PostgreSQL URL, else SQLite in the jobs folder."""
    url = settings.database_url.strip()
    if is_url(url):
        return PostgresJobStore(url, settings.job_attempts, settings.max_queued_jobs, settings.job_lease)
    return JobStore(jobs_dir(settings), settings.job_attempts, settings.max_queued_jobs)


__all__ = ["KEEP_DAYS", "JobQueue", "JobStore", "PostgresJobStore", "Recovery", "jobs_dir", "open_jobstore"]
