"""OpenAI-compatible chatbot endpoint: POST /v1/chat/completions (and GET /v1/models).

The last user message is the question; the answer comes from rag.answer.answering (mode llm when an LLM is
configured, else extractive with a warning) and carries a ``citations`` field beside the OpenAI shape.
Streaming: ``data: {chat.completion.chunk}`` lines; the final chunk (finish_reason "stop") carries
``citations``, then ``data: [DONE]``. Extension fields: ``top_k``, ``mode`` and the search filters of /v1/ask
(``collection``, ``issuer``, ``doc_number``, ``as_of``, ``include_superseded``, …; extra_body in the clients).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from api import followup
from api.deps import PipelineDep, ReadAccess
from api.llm import SSE_HEADERS, GeneratorDep, sse
from api.schemas import ErrorResponse, FilterFields, has_control_chars
from rag.answer import answering
from rag.answer.conversation import Turn
from rag.core.errors import InvalidInputError
from rag.core.types import Answer
from rag.output import CitationOut

logger = logging.getLogger("api")
router = APIRouter(prefix="/v1", tags=["chat"], responses={422: {"model": ErrorResponse}},
                   dependencies=[ReadAccess])

EXTRACTIVE_MODEL = "policy-rag-extractive"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if isinstance(self.content, list):  # [{"type": "text", "text": ...}, ...]
            return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")
        return ""

    @model_validator(mode="after")
    def plain_text(self) -> ChatMessage:
        if has_control_chars(self.text()):
            raise ValueError("message content contains control characters: send plain text")
        return self


class ChatRequest(FilterFields):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send more (n, top_p, stream_options, user, ...)

    model: str = ""
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = Field(False, strict=True)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=8192, strict=True)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192, strict=True)
    top_k: int = Field(5, ge=1, le=100, strict=True, description="Passages to retrieve (extension)")
    mode: Literal["llm", "extractive"] = Field("llm", description="Extension: force the extractive answer")
    conversation_id: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{32}$",
                                        description="Extension: continue a stored conversation (its turns are "
                                                    "the history; the messages before the last are then ignored)")

    def query(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                q = m.text().strip()
                if q:
                    return q
        raise InvalidInputError("no user message with text: the last user message is the question")

    def history(self) -> list[Turn]:
        """The earlier user messages, each with the assistant reply after it (and the documents that reply
        cited, when the client sent its ``citations`` back): the follow-up is resolved against them."""
        last = max(i for i, m in enumerate(self.messages) if m.role == "user" and m.text().strip())
        turns: list[Turn] = []
        for m in self.messages[:last]:
            if m.role == "user" and m.text().strip():
                turns.append(Turn(m.text().strip()))
            elif m.role == "assistant" and turns and not turns[-1].answer:
                turns[-1].answer = m.text().strip()
                cites = (m.model_extra or {}).get("citations")
                if isinstance(cites, list):
                    turns[-1].doc_ids = [str(c["doc_id"]) for c in cites if isinstance(c, dict) and c.get("doc_id")]
        return turns


def _model(req: ChatRequest, generator: Any) -> str:
    return req.model or (generator.model if generator is not None else EXTRACTIVE_MODEL)


def _content(a: Answer) -> str:
    return a.text if a.answerable else a.message


def _extras(a: Answer, fu: followup.FollowUp | None = None) -> dict[str, Any]:
    out = {"citations": [CitationOut.from_citation(c).model_dump() for c in a.citations],
           "answerable": a.answerable, "short_answer": a.short_answer, "mode": a.mode, "warnings": a.warnings}
    if fu is None:
        return out
    out = fu.merge(out)
    fu.finish({**out, "answer": _content(a)}, _served(a, fu))
    return out


def _served(a: Answer, fu: followup.FollowUp) -> str:
    return fu.model if a.mode == "llm" else EXTRACTIVE_MODEL


@router.get("/models")
def models(request: Request) -> dict[str, Any]:
    """The model names this endpoint answers to (OpenAI shape)."""
    gen = getattr(request.app.state, "llm", None)
    names = [gen.model] if gen is not None else []
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "policy-rag"}
                                       for n in [*names, EXTRACTIVE_MODEL]]}


@router.post("/chat/completions",
             responses={200: {"content": {"text/event-stream": {}}, "description":
                              "chat.completion JSON (+ citations), or chunks when stream=true"}})
async def chat_completions(req: ChatRequest, request: Request,  # type: ignore[no-untyped-def]
                           pipeline: PipelineDep, generator: GeneratorDep):
    """OpenAI-compatible chat completion answering the last user message from the documents, cited. The
    earlier messages (or the stored ``conversation_id``) make a follow-up standalone: ``query_used``."""
    query = req.query()
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = _model(req, generator)
    max_tokens = req.max_tokens or req.max_completion_tokens
    fu = await run_in_threadpool(followup.start, request, query, req.history(), req.conversation_id)
    fu.model = generator.model if generator is not None else EXTRACTIVE_MODEL
    p = fu.pipeline(pipeline)
    try:
        if req.stream:
            events = await run_in_threadpool(answering.stream_answer, p, fu.query, req.top_k, req.mode,
                                             generator, req.temperature, max_tokens, req.filters())
            return StreamingResponse(_chunks(events, cid, created, model, fu), media_type="text/event-stream",
                                     headers=SSE_HEADERS)
        a = await run_in_threadpool(answering.answer, p, fu.query, req.top_k, req.mode, generator,
                                    req.temperature, max_tokens, req.filters())
    except Exception as e:
        fu.fail(model, type(e).__name__)
        raise
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(a)},
                         "finish_reason": "stop", "logprobs": None}],
            **_extras(a, fu)}


def _chunks(events: Iterator[answering.Event], cid: str, created: int, model: str,
            fu: followup.FollowUp | None = None) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    **extra})

    yield chunk({"role": "assistant", "content": ""})
    streamed: list[str] = []
    try:
        for kind, payload in events:
            if kind == "token":
                streamed.append(payload)
                yield chunk({"content": payload})
            elif kind == "done":
                assert isinstance(payload, Answer)
                final, sent = _content(payload), "".join(streamed)
                if payload.mode != "llm" and sent.strip() != final.strip():
                    # the LLM broke mid-stream: what was sent is superseded by the extractive answer
                    yield chunk({"content": "\n\n" + final})
                yield chunk({}, "stop", **_extras(payload, fu))
    except Exception:  # the status line is gone: end the stream in-band
        logger.exception("chat stream failed")
        if fu is not None:
            fu.fail(model, "stream failed")
        yield chunk({}, "stop", citations=[], warnings=["internal error; see server log"])
    yield "data: [DONE]\n\n"
