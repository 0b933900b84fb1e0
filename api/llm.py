"""The app's one LLM client (created in the lifespan from settings) and SSE helpers for the answer routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from rag.answer.llm import OpenAICompatGenerator


def get_generator(request: Request) -> OpenAICompatGenerator | None:
    """``None`` when RAG_LLM_BASE_URL is empty: mode=llm then degrades to extractive with a warning."""
    return getattr(request.app.state, "llm", None)


GeneratorDep = Annotated[OpenAICompatGenerator | None, Depends(get_generator)]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {body}\n\n"
