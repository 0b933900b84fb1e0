"""What every upload-job store does (``JobQueue``), and the parts both databases share: the file records of a
new job, the decoding of a row, and the recovery rules of jobs whose run was interrupted.

A job is ``queued`` -> ``running`` -> ``done`` | ``failed``, or ``cancelled`` while queued or parsing; once it
has recorded the documents it is about to write (stage ``indexing``) it can no longer be cancelled. A run that
stopped (its server died or stopped) is settled by ``recover``:

* if it had reached ``indexing`` and every document it recorded (doc id + sha256, written before the index
  write started) is in the current index, the write went through before the crash: ``done``;
* else, if it has had fewer than ``attempts`` runs, it is queued again (resumed from its spooled files);
* else ``failed``, saying so. The index itself is never partial (versions switch atomically), so an
  interrupted job leaves the previous version in place.

Which ``running`` jobs stopped is the store's to say (``_stale``): every one, for the SQLite store (one server
per jobs folder, recovered when it starts); those whose lease lapsed, for the PostgreSQL store (several
servers, each renewing the leases of the jobs it runs). ``_settle`` changes a job only if it is still stale,
so a job another server claimed meanwhile is left alone.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KEEP_DAYS = 7.0  # finished jobs are forgotten after this long
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
JSON_COLS = ("files", "docs", "result", "meta")
Indexed = Callable[[str, str], bool]  # indexed(doc_id, sha256): the current index holds that document


@dataclass
class Recovery:
    """What ``recover`` did: the jobs queued again, and the jobs found done (their index write had landed)."""

    requeued: list[str] = field(default_factory=list)
    landed: list[dict[str, Any]] = field(default_factory=list)


def file_records(files: list[tuple[str, bytes]], failed: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The ``files`` column of a new job: one record per spooled file (``spool`` = its number), then the files
    of the upload already refused, with their cause."""
    blank = {"doc_id": "", "pages_done": 0, "pages_total": 0}
    return ([{"file": name, "spool": str(n), "size": len(data), "status": "queued", "error": "", **blank}
             for n, (name, data) in enumerate(files)]
            + [{"file": name, "spool": "", "size": 0, "status": "failed", "error": err, **blank}
               for name, err in failed])


def encode(fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """``col = ?`` assignments and their values (JSON columns dumped)."""
    return ([f"{k} = ?" for k in fields],
            [json.dumps(v, ensure_ascii=False) if k in JSON_COLS else v for k, v in fields.items()])


def decode(row: Any) -> dict[str, Any]:
    out = dict(row)
    for k in ("meta", "files", "docs"):
        out[k] = json.loads(out[k] or ("{}" if k == "meta" else "[]"))
    out["result"] = json.loads(out["result"]) if out["result"] else None
    return out


def not_found(job_id: str) -> str:
    return f"no job {job_id!r}: jobs are kept {KEEP_DAYS:g} days after they end"


class JobQueue(ABC):
    """The job table and the spooled upload bytes. ``shared``: several servers use it at once (then the runner
    calls ``recover`` periodically, not only at start)."""

    kind = ""
    shared = False
    cause = "server restart"  # how an interrupted run is described in the job's message

    def __init__(self, attempts: int, max_active: int) -> None:
        self.attempts, self.max_active = attempts, max_active

    @abstractmethod
    def create(self, files: list[tuple[str, bytes]], failed: list[tuple[str, str]], meta: dict[str, Any],
               owner: str = "") -> str:
        """Spool the files and queue the job (committed before this returns)."""

    @abstractmethod
    def claim(self) -> dict[str, Any] | None:
        """The oldest queued job, now ``running`` (one more attempt) for this store alone, or None."""

    @abstractmethod
    def update(self, job_id: str, **fields: Any) -> None:
        """Set columns of a job (``files``, ``docs``, ``result`` as Python values, stored as JSON)."""

    @abstractmethod
    def finish(self, job_id: str, status: str, message: str = "", **fields: Any) -> None:
        """End a running job (one cancelled meanwhile stays ``cancelled``) and drop its spooled files."""

    @abstractmethod
    def start_indexing(self, job_id: str, docs: list[list[str]]) -> bool:
        """Record the documents about to be written and enter ``indexing``; False if the job was cancelled (or
        is no longer this store's) first: then it writes nothing."""

    @abstractmethod
    def cancel(self, job_id: str, owner: str = "") -> dict[str, Any]:
        """``cancelled`` for a queued or parsing job; NotFoundError, or JobStateError once ended or writing."""

    @abstractmethod
    def get(self, job_id: str, owner: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def status(self, job_id: str) -> str: ...

    @abstractmethod
    def spooled(self, job_id: str, spool: str) -> bytes:
        """The bytes of a job's spooled file number ``spool``."""

    @abstractmethod
    def close(self) -> None: ...

    def lost(self, job_id: str) -> bool:
        """Whether a job this store claimed was cancelled or taken over elsewhere (stop running it)."""
        return False

    def release(self, job_id: str) -> None:
        """Forget the claim on a job this store stopped running because it was ``lost``."""
        return None

    # -- recovery ----------------------------------------------------------------------------------------------
    @abstractmethod
    def _stale(self) -> list[dict[str, Any]]:
        """The ``running`` jobs whose run has stopped."""

    @abstractmethod
    def _settle(self, job_id: str, **fields: Any) -> bool:
        """Set ``fields`` on a job if it is still stale (dropping its spool when it ends); whether it was."""

    @abstractmethod
    def _purge(self) -> None:
        """Forget jobs finished more than KEEP_DAYS ago and the spool of jobs no longer active."""

    def recover(self, indexed: Indexed) -> Recovery:
        """Settle the jobs whose run stopped (see the module doc)."""
        out = Recovery()
        for job in self._stale():
            where, runs = job["stage"] or "parsing", job["attempts"]
            if job["stage"] == "indexing" and job["docs"] and all(indexed(d, h) for d, h in job["docs"]):
                if self._settle(job["id"], status="done", stage="", message="the server stopped after the index "
                                "write and before the job was marked done; its documents are in the index",
                                result={"added": [d for d, _ in job["docs"]]}):
                    out.landed.append(job)
            elif runs < self.attempts:
                if self._settle(job["id"], status="queued", stage="", message=f"resumed: run {runs} was "
                                f"interrupted while {where} ({self.cause}); the index was left as before it"):
                    out.requeued.append(job["id"])
            else:
                self._settle(job["id"], status="failed", stage="", message=f"interrupted while {where} by a "
                             f"{self.cause}, {runs} time(s); the index is as it was before this job: upload the "
                             "files again (or in smaller parts)")
        self._purge()
        return out

    @abstractmethod
    def list(self, owner: str = "", limit: int = 50) -> list[dict[str, Any]]:  # last: it shadows list
        """The newest jobs first (``owner``'s only, when given)."""
