"""GET /v1/audit (admin, issue 20): the audit log of writes (api/audit.py), newest first, with filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.audit import AuditLog
from api.deps import AdminAccess
from api.schemas import ErrorResponse
from rag.core.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1", tags=["audit"], dependencies=[AdminAccess],
                   responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                              422: {"model": ErrorResponse}})


def _epoch(value: str | None, name: str) -> float | None:
    """An ISO date or date-time (UTC when it has no zone) as epoch seconds."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{name} {value[:40]!r} is not an ISO date or date-time, e.g. 2026-12-07 or "
                                "2026-12-07T10:00:00Z") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


@router.get("/audit")
async def audit_log(request: Request, principal: str | None = Query(None, max_length=100),
                    action: str | None = Query(None, max_length=40, description="upload | replace | delete | "
                                               "metadata | feedback | conversation-delete | write"),
                    doc_id: str | None = Query(None, max_length=300), status: int | None = Query(None, ge=100, le=599),
                    since: str | None = Query(None, max_length=40, description="ISO date or date-time (UTC)"),
                    until: str | None = Query(None, max_length=40),
                    limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=1_000_000_000)) -> dict[str, Any]:
    """Who changed what: time, principal (name, role, key or token), action, route, status, document ids and the
    sha256 of their text, details (job id, feedback rating, metadata fields). Never a key."""
    log: AuditLog | None = getattr(request.app.state, "audit", None)
    if log is None:
        raise NotFoundError("the audit log is not open")
    rows = await run_in_threadpool(log.query, principal, action, doc_id, _epoch(since, "since"),
                                   _epoch(until, "until"), status, limit, offset)
    return {"entries": rows, "limit": limit, "offset": offset}
