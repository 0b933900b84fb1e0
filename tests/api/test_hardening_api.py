"""Hardening of the HTTP layer (issue 21): same-origin writes without keys (4), LLM calls that cannot starve
search (5), body limits on the bytes actually read (7), rate limits keyed on validated keys and failed
authentication throttled (8), and the minor items (control characters, strict ints, the Dify key compare,
HEAD probes, security headers).

The app is the real one (``api.main.create_app``) over the seed documents indexed with the hash embedder (fast,
no model); served by FastAPI's TestClient, or by uvicorn in a thread on 127.0.0.1 where the socket matters
(chunked bodies sent byte by byte, concurrent requests). The LLM is a server on 127.0.0.1 that never answers.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from rag.core.config import Settings
from rag.core.types import Answer
from tests.conftest import ROOT, SEEDS, free_port

KEY = "hardening-key-1"
BASE = "http://127.0.0.1:8000"  # what TestClient sends as Host (an IP literal: not a DNS-rebinding name)
SAME_ORIGIN = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
CROSS_SITE = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
WEB = ROOT / "api" / "web"


# --- app, servers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from embeddings.fake import HashEmbedder
    from rag.index.build import build_index
    from rag.ingest.loaders import load_path

    out = tmp_path_factory.mktemp("hardening_index")
    docs, failures = load_path(SEEDS)
    assert not failures
    s = Settings()
    build_index(out, docs, HashEmbedder(), s.chunk_size, s.chunk_overlap)
    return out


def settings_for(index: Path, tmp: Path, **kw: Any) -> Settings:
    target = tmp / f"index-{len(list(tmp.glob('index-*')))}"
    shutil.copytree(index, target, symlinks=True)
    base: dict[str, Any] = {"index_dir": target, "embedder": "hash", "reader": "rules", "rate_limit_per_minute": 0,
                            "llm_base_url": "", "api_keys": [], "read_keys_required": False, "cors_origins": [],
                            "dify_api_key": ""}
    return Settings(**{**base, **kw})


@pytest.fixture
def make_client(hash_index: Path, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**kw: Any) -> TestClient:
        c = TestClient(create_app(settings_for(hash_index, tmp_path, **kw)), base_url=BASE)
        clients.append(c.__enter__())
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@contextmanager
def serve(app: FastAPI) -> Iterator[tuple[str, int]]:
    """uvicorn in a thread on a free loopback port (stopped on exit)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        t.join(15)


def upload(name: str, text: str, **data: str) -> dict[str, Any]:
    return {"files": {"files": (name, text.encode(), "text/plain")}, "data": data}


# --- 4. same-origin writes in no-key mode -------------------------------------------------------------------
def test_cross_site_form_post_cannot_write(make_client):
    c = make_client()
    doc = c.get("/v1/documents").json()["documents"][0]["doc_id"]
    before = c.get(f"/v1/documents/{doc}").json()["text"]
    # what a hostile page's <form enctype="multipart/form-data" method="post"> sends (no preflight)
    r = c.post("/v1/documents", headers=CROSS_SITE, **upload(doc, "已被替换的内容。", doc_id=doc))
    assert r.status_code == 403, r.text
    assert "cross-site" in r.json()["message"] and "RAG_API_KEYS" in r.json()["message"]
    assert c.get(f"/v1/documents/{doc}").json()["text"] == before
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"},
                    {"Origin": "http://127.0.0.1:9999"},  # another port on this machine: another origin
                    # DNS rebinding: the page's own name, pointed at this machine, as Origin and Host
                    {"Origin": "http://evil.example:8000", "Host": "evil.example:8000"}):
        assert c.post("/v1/documents", headers=headers, **upload("x.txt", "正文内容。")).status_code == 403, headers
    assert c.delete(f"/v1/documents/{doc}", headers=CROSS_SITE).status_code == 403
    assert c.put(f"/v1/documents/{doc}", headers=CROSS_SITE,
                 files={"file": (doc, "替换。".encode(), "text/plain")}).status_code == 403
    assert c.get(f"/v1/documents/{doc}").status_code == 200
    # the page on this server, and scripts (no Origin, no Sec-Fetch-Site), still write
    r = c.post("/v1/documents", headers=SAME_ORIGIN, **upload("same-origin.txt", "同源页面上传的文件内容。"))
    assert r.status_code == 201 and r.json()["added"] == ["same-origin.txt"], r.text
    r = c.post("/v1/documents", headers={"Origin": "http://localhost:8000", "Host": "localhost:8000"},
               **upload("localhost.txt", "本机页面上传的文件内容。"))
    assert r.status_code == 201, r.text
    assert c.post("/v1/documents", **upload("curl.txt", "脚本上传的文件内容。")).status_code == 201
    assert c.delete("/v1/documents/curl.txt", headers=SAME_ORIGIN).status_code == 200
    # reads are not writes: a cross-site page may search (CORS decides whether it can read the reply)
    assert c.post("/v1/search", json={"query": "科技"}, headers=CROSS_SITE).status_code == 200


