"""POST /v1/answer: extractive or LLM answer with verified citations; JSON or server-sent events."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from api import followup
from api.deps import PipelineDep, ReadAccess
from api.llm import SSE_HEADERS, GeneratorDep, sse
from api.schemas import ConversationAnswer, ConversationFields, ErrorResponse, SearchRequest
from rag.answer import answering
from rag.core.types import Answer
from rag.output import AskResponse, CitationOut

logger = logging.getLogger("api")
EXTRACTIVE_MODEL = "policy-rag-extractive"
router = APIRouter(prefix="/v1", tags=["answer"], responses={422: {"model": ErrorResponse}},
                   dependencies=[ReadAccess])


class AnswerRequest(SearchRequest, ConversationFields):
    mode: Literal["extractive", "llm"] = Field(  # type: ignore[assignment]
        "llm", description="llm: LLM answer with verified citations (degrades to extractive); extractive: "
                           "the best supporting sentences")
    stream: bool = Field(False, strict=True, description="Server-sent events: token*, citations, done")


def answer_events(events: Iterator[answering.Event], t0: float, fu: followup.FollowUp | None = None,
                  model: str = "") -> Iterator[str]:
    """``event: token`` {text}, ``event: citations`` {citations}, ``event: done`` (AskResponse JSON, with the
    conversation fields when ``fu`` is given; the turn is stored then)."""
    try:
        for kind, payload in events:
            if kind == "token":
                yield sse({"text": payload}, "token")
            elif kind == "citations":
                yield sse({"citations": [CitationOut.from_citation(c).model_dump() for c in payload]},
                          "citations")
            elif kind == "done":
                assert isinstance(payload, Answer)
                out = AskResponse.from_answer(payload, (time.perf_counter() - t0) * 1000).model_dump()
                if fu is not None:
                    out = fu.merge(out)
                    fu.finish(out, model if payload.mode == "llm" else EXTRACTIVE_MODEL)
                yield sse(out, "done")
    except Exception:  # the status line is gone: report in-band
        logger.exception("answer stream failed")
        if fu is not None:
            fu.fail(model, "stream failed")
        yield sse({"error": "InternalError", "message": "internal error; see server log"}, "error")


@router.post("/answer", response_model=ConversationAnswer,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "AskResponse JSON, or SSE events when stream=true"}})
async def answer(req: AnswerRequest, request: Request, pipeline: PipelineDep,  # type: ignore[no-untyped-def]
                 generator: GeneratorDep):
    """Answer with [n] citations checked against passage n, or answerable=false when retrieval finds no
    evidence (decided before any LLM call). LLM failures degrade to the extractive answer plus a warning.
    With ``history`` or ``conversation_id`` a follow-up is answered as its standalone rewrite (``query_used``)."""
    t0 = time.perf_counter()
    fu = await run_in_threadpool(followup.start, request, req.query, req.turns(), req.conversation_id)
    model = generator.model if generator is not None else EXTRACTIVE_MODEL
    p = fu.pipeline(pipeline)
    try:
        if req.stream:
            events = await run_in_threadpool(answering.stream_answer, p, fu.query, req.top_k, req.mode,
                                             generator, None, None, req.filters())
            return StreamingResponse(answer_events(events, t0, fu, model), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
        ans = await run_in_threadpool(answering.answer, p, fu.query, req.top_k, req.mode, generator,
                                      None, None, req.filters())
    except Exception as e:
        fu.fail(model, type(e).__name__)
        raise
    out: dict[str, Any] = fu.merge(AskResponse.from_answer(ans, (time.perf_counter() - t0) * 1000).model_dump())
    fu.finish(out, model if ans.mode == "llm" else EXTRACTIVE_MODEL)
    return out
