"""Cancelling upload jobs and auditing their writes (issue 21), against a real server on loopback with named
keys: ``DELETE /v1/jobs/{id}`` cancels a queued job or one still OCR-ing (nothing of it lands in the index, its
status stays ``cancelled``), is refused to a reader (403) and to another key (404), 404 for an unknown id, 409
once the job has ended; the write a job performs is in the audit log as the submitter's upload (name, document
ids, sha256 of their text), like a synchronous upload. The job table's cancel rules, including the refusal
once a job writes to the index, are checked on ``JobStore`` directly. Hash embedder; the real RapidOCR."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.jobstore import JobStore
from api.keys import add as add_key
from embeddings.fake import HashEmbedder
from rag.core.errors import JobStateError, NotFoundError
from rag.index.build import build_index
from rag.ingest.loaders import load_path
from tests.api.test_jobs import HASH_ENV, scan
from tests.conftest import SEEDS, start_server, stop_server

NOTE = "异步任务审计测试：关于沙化土地封禁保护区管理的补充通知。"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("job-cancel")
    docs, _ = load_path(SEEDS)
    build_index(root / "index", docs, HashEmbedder())
    keys_file = root / "keys.toml"
    keys = {n: add_key(keys_file, n, r, c) for n, r, c in
            [("boss", "admin", ["*"]), ("ed-a", "editor", ["A"]), ("ed-b", "editor", ["B"]),
             ("rd-a", "reader", ["A"])]}
    env = {**HASH_ENV, "RAG_KEYS_FILE": str(keys_file), "RAG_CONVERSATIONS_DB": str(root / "project.sqlite3")}
    proc, url = start_server(root / "index", env, timeout=120)
    try:
        yield url, keys
    finally:
        stop_server(proc)


def upload(url: str, key: str, name: str, data: bytes, collection: str = "A") -> httpx.Response:
    return httpx.post(url + "/v1/documents?async=true", headers={"X-API-Key": key}, data={"collection": collection},
                      files=[("files", (name, data, "application/octet-stream"))], timeout=120)


def job(url: str, key: str, where: str) -> dict[str, Any]:
    r = httpx.get(url + where, headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait(url: str, key: str, where: str, ok: Any, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job(url, key, where)
        if ok(j):
            return j
        time.sleep(0.2)
    raise AssertionError(f"job never got there: {j}")


def doc_ids(url: str, key: str) -> set[str]:
    r = httpx.get(url + "/v1/documents", headers={"X-API-Key": key}, timeout=10)
    return {d["doc_id"] for d in r.json()["documents"]}


def test_cancel_a_running_and_a_queued_job_writes_nothing(served: tuple[str, dict[str, str]]) -> None:
    url, keys = served
    ed = keys["ed-a"]
    before = doc_ids(url, keys["boss"])
    running = upload(url, ed, "cancel-scan.pdf", scan(4))
    queued = upload(url, ed, "cancel-note.txt", NOTE.encode())  # one job worker: it waits behind the scan
    assert running.status_code == queued.status_code == 202, (running.text, queued.text)
    where, where2 = running.headers["location"], queued.headers["location"]
    wait(url, ed, where, lambda j: j["status"] == "running" and j["progress"]["pages_done"] >= 1)  # mid-OCR
    assert job(url, ed, where2)["status"] == "queued"
    assert httpx.delete(url + where, headers={"X-API-Key": keys["rd-a"]}, timeout=10).status_code == 403
    assert httpx.delete(url + where, headers={"X-API-Key": keys["ed-b"]}, timeout=10).status_code == 404
    assert httpx.delete(url + where, timeout=10).status_code == 401
    r = httpx.delete(url + where2, headers={"X-API-Key": ed}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert "cancelled while queued" in r.json()["message"]
    r = httpx.delete(url + where, headers={"X-API-Key": ed}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert "cancelled while parsing" in r.json()["message"]
    time.sleep(3.0)  # time for the 4-page OCR to have gone on, had the cancel not stopped it
    for w in (where, where2):
        j = job(url, ed, w)
        assert j["status"] == "cancelled" and j["doc_ids"] == [] and j["result"] is None, j
    r = httpx.delete(url + where, headers={"X-API-Key": ed}, timeout=10)
    assert r.status_code == 409 and "already ended (cancelled)" in r.json()["message"], r.text
    assert httpx.delete(url + "/v1/jobs/" + "0" * 32, headers={"X-API-Key": ed}, timeout=10).status_code == 404
    # the worker goes on with the next job; nothing of the cancelled ones was written
    after = upload(url, ed, "after-cancel.txt", "取消之后的任务照常完成。".encode())
    done = wait(url, ed, after.headers["location"], lambda j: j["status"] in ("done", "failed"))
    assert done["status"] == "done", done
    assert doc_ids(url, keys["boss"]) == before | {"after-cancel.txt"}


def test_a_finished_job_cannot_be_cancelled_and_its_write_is_audited(served: tuple[str, dict[str, str]]) -> None:
    url, keys = served
    r = upload(url, keys["ed-a"], "audited-job.txt", NOTE.encode())
    assert r.status_code == 202, r.text
    job_id, where = r.json()["job_id"], r.headers["location"]
    done = wait(url, keys["ed-a"], where, lambda j: j["status"] in ("done", "failed"))
    assert done["status"] == "done" and done["doc_ids"] == ["audited-job.txt"], done
    r = httpx.delete(url + where, headers={"X-API-Key": keys["ed-a"]}, timeout=10)
    assert r.status_code == 409 and "already ended (done)" in r.json()["message"], r.text
    # the same document uploaded synchronously, for comparison: the same hash of the same text
    r = httpx.post(url + "/v1/documents", headers={"X-API-Key": keys["ed-a"]}, data={"collection": "A"},
                   files=[("files", ("audited-sync.txt", NOTE.encode(), "text/plain"))], timeout=60)
    assert r.status_code == 201, r.text
    rows = httpx.get(url + "/v1/audit", headers={"X-API-Key": keys["boss"]},
                     params={"principal": "ed-a", "action": "upload"}, timeout=10).json()["entries"]
    written = [e for e in rows if e["path"] == f"/v1/jobs/{job_id}"]
    assert len(written) == 1, rows
    w = written[0]
    sha = hashlib.sha256(NOTE.encode()).hexdigest()
    assert (w["principal"], w["role"], w["source"], w["status"]) == ("ed-a", "editor", "key", 201), w
    assert w["doc_ids"] == ["audited-job.txt"] and w["hashes"] == {"audited-job.txt": sha}, w
    assert w["detail"]["job_id"] == job_id and w["detail"]["collections"] == ["A"] and w["detail"]["version"], w
    sync = next(e for e in rows if e["path"] == "/v1/documents" and "audited-sync.txt" in e["doc_ids"])
    assert sync["hashes"]["audited-sync.txt"] == sha  # a job's row carries what a synchronous upload's does
    queued = [e for e in rows if e["path"].startswith("/v1/documents") and e["detail"].get("job_id") == job_id]
    assert [e["status"] for e in queued] == [202], rows  # the request that queued it, as before
    cancels = httpx.get(url + "/v1/audit", headers={"X-API-Key": keys["boss"]},
                        params={"action": "job-cancel"}, timeout=10).json()["entries"]
    assert cancels and all(e["path"].startswith("/v1/jobs/") for e in cancels)


# --- the job table's cancel rules, without a server ------------------------------------------------------------


def test_store_cancels_queued_and_parsing_jobs_only(tmp_path: Path) -> None:
    jobs = JobStore(tmp_path)
    queued = jobs.create([("a.txt", b"x")], [], {}, owner="key-1")
    with pytest.raises(NotFoundError):
        jobs.cancel(queued, owner="key-2")
    assert jobs.cancel(queued, owner="key-1")["status"] == "cancelled"
    assert not (tmp_path / "spool" / queued).exists() and jobs.claim() is None  # never run
    parsing = jobs.create([("b.txt", b"y")], [], {})
    assert jobs.claim() is not None
    assert jobs.cancel(parsing)["status"] == "cancelled"
    assert not jobs.start_indexing(parsing, [["b.txt", "h"]])  # the worker sees it before writing
    jobs.finish(parsing, "done")  # a worker's late finish does not undo the cancel
    assert jobs.get(parsing)["status"] == "cancelled"
    writing = jobs.create([("c.txt", b"z")], [], {})
    jobs.claim()
    assert jobs.start_indexing(writing, [["c.txt", "h"]])
    with pytest.raises(JobStateError, match="writing its documents to the index"):
        jobs.cancel(writing)
    jobs.finish(writing, "done")
    with pytest.raises(JobStateError, match=r"already ended \(done\)"):
        jobs.cancel(writing)
    with pytest.raises(NotFoundError):
        jobs.cancel("0" * 32)
    shutil.rmtree(tmp_path / "spool", ignore_errors=True)