def test_listed_cors_origin_may_write_and_keys_mode_is_unchanged(make_client):
    c = make_client(cors_origins=["http://app.example"])
    r = c.post("/v1/documents", headers={"Origin": "http://app.example", "Sec-Fetch-Site": "cross-site"},
               **upload("cors.txt", "允许的来源上传的文件内容。"))
    assert r.status_code == 201, r.text
    assert c.post("/v1/documents", headers=CROSS_SITE, **upload("x.txt", "正文。")).status_code == 403
    k = make_client(api_keys=[KEY])  # with keys a page cannot send X-API-Key cross-site without CORS
    r = k.post("/v1/documents", headers={**CROSS_SITE, "X-API-Key": KEY}, **upload("key.txt", "带密钥上传的内容。"))
    assert r.status_code == 201, r.text


# --- 8. rate-limit identity and failed authentication ---------------------------------------------------------
def test_random_keys_do_not_reset_the_read_limit(make_client):
    c = make_client(rate_limit_per_minute=5)
    codes = [c.post("/v1/search", json={"query": "科技"}, headers={"X-API-Key": f"random-{i}"}).status_code
             for i in range(8)]
    assert codes == [200] * 5 + [429] * 3, codes


def test_failed_authentication_is_throttled(make_client):
    c = make_client(api_keys=[KEY], rate_limit_per_minute=5)
    codes = [c.post("/v1/documents", headers={"X-API-Key": f"guess-{i}"}, **upload("g.txt", "猜测。")).status_code
             for i in range(8)]
    assert codes == [403] * 5 + [429] * 3, codes
    r = c.post("/v1/documents", headers={"X-API-Key": "guess"}, **upload("g.txt", "猜测。"))
    assert r.status_code == 429 and r.json()["error"] == "RateLimited" and 1 <= int(r.headers["retry-after"]) <= 61
    assert c.delete("/v1/documents/x.txt").status_code == 429  # missing keys (401) count too
    # a valid key has its own bucket: the address's failures do not lock its owner out
    assert c.post("/v1/search", json={"query": "科技"}, headers={"X-API-Key": KEY}).status_code == 200
    r = c.post("/v1/documents", headers={"X-API-Key": KEY}, **upload("ok.txt", "有效密钥上传的内容。"))
    assert r.status_code == 201, r.text


def test_non_ascii_keys_are_refused_not_500(make_client):
    c = make_client(api_keys=[KEY], dify_api_key="dify-key")
    r = c.post("/v1/documents", headers={"X-API-Key": "clé-é".encode("latin-1")}, **upload("a.txt", "正文。"))
    assert r.status_code == 403, r.text
    r = c.post("/retrieval", json={"query": "科技"}, headers={"Authorization": "Bearer clé".encode("latin-1")})
    assert r.status_code == 403 and r.json()["error_code"] == 1002, r.text


def test_dify_failed_authentication_is_throttled(make_client):
    c = make_client(dify_api_key="dify-key", rate_limit_per_minute=4)
    codes = [c.post("/retrieval", json={"query": "科技"}, headers={"Authorization": f"Bearer no-{i}"}).status_code
             for i in range(6)]
    assert codes == [403] * 4 + [429] * 2, codes
    assert c.post("/retrieval", json={"query": "科技"},
                  headers={"Authorization": "Bearer dify-key"}).status_code == 200


