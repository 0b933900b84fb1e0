"""Stored conversations (issue 16): GET /v1/conversations, GET/DELETE /v1/conversations/{id}, POST /v1/feedback,
GET /v1/report (JSON, or CSV with ?format=csv): the questions report for the people who keep the corpus.

They hold what users asked, so they need a key once keys are configured (any role; else this machine and the
same origin); a caller with a key sees only the conversations it started (api/access.py: its principal's owner).
The questions report covers everyone's questions: admin only. 404 when storage is off.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api.deps import AdminAccess, UserAccess
from api.followup import STORAGE_OFF, caller_owner
from api.schemas import ErrorResponse, has_control_chars
from rag.conversations import ConversationStore, report, report_csv
from rag.core.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["conversations"],
                   responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
                   dependencies=[UserAccess])
ID = Path(..., pattern=r"^[0-9a-f]{32}$", description="conversation_id of an answer response")


def _store(request: Request) -> ConversationStore:
    store: ConversationStore | None = getattr(request.app.state, "conversations", None)
    if store is None:
        raise NotFoundError(STORAGE_OFF)
    return store


@router.get("/conversations")
async def list_conversations(request: Request, limit: int = Query(50, ge=1, le=500),
                             offset: int = Query(0, ge=0, le=1_000_000_000)) -> dict[str, Any]:
    """Conversations, most recently updated first: id, title (the first question), created, updated, turns."""
    store = _store(request)
    owner = caller_owner(request, request.app.state.settings)
    rows = await run_in_threadpool(store.list_conversations, owner, limit, offset)
    return {"conversations": rows, "limit": limit, "offset": offset}


@router.get("/conversations/{conversation_id}")
async def get_conversation(request: Request, conversation_id: str = ID) -> dict[str, Any]:
    """One conversation with its turns: question, query (the standalone query used), rewrite, status
    (pending while being answered), answer, short_answer, citations, answerable, latency_ms, model, warnings."""
    store = _store(request)
    return await run_in_threadpool(store.get, conversation_id, caller_owner(request, request.app.state.settings))


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(request: Request, conversation_id: str = ID) -> dict[str, Any]:
    store = _store(request)
    await run_in_threadpool(store.delete, conversation_id, caller_owner(request, request.app.state.settings))
    return {"deleted": conversation_id}


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str = Field(..., pattern=r"^[0-9a-f]{32}$")
    turn: int = Field(..., ge=1, strict=True)
    rating: Literal["up", "down"]
    comment: str = Field("", max_length=2000)

    @field_validator("comment")
    @classmethod
    def plain(cls, v: str) -> str:
        if has_control_chars(v):
            raise ValueError("comment contains control characters: send plain text")
        return v.strip()


@router.post("/feedback")
async def feedback(req: FeedbackRequest, request: Request) -> dict[str, Any]:
    """👍/👎 (and an optional comment) on one answer; the latest rating of a turn counts. 404 for an unknown
    conversation or turn."""
    store = _store(request)
    await run_in_threadpool(store.feedback, req.conversation_id, req.turn, req.rating, req.comment,
                            caller_owner(request, request.app.state.settings))
    return {"conversation_id": req.conversation_id, "turn": req.turn, "rating": req.rating}


@router.get("/report", dependencies=[AdminAccess])
async def questions_report(request: Request, days: float = Query(30, ge=0, le=3650),
                           top: int = Query(20, ge=1, le=500),
                           format: Literal["json", "csv"] = "json") -> Any:  # noqa: A002 - the query name
    """Most asked questions, refused ones (what the documents lack), answers rated down, latency percentiles over
    the last ``days`` (0: all); ``format=csv``: one row per turn. Every conversation, whoever asked."""
    store = _store(request)
    if format == "csv":
        text = await run_in_threadpool(report_csv, store, days)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="questions.csv"'})
    return await run_in_threadpool(report, store, days, top)
