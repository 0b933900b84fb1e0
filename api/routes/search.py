from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api import followup
from api.deps import PipelineDep, ReadAccess
from api.schemas import AskRequest, ConversationAnswer, ErrorResponse, SearchRequest, SearchResponse
from rag.answer import answering
from rag.output import AskResponse, Passage

EXTRACTIVE_MODEL = "policy-rag-extractive"

router = APIRouter(prefix="/v1", tags=["search"], responses={422: {"model": ErrorResponse}},
                   dependencies=[ReadAccess])


@router.post("/search", response_model=SearchResponse)
async def search(req: SearchRequest, pipeline: PipelineDep) -> SearchResponse:
    """Hybrid (dense + BM25, RRF-fused) passage search with source spans."""
    t0 = time.perf_counter()
    hits, _ = await run_in_threadpool(pipeline.search, req.query, req.top_k, req.mode, None, req.filters())
    return SearchResponse(results=[Passage.from_hit(h) for h in hits],
                          took_ms=round((time.perf_counter() - t0) * 1000, 2))


@router.post("/ask", response_model=ConversationAnswer)
async def ask(req: AskRequest, request: Request, pipeline: PipelineDep) -> dict[str, Any]:
    """Extractive answer from the best supporting sentences, each with a [n] citation; or answerable=false.
    With ``history`` or ``conversation_id`` a follow-up is answered as its standalone rewrite (``query_used``)."""
    t0 = time.perf_counter()
    fu = await run_in_threadpool(followup.start, request, req.query, req.turns(), req.conversation_id)
    try:
        if fu.resolution.doc_ids:
            ans = await run_in_threadpool(answering.answer, fu.pipeline(pipeline), fu.query, req.top_k,
                                          "extractive", None, None, None, req.filters())
        else:
            ans = await run_in_threadpool(pipeline.ask, fu.query, req.top_k, req.filters())
    except Exception as e:
        fu.fail(EXTRACTIVE_MODEL, type(e).__name__)
        raise
    out = fu.merge(AskResponse.from_answer(ans, (time.perf_counter() - t0) * 1000).model_dump())
    fu.finish(out, EXTRACTIVE_MODEL)
    return out
