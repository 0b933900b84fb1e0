"""The MCP server (issue 18) through the SDK's own client against real servers: ``python -m api.mcp_stdio``
spawned over stdio, and the API app under uvicorn on loopback with MCP at ``/mcp`` (streamable HTTP).
The tools are checked on the seeds indexed with the real model (tests/conftest.seed_index: the extractive answer
needs it); keys and limits on the seeds indexed with the hash embedder (no model to load)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ROOT, SEEDS, start_server, stop_server

TOOLS = {"search", "ask", "list_documents", "get_document"}
QUESTION = "中国工程科技发展战略内蒙古研究院每年安排多少专项经费？"
DOC = "000_bcf499b72cb977fc.txt"
KEY_A, KEY_B = "mcp-test-key-a-0123456789", "mcp-test-key-b-0123456789"
LIMIT = 30  # requests per minute per key on the HTTP server
TIMEOUT = 600  # seconds: the machine is shared (a training job); a cold server start can take minutes
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mcp_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from embeddings.fake import HashEmbedder
    from rag.core.config import Settings
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    out = tmp_path_factory.mktemp("mcp_index")
    docs, _ = load_path(SEEDS)
    s = Settings()
    build_index(out, docs, HashEmbedder(), s.chunk_size, s.chunk_overlap)
    return out


def server_env(index: Path, embedder: str, **extra: str) -> dict[str, str]:
    return {"RAG_INDEX_DIR": str(index), "RAG_EMBEDDER": embedder, "RAG_READER": "rules", "RAG_LLM_BASE_URL": "",
            "RAG_RERANK": "none", "RAG_JUDGE": "none", "RAG_CONVERSATIONS_DB": str(index.parent / "mcp-c.db"),
            "RAG_JOBS_DIR": str(index.parent / "mcp-jobs"), **extra}


def stdio(index: Path, embedder: str = "hash", **env: str) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "api.mcp_stdio"],
                                   env=server_env(index, embedder, **env), cwd=str(ROOT))
    return Client(params, read_timeout_seconds=TIMEOUT)


def run(client: Client, body: Callable[[Client], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        with anyio.fail_after(TIMEOUT):
            async with client as c:
                return await body(c)

    return anyio.run(go)


def squeeze(text: str) -> str:
    return "".join(text.split())


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def check_tools(c: Client) -> None:
    """Every tool on the seeds: spans index into the document text, citations quote it, errors say what to do."""
    assert {t.name for t in (await c.list_tools()).tools} == TOOLS
    r = await c.call_tool("search", {"query": QUESTION, "top_k": 3})
    assert not r.is_error, text_of(r)
    hits = r.structured_content["results"]
    assert 1 <= len(hits) <= 3 and DOC in {h["doc_id"] for h in hits}
    d = await c.call_tool("get_document", {"doc_id": hits[0]["doc_id"]})
    assert not d.is_error, text_of(d)
    doc = d.structured_content
    assert doc["doc_id"] == hits[0]["doc_id"]
    assert squeeze(doc["text"][hits[0]["start"]:hits[0]["end"]]) == squeeze(hits[0]["text"])  # blank lines folded

    a = await c.call_tool("ask", {"query": QUESTION})
    assert not a.is_error, text_of(a)
    ans = a.structured_content
    assert ans["answerable"] and "1500万元" in ans["answer"] and ans["citations"]
    cite = ans["citations"][0]
    assert f"[{cite['n']}]" in ans["answer"]
    cited = (await c.call_tool("get_document", {"doc_id": cite["doc_id"]})).structured_content["text"]
    assert squeeze(cited[cite["quote_start"]:cite["quote_end"]]) == squeeze(cite["quote"])

    listed = (await c.call_tool("list_documents", {"limit": 2})).structured_content
    assert listed["total"] == 5 and len(listed["documents"]) == 2 and "text" not in listed["documents"][0]

    bad = await c.call_tool("get_document", {"doc_id": "no-such-doc.txt"})
    assert bad.is_error and "NotFoundError: no document 'no-such-doc.txt'" in text_of(bad)
    assert "list_documents" in text_of(bad)
    bad = await c.call_tool("search", {"query": QUESTION, "top_k": 0})
    assert bad.is_error and "InvalidRequest: top_k" in text_of(bad)
    bad = await c.call_tool("ask", {"query": "   "})
    assert bad.is_error and "query is empty" in text_of(bad)


# -- stdio ----------------------------------------------------------------------------------------------------
def test_stdio_tools(seed_index: Path) -> None:
    run(stdio(seed_index, "sbert"), check_tools)


def test_stdio_key_checked_and_calls_rate_limited(mcp_index: Path) -> None:
    keys = {"RAG_API_KEYS": json.dumps([KEY_A]), "RAG_READ_KEYS_REQUIRED": "true", "RAG_RATE_LIMIT_PER_MINUTE": "3"}

    async def three_then_refused(c: Client) -> list[Any]:
        return [await c.call_tool("list_documents", {}) for _ in range(4)]

    results = run(stdio(mcp_index, RAG_MCP_KEY=KEY_A, **keys), three_then_refused)
    assert [r.is_error for r in results] == [False, False, False, True]
    assert results[0].structured_content["total"] == 5
    assert "RateLimited: rate limit exceeded: retry in" in text_of(results[3])

    async def one(c: Client) -> Any:
        return await c.call_tool("search", {"query": QUESTION})

    refused = run(stdio(mcp_index, RAG_MCP_KEY="not-a-key", **keys), one)
    assert refused.is_error and "AccessDenied: the API key is not valid" in text_of(refused)


# -- streamable HTTP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http_server(seed_index: Path) -> Iterator[str]:
    env = server_env(seed_index, "sbert", RAG_API_KEYS=json.dumps([KEY_A, KEY_B]), RAG_READ_KEYS_REQUIRED="true",
                     RAG_RATE_LIMIT_PER_MINUTE=str(LIMIT))
    proc, base = start_server(seed_index, env, timeout=TIMEOUT)
    try:
        yield base
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def hash_http_server(mcp_index: Path) -> Iterator[str]:
    """A keyed server over the hash-embedder index: refusals need no model."""
    env = server_env(mcp_index, "hash", RAG_API_KEYS=json.dumps([KEY_A]), RAG_READ_KEYS_REQUIRED="true")
    proc, base = start_server(mcp_index, env, timeout=TIMEOUT)
    try:
        yield base
    finally:
        stop_server(proc)


def mcp_errors(e: BaseException) -> list[str]:
    """The MCPError messages in ``e`` (the client raises them inside its transport's task group)."""
    if isinstance(e, MCPError):
        return [str(e)]
    return [m for x in getattr(e, "exceptions", ()) for m in mcp_errors(x)]


def http(base: str, key: str | None) -> Client:
    headers = {"X-API-Key": key} if key else {}
    client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(TIMEOUT))
    return Client(streamable_http_client(f"{base}/mcp", http_client=client), read_timeout_seconds=TIMEOUT)


