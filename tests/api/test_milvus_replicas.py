"""Two API replicas on the Milvus backend (issue 18): `rag ingest` writes the index into a real milvus-lite server
process, two uvicorn servers on loopback serve it and keep no index on disk; an upload through one is searchable
through the other on the next request, a delete through the other is gone from the first, and a Milvus that
stops answering is a 503 naming Milvus within the timeout, not a hang (hash embedder: no model needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SEEDS, start_server, stop_server

pytestmark = pytest.mark.slow
TIMEOUT = 4  # RAG_MILVUS_TIMEOUT of the replicas


def _env(uri: str, alias: str, tmp: Path, n: int) -> dict[str, str]:
    return {"RAG_BACKEND": "milvus", "RAG_MILVUS_URI": uri, "RAG_MILVUS_ALIAS": alias, "RAG_EMBEDDER": "hash",
            "RAG_MILVUS_TIMEOUT": str(TIMEOUT), "RAG_INDEX_DIR": str(tmp / f"replica{n}" / "index"),
            "RAG_JOBS_DIR": str(tmp / f"replica{n}" / "jobs"), "RAG_STORE_CONVERSATIONS": "false",
            "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_CROSSLINGUAL": "false"}


def _search(base: str, query: str, mode: str = "hybrid") -> list[str]:
    r = httpx.post(base + "/v1/search", json={"query": query, "top_k": 3, "mode": mode}, timeout=60)
    assert r.status_code == 200, r.text
    return [p["doc_id"] for p in r.json()["results"]]


def test_two_replicas_share_one_milvus_index(milvus_server, tmp_path):
    alias = f"replicas_{os.getpid()}"
    env = {**os.environ, **_env(milvus_server.uri, alias, tmp_path, 0)}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(SEEDS)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and f"collection {alias}_v" in out.stderr, out.stderr[-2000:]
    procs = [start_server(tmp_path / "unused", _env(milvus_server.uri, alias, tmp_path, n)) for n in (1, 2)]
    (a, base_a), (b, base_b) = procs
    try:
        health = [httpx.get(base + "/healthz", timeout=30).json() for base in (base_a, base_b)]
        assert health[0]["index_version"] == health[1]["index_version"] and health[0]["index_documents"] == 5
        for q in ("稀土新材料产业", "乳业振兴"):
            assert _search(base_a, q) == _search(base_b, q)  # the same answers from either replica
        text = "阿拉善盟沙产业促进条例：每亩梭梭肉苁蓉基地补助八百元。".encode()
        r = httpx.post(base_a + "/v1/documents", files={"files": ("shachanye.txt", text, "text/plain")},
                       timeout=120)
        assert r.status_code == 201, r.text
        t0 = time.perf_counter()
        assert _search(base_b, "梭梭肉苁蓉基地补助", "bm25")[0] == "shachanye.txt"  # through the other, at once
        print(f"\nupload via A -> first search via B finds it: {1000 * (time.perf_counter() - t0):.0f} ms")
        r = httpx.delete(base_b + "/v1/documents/shachanye.txt", timeout=120)
        assert r.status_code == 200, r.text
        assert "shachanye.txt" not in _search(base_a, "梭梭肉苁蓉基地补助", "bm25")
        docs = [httpx.get(base + "/v1/documents", timeout=30).json() for base in (base_a, base_b)]
        assert docs[0] == docs[1]
        for n in (1, 2):  # nothing of the index on the replicas' disks
            assert not (tmp_path / f"replica{n}" / "index").exists()
        milvus_server.proc.send_signal(signal.SIGSTOP)  # Milvus stops answering (a hung server)
        try:
            t0 = time.perf_counter()
            r = httpx.post(base_a + "/v1/search", json={"query": "稀土", "top_k": 3}, timeout=60)
            took = time.perf_counter() - t0
        finally:
            milvus_server.proc.send_signal(signal.SIGCONT)
        print(f"Milvus stopped: {r.status_code} in {took:.1f} s: {r.json()['message'][:160]}")
        assert r.status_code == 503 and "Milvus at " + milvus_server.uri in r.json()["message"]
        assert took < 4 * TIMEOUT
        assert _search(base_a, "稀土新材料产业")  # back once Milvus answers again
    finally:
        for proc, _ in procs:
            stop_server(proc)
