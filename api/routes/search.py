from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import PipelineDep, ReadAccess
from api.schemas import AskRequest, ErrorResponse, SearchRequest, SearchResponse
from rag.output import AskResponse, Passage

router = APIRouter(prefix="/v1", tags=["search"], responses={422: {"model": ErrorResponse}},
                   dependencies=[ReadAccess])


@router.post("/search", response_model=SearchResponse)
async def search(req: SearchRequest, pipeline: PipelineDep) -> SearchResponse:
    """Hybrid (dense + BM25, RRF-fused) passage search with source spans."""
    t0 = time.perf_counter()
    hits, _ = await run_in_threadpool(pipeline.search, req.query, req.top_k, req.mode, None, req.filters())
    return SearchResponse(results=[Passage.from_hit(h) for h in hits],
                          took_ms=round((time.perf_counter() - t0) * 1000, 2))


@router.post("/ask", response_model=AskResponse)
async def ask(req: AskRequest, pipeline: PipelineDep) -> AskResponse:
    """Extractive answer from the best supporting sentences, each with a [n] citation; or answerable=false."""
    t0 = time.perf_counter()
    ans = await run_in_threadpool(pipeline.ask, req.query, req.top_k, req.filters())
    return AskResponse.from_answer(ans, (time.perf_counter() - t0) * 1000)
