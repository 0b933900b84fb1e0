"""The MCP tools (issue 18): ``search``, ``ask`` (extractive, with citations), ``list_documents``, ``get_document``.

Each tool runs the same code as its HTTP route (``POST /v1/search``, ``POST /v1/ask``, ``GET /v1/documents``,
``GET /v1/documents/{id}``) on the pipeline as the caller's principal sees it (api/scoped.py), and returns the
same JSON shape (as MCP structured content). What differs is how a tool finds its caller: ``request_for(ctx)``
gives the Starlette request the access checks read, the real one over streamable HTTP (api/mcp_http.py, already
authenticated and counted against the rate limit there) or one made per call from the key in the environment
over stdio (api/mcp_stdio.py, authenticated and counted here, per call).

Failures come back as MCP tool errors (``isError``) whose text names the error and what to do, e.g.
``NotFoundError: no document 'x': call list_documents for the ids``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api import deps
from api.routes import documents
from api.schemas import SearchRequest, SearchResponse
from api.security import AuthError
from rag.core.errors import RagError
from rag.output import AskResponse, Passage
from rag.pipeline import Pipeline

logger = logging.getLogger("api")
RequestFor = Callable[[Context], Request]
P = ParamSpec("P")
R = TypeVar("R")
READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


def validation_message(e: ValidationError) -> str:
    """The one-line form the HTTP API's 422 uses: ``field: message; ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in x.get('loc', ())) or 'arguments'}: {x.get('msg', '')}"
                     for x in e.errors())


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Typed errors -> a ToolError whose text the calling model can act on; anything else is logged and
    reported as an internal error (no traceback text leaves the server)."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except AuthError as e:
            raise ToolError(f"{'RateLimited' if e.status == 429 else 'AccessDenied'}: {e.message}") from None
        except RagError as e:
            raise ToolError(f"{type(e).__name__}: {e.message}") from None
        except ValidationError as e:
            raise ToolError(f"InvalidRequest: {validation_message(e)}") from None
        except Exception:
            logger.exception("MCP tool %s failed", fn.__name__)
            raise ToolError("InternalError: internal error; see server log") from None

    return run


def open_pipeline(request_for: RequestFor, ctx: Context) -> Pipeline:
    """The pipeline as the caller sees it; authenticates (and counts the call) when the transport did not."""
    request = request_for(ctx)
    if getattr(request.state, "principal", None) is None:
        deps.require_read(request)  # AuthError 401/403, or 429 past the rate limit: same rules as /v1
    return deps.get_pipeline(request)  # IndexNotFoundError (503 over HTTP) until an index is loaded


def _filters(query: str, top_k: int, mode: str, collection: str | None, doc_ids: list[str] | None) -> SearchRequest:
    return SearchRequest(query=query, top_k=top_k, mode=mode, collection=collection, doc_ids=doc_ids)  # type: ignore[arg-type]


def register(server: MCPServer[Any], request_for: RequestFor) -> MCPServer[Any]:
    """Add the four tools to ``server``; ``request_for`` maps a tool call's context to its request."""

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def search(query: str, ctx: Context, top_k: int = 5, mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
                     collection: str | None = None, doc_ids: list[str] | None = None) -> SearchResponse:
        """Find the passages of the policy documents that best match a question or keywords (hybrid: dense +
        BM25, RRF-fused). Each passage has doc_id, title, article path and its character span (start, end) in
        the document's text (get_document). Optional: only one collection, or only some doc_ids."""
        req = _filters(query, top_k, mode, collection, doc_ids)
        pipeline = open_pipeline(request_for, ctx)
        t0 = time.perf_counter()
        hits, _ = await run_in_threadpool(pipeline.search, req.query, req.top_k, req.mode, None, req.filters())
        return SearchResponse(results=[Passage.from_hit(h) for h in hits],
                              took_ms=round((time.perf_counter() - t0) * 1000, 2))

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def ask(query: str, ctx: Context, top_k: int = 5, collection: str | None = None,
                  doc_ids: list[str] | None = None) -> AskResponse:
        """Answer a question from the policy documents: the supporting sentences with [n] markers, each [n]
        a citation (doc_id, title, article, quote and its span in the document), or answerable=false with the
        reason when the documents hold no answer. Extractive: nothing is generated that is not in a source."""
        req = _filters(query, top_k, "hybrid", collection, doc_ids)
        pipeline = open_pipeline(request_for, ctx)
        t0 = time.perf_counter()
        ans = await run_in_threadpool(pipeline.ask, req.query, req.top_k, req.filters())
        return AskResponse.from_answer(ans, (time.perf_counter() - t0) * 1000)

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def list_documents(ctx: Context, collection: str | None = None, offset: int = 0,
                             limit: int = 100) -> documents.DocumentList:
        """The documents you may read (without their text): doc_id, title, collection, 文号 and dates, status
        (in_force | superseded | expired | not_yet_effective), chunks. ``total`` counts them all; page with
        offset and limit (at most 1000)."""
        if offset < 0 or not 1 <= limit <= 1000:
            raise ToolError("InvalidRequest: offset must be >= 0 and limit between 1 and 1000")
        pipeline = open_pipeline(request_for, ctx)
        out = await run_in_threadpool(documents.list_documents, pipeline, collection)
        return documents.DocumentList(documents=out.documents[offset:offset + limit], total=out.total)

    @server.tool(annotations=READ_ONLY)
    @tool_errors
    async def get_document(doc_id: str, ctx: Context) -> documents.DocumentOut:
        """One document with its full text and metadata; the (start, end) spans of search passages and ask
        citations index into ``text``."""
        pipeline = open_pipeline(request_for, ctx)
        assert pipeline.index is not None
        if doc_id not in pipeline.index.documents:
            raise ToolError(f"NotFoundError: no document {doc_id[:100]!r}: call list_documents for the ids")
        return await run_in_threadpool(documents.get_document, doc_id, pipeline)

    return server