# --- 7. body limits on the bytes read -----------------------------------------------------------------------
def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def send_chunked_until_answered(port: int, head: bytes, body: Iterator[bytes], timeout: float = 10) -> bytes:
    """Send ``head`` then ``body`` as HTTP chunks, one at a time, stopping as soon as the server answers; the
    terminating chunk is never sent, so only a server that counts what it reads can answer. Returns the
    response (up to the connection's end or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        end = time.monotonic() + timeout
        for part in body:
            if select.select([s], [], [], 0.01)[0]:
                break
            s.sendall(_chunk(part))
        out = b""
        while time.monotonic() < end:
            if not select.select([s], [], [], max(0.0, end - time.monotonic()))[0]:
                break
            got = s.recv(65536)
            if not got:
                break
            out += got
            if b"\r\n\r\n" in out and out.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
                break
        return out


def _head(path: str, ctype: str, host: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()


def test_chunked_json_over_the_limit_is_413_while_reading(hash_index, tmp_path):
    app = create_app(settings_for(hash_index, tmp_path, max_body_kb=64))
    with serve(app) as (base, port):
        pieces = (b'{"messages": [{"role": "user", "content": "' if i == 0 else b"x" * 8192 for i in range(400))
        out = send_chunked_until_answered(port, _head("/v1/chat/completions", "application/json", f"127.0.0.1:{port}"),
                                          pieces)
        assert out.startswith(b"HTTP/1.1 413"), out[:300]
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        assert body["error"] == "TooLarge" and "request body over 65536 bytes" in body["message"]
        # a chunked body under the limit is served as usual
        ok = httpx.post(f"{base}/v1/search", headers={"content-type": "application/json"}, timeout=30,
                        content=iter([b'{"query": ', '"科技创新", '.encode(), b'"top_k": 2}']))
        assert ok.status_code == 200 and len(ok.json()["results"]) == 2, ok.text


def test_chunked_multipart_upload_over_the_limit_is_413_while_reading(hash_index, tmp_path):
    app = create_app(settings_for(hash_index, tmp_path, max_upload_mb=0.1))  # 104857 + 65536 bytes
    with serve(app) as (base, port):
        boundary = "hardening-boundary"
        start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n"
                 "Content-Type: text/plain\r\n\r\n").encode()
        pieces = (start if i == 0 else "政策文件内容。".encode() * 400 for i in range(2000))  # ~17 MB offered
        out = send_chunked_until_answered(
            port, _head("/v1/documents", f"multipart/form-data; boundary={boundary}", f"127.0.0.1:{port}"), pieces)
        assert out.startswith(b"HTTP/1.1 413"), out[:300]
        assert b"request body over 170393 bytes" in out
        docs = httpx.get(f"{base}/v1/documents", timeout=30).json()["documents"]
        assert "big.txt" not in {d["doc_id"] for d in docs}


# --- 5. LLM calls cannot starve search ----------------------------------------------------------------------
class Answerable:
    """The real pipeline, except that every question counts as answerable (so mode=llm calls the LLM)."""

    def __init__(self, p: Any) -> None:
        self._p = p

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def extractive(self, q, qvec, hits, timings):  # type: ignore[no-untyped-def]
        return Answer("摘录的回答。[1]", True, [], hits)


@pytest.fixture
def silent_llm() -> Iterator[str]:
    """Accepts connections, reads requests, never answers."""
    stop = threading.Event()
    srv = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    stop.set()
    t.join(2)
    for c in conns:
        c.close()
    srv.close()


def test_stalled_llm_cannot_starve_search(hash_index, tmp_path, silent_llm):
    from rag.pipeline import Pipeline

    s = settings_for(hash_index, tmp_path, llm_base_url=silent_llm, llm_timeout=20, llm_retries=2,
                     llm_deadline=3, llm_concurrency=2, llm_slot_wait=0.5)
    app = create_app(s, pipeline=Answerable(Pipeline(s)))  # type: ignore[arg-type]
    n = 45  # more than the server's 40 worker threads
    with serve(app) as (base, port), ThreadPoolExecutor(n + 1) as pool:
        ask = [pool.submit(httpx.post, f"{base}/v1/answer", json={"query": "科技创新", "mode": "llm"}, timeout=30)
               for _ in range(n)]
        time.sleep(0.2)
        t0 = time.monotonic()
        r = httpx.post(f"{base}/v1/search", json={"query": "科技创新"}, timeout=10)
        search_s = time.monotonic() - t0
        answers = [f.result() for f in ask]
    assert r.status_code == 200 and search_s < 2.5, f"search took {search_s:.1f} s"
    assert {a.status_code for a in answers} == {200}
    warnings = [a.json()["warnings"] for a in answers]
    assert all(a.json()["mode"] == "extractive" and a.json()["answer"] == "摘录的回答。[1]" for a in answers)
    busy = sum("busy" in w[0] for w in warnings)
    late = sum("deadline" in w[0] for w in warnings)
    assert busy >= n - 2 * 2 and busy + late == n, warnings
    assert not any("127.0.0.1" in w[0] or silent_llm in w[0] for w in warnings)


# --- minor: control characters, strict ints, HEAD probes, security headers -----------------------------------
def test_chat_and_dify_reject_control_characters(make_client):
    c = make_client()
    for text in ("税收\x00优惠", "税收\x1b[2J优惠"):
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": text}],
                                                 "mode": "extractive"})
        assert r.status_code == 422 and "control" in r.json()["message"], r.text
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
            {"type": "text", "text": text}]}], "mode": "extractive"})
        assert r.status_code == 422, r.text
        r = c.post("/retrieval", json={"query": text})
        assert r.status_code == 422 and "control" in r.json()["message"], r.text
    r = c.post("/retrieval", json={"query": "  "})
    assert r.status_code == 422 and "empty" in r.json()["message"]
    assert c.post("/retrieval", json={"query": "科技\n创新\t"}).status_code == 200


@pytest.mark.parametrize("bad", ["5", True, 5.0])
def test_top_k_must_be_a_json_integer(make_client, bad):
    c = make_client()
    for path, body in (("/v1/search", {"query": "科技", "top_k": bad}),
                       ("/v1/ask", {"query": "科技", "top_k": bad}),
                       ("/v1/answer", {"query": "科技", "mode": "extractive", "top_k": bad}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "科技"}], "top_k": bad}),
                       ("/retrieval", {"query": "科技", "retrieval_setting": {"top_k": bad}})):
        r = c.post(path, json=body)
        assert r.status_code == 422 and "top_k" in r.json()["message"], (path, r.text)
    assert c.post("/v1/answer", json={"query": "科技", "stream": "true"}).status_code == 422
    assert c.post("/v1/search", json={"query": "科技", "top_k": 3}).status_code == 200


def test_head_probes(make_client):
    c = make_client()
    for path in ("/healthz", "/readyz", "/livez"):
        r = c.head(path)
        assert r.status_code == 200 and r.content == b"", path
    assert "head" not in c.get("/openapi.json").json()["paths"]["/healthz"]


class _PageScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "style" or "style" in a or any(k.startswith("on") for k in a):
            self.inline.append(f"<{tag} {attrs}>")
        if tag == "script":
            if not a.get("src"):
                self.inline.append("<script> without src")
            self.urls.append(a.get("src") or "")
        if tag == "link":
            self.urls.append(a.get("href") or "")


def test_security_headers_on_every_response(make_client):
    c = make_client(max_body_kb=1)
    responses = {
        "page": c.get("/"), "static": c.get("/static/app.js"), "health": c.get("/healthz"),
        "404": c.get("/no-such-path"), "405": c.get("/v1/search"), "422": c.post("/v1/search", json={}),
        "413": c.post("/v1/search", json={"query": "x" * 5000}), "search": c.post("/v1/search", json={"query": "科技"}),
        "head": c.head("/livez"), "metrics": c.get("/metrics"),
    }
    for name, r in responses.items():
        h = r.headers
        assert h.get("x-content-type-options") == "nosniff", name
        assert h.get("x-frame-options") == "DENY", name
        assert h.get("referrer-policy") == "no-referrer", name
        csp = h.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, (name, csp)
    assert responses["413"].status_code == 413
    # the web page works under that policy: no inline script, style or handler; its files come from here
    page = _PageScan()
    page.feed((WEB / "index.html").read_text(encoding="utf-8"))
    assert page.inline == [] and page.urls and all(u.startswith("/static/") for u in page.urls), page.urls
    js = (WEB / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"\beval\(|new Function|innerHTML\s*=|setAttribute\(\s*['\"](style|on)", js)
    docs = c.get("/docs")  # Swagger UI: its inline bootstrap and CDN bundle are allowed there only
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
