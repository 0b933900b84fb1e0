"""Stored conversations (issue 16): GET /v1/conversations, GET/DELETE /v1/conversations/{id}.

They hold what users asked, so they need write access (a key once RAG_API_KEYS is set, else this machine and
the same origin); a caller with a key sees only the conversations it started. 404 when storage is off.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from api.conversations import ConversationStore
from api.deps import WriteAccess
from api.followup import STORAGE_OFF, caller_owner
from api.schemas import ErrorResponse
from rag.core.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["conversations"],
                   responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
                   dependencies=[WriteAccess])
ID = Path(..., pattern=r"^[0-9a-f]{32}$", description="conversation_id of an answer response")


def _store(request: Request) -> ConversationStore:
    store: ConversationStore | None = getattr(request.app.state, "conversations", None)
    if store is None:
        raise NotFoundError(STORAGE_OFF)
    return store


@router.get("/conversations")
async def list_conversations(request: Request, limit: int = Query(50, ge=1, le=500),
                             offset: int = Query(0, ge=0)) -> dict[str, Any]:
    """Conversations, most recently updated first: id, title (the first question), created, updated, turns."""
    store = _store(request)
    owner = caller_owner(request, request.app.state.settings)
    rows = await run_in_threadpool(store.list, owner, limit, offset)
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
