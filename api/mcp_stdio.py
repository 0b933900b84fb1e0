"""MCP over stdio (issue 18): ``rag-mcp`` / ``python -m api.mcp_stdio``, for an agent that starts the server
itself (Claude Desktop, an IDE, ``mcp`` clients). The same tools as ``/mcp`` (api/mcp_tools.py) over the index
in RAG_INDEX_DIR, with the same settings (RAG_*).

Keys and limits: the caller's key comes from ``RAG_MCP_KEY`` (the client's config sets it in the server's
environment) and is checked against the server's keys (RAG_API_KEYS, RAG_KEYS_FILE, RAG_PRINCIPALS, JWTs) on
every tool call exactly as ``X-API-Key`` is on ``/v1``: a bad key is refused, a scoped key sees only its
collections, and each call counts against RAG_RATE_LIMIT_PER_MINUTE (one limiter per server process).

The model and index load in the server's lifespan (after the client connected), never at import; stdout is
the protocol, so logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from starlette.datastructures import State
from starlette.requests import Request
from starlette.types import Scope

from api import access
from api.mcp_http import create_server
from api.security import RateLimiter
from rag.core import errors
from rag.core.config import Settings
from rag.pipeline import Pipeline

logger = logging.getLogger("api")
KEY_ENV = "RAG_MCP_KEY"


class StdioApp:
    """What the access checks read from ``request.app``: its ``state`` (settings, keys, limiter, pipeline)."""

    def __init__(self, settings: Settings, key: str) -> None:
        self.state = State()
        self.state.settings = settings
        self.state.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.state.load_error = "index not loaded yet"
        self.state.pipeline = Pipeline(settings)
        access.setup(self.state, settings)  # a keys file that does not parse stops the server here
        self.key = key

    def request(self, _: Context | None = None) -> Request:
        """A fresh request per tool call, carrying the configured key as ``X-API-Key``: the guard authenticates
        it and counts the call (api/mcp_tools.open_pipeline)."""
        headers = [(b"x-api-key", self.key.encode("utf-8", "surrogateescape"))] if self.key else []
        scope: Scope = {"type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp", "query_string": b"",
                        "headers": headers, "client": ("stdio", 0), "server": None, "scheme": "stdio",
                        "app": self, "state": {}}
        return Request(scope)

    @asynccontextmanager
    async def lifespan(self, _: MCPServer[Any]) -> AsyncIterator[None]:
        from starlette.concurrency import run_in_threadpool

        p: Pipeline = self.state.pipeline
        try:
            await run_in_threadpool(p.load)
            self.state.load_error = ""
            logger.info("ready: %d chunks from %s", p.index.size if p.index else 0, p.settings.index_dir)
        except (errors.IndexNotFoundError, errors.IndexCorruptError) as e:
            # serve: every tool answers IndexNotFoundError with this message until an index exists
            self.state.load_error = e.message
            logger.error("not ready: %s", e.message)
        yield


def create(settings: Settings, key: str) -> MCPServer[Any]:
    app = StdioApp(settings, key)
    return create_server(app.request, lifespan=app.lifespan)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rag-mcp", description=__doc__.split("\n")[0])
    ap.add_argument("--index-dir", type=Path, help="index folder (default RAG_INDEX_DIR)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {"index_dir": args.index_dir} if args.index_dir else {}
    try:
        server = create(Settings(**overrides), os.environ.get(KEY_ENV, ""))
    except errors.ConfigError as e:
        sys.stderr.write(f"error: {e.message}\n")
        return 2
    server.run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
