"""POST /v1/answer: extractive or LLM answer with verified citations; JSON or server-sent events."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api.deps import PipelineDep, ReadAccess
from api.llm import SSE_HEADERS, GeneratorDep, sse
from api.schemas import ErrorResponse, SearchRequest
from rag.answer import answering
from rag.core.types import Answer
from rag.output import AskResponse, CitationOut

logger = logging.getLogger("api")
router = APIRouter(prefix="/v1", tags=["answer"], responses={422: {"model": ErrorResponse}},
                   dependencies=[ReadAccess])


class AnswerRequest(SearchRequest):
    mode: Literal["extractive", "llm"] = Field(  # type: ignore[assignment]
        "llm", description="llm: LLM answer with verified citations (degrades to extractive); extractive: "
                           "the best supporting sentences")
    stream: bool = Field(False, strict=True, description="Server-sent events: token*, citations, done")


def answer_events(events: Iterator[answering.Event], t0: float) -> Iterator[str]:
    """``event: token`` {text}, ``event: citations`` {citations}, ``event: done`` (AskResponse JSON)."""
    try:
        for kind, payload in events:
            if kind == "token":
                yield sse({"text": payload}, "token")
            elif kind == "citations":
                yield sse({"citations": [CitationOut.from_citation(c).model_dump() for c in payload]},
                          "citations")
            elif kind == "done":
                assert isinstance(payload, Answer)
                yield sse(AskResponse.from_answer(payload, (time.perf_counter() - t0) * 1000).model_dump(),
                          "done")
    except Exception:  # the status line is gone: report in-band
        logger.exception("answer stream failed")
        yield sse({"error": "InternalError", "message": "internal error; see server log"}, "error")


@router.post("/answer", response_model=AskResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "AskResponse JSON, or SSE events when stream=true"}})
async def answer(req: AnswerRequest, pipeline: PipelineDep, generator: GeneratorDep):  # type: ignore[no-untyped-def]
    """Answer with [n] citations checked against passage n, or answerable=false when retrieval finds no
    evidence (decided before any LLM call). LLM failures degrade to the extractive answer plus a warning."""
    t0 = time.perf_counter()
    if req.stream:
        events = await run_in_threadpool(answering.stream_answer, pipeline, req.query, req.top_k, req.mode,
                                         generator, None, None, req.filters())
        return StreamingResponse(answer_events(events, t0), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    ans = await run_in_threadpool(answering.answer, pipeline, req.query, req.top_k, req.mode, generator,
                                  None, None, req.filters())
    return AskResponse.from_answer(ans, (time.perf_counter() - t0) * 1000)
