"""Isolation at the retrieval layer (issue 20), on the real server (uvicorn on loopback, the real model, the
seeds index plus two uploaded collections): every route of the OpenAPI schema (and the pages outside it) is
called by a reader and an editor scoped to collection A and by a caller without a key, with request bodies
built from the schema and aimed at collection B (its documents' ids, ``collection: B``, the admin's
conversation and job, the streams); a secret that exists only in collection B never appears in any response
body or stream, while the admin key finds it on the routes that return document text.

The route-by-route table is printed (``pytest -s``) and written to RAG_ISOLATION_TABLE when that is set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.keys import add as add_key
from tests.conftest import start_server, stop_server

pytestmark = pytest.mark.integration

SECRET = "ZX4417QUOKKA"  # only in collection B's text
SECRET_DOC = "quokka-ledger.txt"  # B's document id (a file name can say too much)
SECRET_TEXT = (f"紫藤项目的内部预算编号是{SECRET}，由乙库财务处保管。紫藤项目的拨款为三千万元，"
               "仅限财务处查阅。")
A_TEXT = "紫藤项目的公开说明：项目由甲库负责宣传，预算编号另行通知。甲库每年发布两次项目简报。"
QUESTION = "紫藤项目的内部预算编号是什么？"
LEAKS = (SECRET, "quokka")
EXTRA_PAGES = [("GET", "/"), ("GET", "/report"), ("GET", "/static/app.js"), ("GET", "/metrics"),
               ("GET", "/openapi.json")]


@pytest.fixture(scope="module")
def iso(seed_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server whose keys file holds an admin, a reader and an editor of collection A; the admin has uploaded
    B's secret (as a document and as an upload job), asked about it and rated the answer down."""
    tmp = tmp_path_factory.mktemp("isolation")
    index = tmp / "index"
    shutil.copytree(seed_index, index, symlinks=True)
    keys_file = tmp / "keys.toml"
    keys = {name: add_key(keys_file, name, role, cols) for name, role, cols in
            [("admin", "admin", ["*"]), ("reader-a", "reader", ["A"]), ("editor-a", "editor", ["A"])]}
    proc, base = start_server(index, {"RAG_KEYS_FILE": str(keys_file), "RAG_LLM_BASE_URL": "",
                                      "RAG_CONVERSATIONS_DB": str(tmp / "conv.sqlite3"),
                                      "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_JOBS_DIR": str(tmp / "jobs")})
    admin = {"X-API-Key": keys["admin"]}
    try:
        with httpx.Client(base_url=base, timeout=120) as c:
            for name, text, col in ((SECRET_DOC, SECRET_TEXT, "B"), ("zitang-public.txt", A_TEXT, "A")):
                r = c.post("/v1/documents", headers=admin, data={"collection": col},
                           files={"files": (name, text.encode(), "text/plain")})
                assert r.status_code == 201, r.text
            r = c.post("/v1/documents?async=true", headers=admin, data={"collection": "B"},
                       files={"files": ("quokka-annex.txt", f"附件：{SECRET}的用途说明。".encode(), "text/plain")})
            assert r.status_code == 202, r.text
            job = r.json()["job_id"]
            r = c.post("/v1/answer", headers=admin, json={"query": QUESTION, "mode": "extractive"})
            assert r.status_code == 200 and SECRET in r.text, r.text[:300]
            cid = r.json()["conversation_id"]
            assert c.post("/v1/feedback", headers=admin, json={"conversation_id": cid, "turn": 1, "rating": "down",
                                                               "comment": "检查"}).status_code == 200
            for _ in range(120):  # the job's document is in before the walk starts
                if c.get(f"/v1/jobs/{job}", headers=admin).json()["status"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            schema = c.get("/openapi.json").json()
        yield {"base": base, "keys": keys, "cid": cid, "job": job, "schema": schema}
    finally:
        stop_server(proc)


# -- requests from the schema -------------------------------------------------------------------------------
def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in node:
        node = next((n for n in node["anyOf"] if n.get("type") != "null"), node["anyOf"][0])
        return _resolve(schema, node)
    return node


def _value(name: str, prop: dict[str, Any], ctx: dict[str, Any]) -> Any:
    known = {"query": QUESTION, "messages": [{"role": "user", "content": QUESTION}], "conversation_id": ctx["cid"],
             "turn": 1, "rating": "up", "comment": "x", "top_k": 10, "mode": "extractive"}
    if "enum" in prop:
        return known.get(name) if known.get(name) in prop["enum"] else prop["enum"][0]
    if name in known:
        return known[name]
    t = prop.get("type")
    return {"string": "x", "integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(t or "", None)


def json_bodies(schema: dict[str, Any], op: dict[str, Any], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The body the schema asks for, then the same aimed at B: collection B, B's document ids, streamed."""
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return []
    node = _resolve(schema, content["application/json"]["schema"])
    props = {k: _resolve(schema, v) for k, v in node.get("properties", {}).items()}
    required = set(node.get("required", []))
    base = {k: _value(k, v, ctx) for k, v in props.items()
            if k in required or k in ("query", "messages", "top_k", "mode", "turn", "rating")}
    base = {k: v for k, v in base.items() if v is not None}
    bodies = [base]
    if "conversation_id" in props and "conversation_id" not in base:
        bodies.append({**base, "conversation_id": ctx["cid"]})
    for k, v in (("collection", "B"), ("doc_ids", [SECRET_DOC]), ("stream", True), ("include_superseded", True)):
        if k in props:
            bodies.append({**base, k: v})
    if "title" in props and not base:  # a metadata edit needs a field to change
        bodies.append({"title": "x"})
    if "knowledge_id" in props:
        bodies.append({**base, "knowledge_id": "B"})
    return bodies


def requests_for(ctx: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    schema = ctx["schema"]
    out: list[tuple[str, str, dict[str, Any], str]] = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            urls = [path.replace("{doc_id}", SECRET_DOC).replace("{conversation_id}", ctx["cid"])
                    .replace("{job_id}", ctx["job"])]
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            if "collection" in names:
                urls.append(urls[0] + "?collection=B")
            if "format" in names:
                urls.append(urls[0] + "?format=csv&days=0")
            for url in urls:
                kw: list[dict[str, Any]] = [{"json": b} for b in json_bodies(schema, op, ctx)] or [{}]
                if "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
                    kw = [{"data": {"collection": col},
                           "files": {("files" if method == "post" else "file"): ("probe.txt", b"probe", "text/plain")}}
                          for col in ("A", "B")]
                out += [(method.upper(), url, k, path) for k in kw]
    return out + [(m, p, {}, p) for m, p in EXTRA_PAGES]


def call(c: httpx.Client, method: str, url: str, headers: dict[str, str], kw: dict[str, Any]) -> tuple[int, str]:
    with c.stream(method, url, headers=headers, **kw) as r:
        return r.status_code, r.read().decode("utf-8", "replace")


def test_scoped_keys_never_see_collection_b(iso: dict[str, Any]) -> None:
    keys = iso["keys"]
    callers = {"admin": {"X-API-Key": keys["admin"]}, "reader-a": {"X-API-Key": keys["reader-a"]},
               "editor-a": {"Authorization": f"Bearer {keys['editor-a']}"}, "no key": {}}
    rows: dict[tuple[str, str], dict[str, set[str]]] = {}
    leaks: list[str] = []
    reqs = requests_for(iso)
    with httpx.Client(base_url=iso["base"], timeout=120) as c:
        for who in ("reader-a", "editor-a", "no key", "admin"):
            for method, url, kw, path in reqs:
                if who == "admin" and method in ("PUT", "DELETE", "POST") and "/documents" in url:
                    continue  # the admin's writes would change what the others are tested against
                status, body = call(c, method, url, callers[who], kw)
                sent = json.dumps(kw, ensure_ascii=False, default=str) + url
                found = [s for s in LEAKS if s.lower() in body.lower() and s.lower() not in sent.lower()]
                row = rows.setdefault((method, path), {})
                row.setdefault(who, set()).add(f"{status}{' SECRET' if found else ''}")
                assert status < 500, (who, method, url, kw, body[:300])
                if found and who != "admin":
                    leaks.append(f"{who} {method} {url} {kw}: {body[:200]}")
    table = ["| route | admin | reader-a | editor-a | no key |", "|---|---|---|---|---|"]
    for (method, path), row in sorted(rows.items(), key=lambda x: (x[0][1], x[0][0])):
        table.append(f"| {method} {path} | " + " | ".join(", ".join(sorted(row.get(w, {"-"})))
                                                           for w in ("admin", "reader-a", "editor-a", "no key"))
                     + " |")
    text = "\n".join(table)
    print("\n" + text)
    if os.environ.get("RAG_ISOLATION_TABLE"):
        Path(os.environ["RAG_ISOLATION_TABLE"]).write_text(text + "\n", encoding="utf-8")
    assert not leaks, "\n".join(leaks)
    # the admin finds the secret wherever document text is returned
    for method, path in [("POST", "/v1/search"), ("POST", "/v1/ask"), ("POST", "/v1/answer"), ("POST", "/retrieval"),
                         ("GET", "/v1/documents/{doc_id}"), ("GET", "/v1/conversations/{conversation_id}"),
                         ("GET", "/v1/report")]:
        assert any("SECRET" in s for s in rows[(method, path)]["admin"]), (method, path, rows[(method, path)])
    # documents of B are 404 to the scoped keys, never 403 (existence does not leak)
    doc = ("GET", "/v1/documents/{doc_id}")
    assert rows[doc]["reader-a"] == {"404"} and rows[doc]["editor-a"] == {"404"}


def test_scoped_writes(iso: dict[str, Any]) -> None:
    keys = iso["keys"]
    with httpx.Client(base_url=iso["base"], timeout=120) as c:
        ed = {"X-API-Key": keys["editor-a"]}
        r = c.post("/v1/documents", headers=ed, data={"collection": "A"},
                   files={"files": ("a-notice.txt", "甲库的新通知。".encode(), "text/plain")})
        assert r.status_code == 201, r.text
        r = c.post("/v1/documents", headers=ed, data={"collection": "B"},
                   files={"files": ("b-notice.txt", "乙库的新通知。".encode(), "text/plain")})
        assert r.status_code == 403, r.text
        assert c.delete(f"/v1/documents/{SECRET_DOC}", headers=ed).status_code == 404
        assert c.delete("/v1/documents/a-notice.txt", headers=ed).status_code == 200
        r = c.post("/v1/documents", headers={"X-API-Key": keys["reader-a"]}, data={"collection": "A"},
                   files={"files": ("r.txt", "读者。".encode(), "text/plain")})
        assert r.status_code == 403, r.text
        admin = {"X-API-Key": keys["admin"]}
        assert c.get(f"/v1/documents/{SECRET_DOC}", headers=admin).status_code == 200  # still there
