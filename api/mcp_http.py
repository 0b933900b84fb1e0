"""MCP over streamable HTTP at ``/mcp`` of the API app (issue 18): the tools of api/mcp_tools.py, served by the
same process, so the model and index loaded in the app's lifespan, the keys and the rate limiter are shared.

* Stateless and JSON responses (no ``Mcp-Session-Id``, no server-held stream): any replica behind the proxy can
  answer any request, as for ``/v1``.
* Every request to ``/mcp`` passes the ``/v1`` read guard (api/deps.require_read): the key from ``X-API-Key`` or
  ``Authorization: Bearer``, 401/403 for a missing or bad one, and one hit of the caller's rate limit (429 with
  ``Retry-After`` past it; failed authentications count against the client address). A refusal is a JSON-RPC
  error body with the HTTP status, so an MCP client shows its message.
* Host-header checks (the SDK's DNS-rebinding guard) only when no key is configured: then only loopback names
  are accepted. With keys the key decides, as for ``/v1``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api import deps, mcp_tools
from api.security import AuthError
from rag.core.config import Settings

PATH = "/mcp"
INSTRUCTIONS = ("Policy documents (公文, regulations, notices), Chinese first. Use search for passages, ask for a "
                "cited extractive answer (answerable=false when the documents hold none), list_documents and "
                "get_document to read a source; citation spans (start, end) index into the document text.")
# JSON-RPC server-error codes for a refusal before any method runs (the HTTP status says the same)
AUTH_CODES = {401: -32001, 403: -32003, 429: -32029}


def keys_configured(s: Settings) -> bool:
    return bool(s.api_keys or s.keys_file or s.principals or s.jwt_jwks_file)


def transport_security(s: Settings) -> TransportSecuritySettings:
    if keys_configured(s):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])


def http_request(ctx: Context) -> Request:
    request = ctx.request_context.request
    if not isinstance(request, Request):
        raise ToolError("InternalError: no HTTP request behind this tool call")
    return request


def create_server(request_for: mcp_tools.RequestFor, lifespan: Any = None) -> MCPServer[Any]:
    from rag import __version__

    root = logging.getLogger()
    guard = logging.NullHandler()  # MCPServer() calls logging.basicConfig: it must not configure our root logger
    root.addHandler(guard)
    try:
        server: MCPServer[Any] = MCPServer("policy-rag", title="Policy RAG", version=__version__,
                                           instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING")
    finally:
        root.removeHandler(guard)
    return mcp_tools.register(server, request_for)


class McpEndpoint:
    """The ASGI endpoint mounted at ``/mcp`` (a Starlette route keeps ``scope["app"]``: the API app, whose state
    the guard and the tools read). ``running()`` goes in the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.server = create_server(http_request)
        self.security = transport_security(settings)
        self.handler: StreamableHTTPASGIApp | None = None

    def route(self) -> Route:
        return Route(PATH, self, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """A new session manager per lifespan (one can run only once; an app's lifespan may run again)."""
        self.server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                                        transport_security=self.security)
        handler = StreamableHTTPASGIApp(self.server.session_manager)
        async with self.server.session_manager.run():
            self.handler = handler
            try:
                yield
            finally:
                self.handler = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            deps.require_read(Request(scope))  # sets request.state.principal: the tools read it
        except AuthError as e:
            await refuse(send, e)
            return
        if self.handler is None:  # outside the app's lifespan
            await refuse(send, AuthError(503, "the MCP endpoint is not running (the app has not started)"))
            return
        await self.handler(scope, receive, send)


async def refuse(send: Send, e: AuthError) -> None:
    kind = {429: "RateLimited", 503: "Unavailable"}.get(e.status, "AccessDenied")
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
        "code": AUTH_CODES.get(e.status, -32000), "message": f"{kind}: {e.message}",
        "data": {"status": e.status}}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
    await send({"type": "http.response.start", "status": e.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