def test_http_tools(http_server: str) -> None:
    run(http(http_server, KEY_A), check_tools)


@pytest.mark.parametrize("key,status,message", [("not-a-key", 403, "AccessDenied: the API key is not valid"),
                                                (None, 401, "AccessDenied: this endpoint needs an API key")])
def test_http_refuses_bad_or_missing_key(hash_http_server: str, key: str | None, status: int,
                                         message: str) -> None:
    with pytest.raises(BaseException) as refused:
        run(http(hash_http_server, key), lambda c: c.list_tools())
    assert any(message in m for m in mcp_errors(refused.value)), refused.value
    # the same refusal on the wire: the HTTP status and a JSON-RPC error body
    headers = {"Accept": "application/json, text/event-stream", **({"X-API-Key": key} if key else {})}
    r = httpx.post(f"{hash_http_server}/mcp", headers=headers, timeout=60,
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
    assert r.status_code == status and message in r.json()["error"]["message"]


def test_http_rate_limit_is_the_v1_limit(http_server: str) -> None:
    """Key B's calls count against the same per-key limit as /v1: past it MCP says so, and /v1 answers 429."""

    async def until_refused(c: Client) -> tuple[int, str]:
        for n in range(1, LIMIT + 2):
            try:
                r = await c.call_tool("list_documents", {"limit": 1})
            except MCPError as e:
                return n, str(e)
            assert not r.is_error, text_of(r)
        return -1, ""

    n, message = run(http(http_server, KEY_B), until_refused)
    assert 1 < n <= LIMIT and "RateLimited: rate limit exceeded: retry in" in message, (n, message)
    r = httpx.get(f"{http_server}/v1/documents", headers={"X-API-Key": KEY_B}, timeout=60)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    r = httpx.get(f"{http_server}/v1/documents", headers={"X-API-Key": KEY_A}, timeout=60)
    assert r.status_code == 200  # another key's bucket
