"""Background upload jobs (issue 21, item 1) against a real server on loopback: ``?async=true`` -> 202 +
Location, polled to done and searchable; a corrupt file -> the job fails with the cause; a long scan goes to a
job by itself, with OCR page progress; ``kill -9`` mid-job -> the previous index is intact and the restarted
server resumes the job to done. The job table's recovery rules are checked on ``JobStore`` directly.
Hash embedder (no model); OCR is the real RapidOCR, so scans take a few seconds a page."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.jobstore import JobStore
from embeddings.fake import HashEmbedder
from rag.core.errors import JobQueueFullError
from rag.index import store
from rag.index.build import build_index
from rag.ingest.loaders import load_path
from tests.conftest import SEEDS, start_server, stop_server
from tests.ingest import docmaker as dm
from tests.ingest.test_hostile_files import make_docx

HASH_ENV = {"RAG_EMBEDDER": "hash", "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_ASYNC_OCR_PAGES": "2"}
RATIO_BOUND = 2.0  # during-job / idle search median (see test_search_keeps_answering_while_a_job_ocrs_a_scan)
SLACK_P50, SLACK_P95 = 0.010, 0.020  # seconds over the bound: the ~6 ms hash-embedder search doubles beside a busy core
SCAN_TEXT = "关于加强草原生态保护补助奖励资金管理的通知。各旗县区人民政府要按照每亩每年七元五角的标准发放禁牧补助。"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jobs") / "index"
    docs, _ = load_path(SEEDS)
    build_index(out, docs, HashEmbedder())
    return out


@pytest.fixture(scope="module")
def base(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    served = tmp_path_factory.mktemp("jobs-served") / "index"
    shutil.copytree(index, served, symlinks=True)
    proc, url = start_server(served, HASH_ENV, timeout=120)
    try:
        yield url
    finally:
        stop_server(proc)


def upload(base: str, *files: tuple[str, bytes], run_async: bool = True) -> httpx.Response:
    return httpx.post(base + "/v1/documents" + ("?async=true" if run_async else ""),
                      files=[("files", (n, b, "application/octet-stream")) for n, b in files], timeout=120)


def poll(base: str, location: str, until: tuple[str, ...] = ("done", "failed"), timeout: float = 240,
         seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(base + location, timeout=10)
        assert r.status_code == 200, r.text
        job = r.json()
        if seen is not None:
            seen.append(job)
        if job["status"] in until:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job still {job['status']} after {timeout:.0f} s: {job}")


def hit_ids(base: str, query: str) -> list[str]:
    r = httpx.post(base + "/v1/search", json={"query": query, "top_k": 5, "mode": "bm25"}, timeout=30)
    assert r.status_code == 200, r.text
    return [h["doc_id"] for h in r.json()["results"]]


def scan(pages: int) -> bytes:
    return dm.scanned_pdf([dm.render_page([f"第{i + 1}页。", SCAN_TEXT]) for i in range(pages)])


def test_async_upload_is_202_with_a_job_polled_to_done_and_searchable(base: str) -> None:
    r = upload(base, ("job-note.txt", "异步上传的文件：关于戈壁荒漠化防治示范区建设的意见。".encode()),
               ("empty.txt", b""))
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}" == r.json()["location"]
    job = poll(base, r.headers["location"])
    assert job["status"] == "done", job
    assert job["doc_ids"] == ["job-note.txt"] and job["result"]["added"] == ["job-note.txt"]
    assert job["progress"] == {"files_done": 2, "files_total": 2, "pages_done": 0, "pages_total": 0}
    assert job["errors"] == [{"file": "empty.txt", "error": "empty.txt: the file is empty"}]
    assert job["attempts"] == 1 and job["finished"]
    assert "job-note.txt" in hit_ids(base, "戈壁荒漠化防治示范区")
    listed = httpx.get(base + "/v1/jobs", timeout=10).json()
    assert any(j["job_id"] == job_id for j in listed)
    assert httpx.get(base + "/v1/jobs/" + "0" * 32, timeout=10).status_code == 404
    assert httpx.get(base + "/v1/jobs/not-a-job", timeout=10).status_code == 422


def test_a_corrupt_file_fails_its_job_with_the_cause_and_a_batch_keeps_the_good_ones(base: str) -> None:
    r = upload(base, ("broken.docx", b"PK\x03\x04" + b"garbage" * 50))
    assert r.status_code == 202, r.text
    job = poll(base, r.headers["location"])
    assert job["status"] == "failed", job
    assert "broken.docx" in job["message"] and "DOCX" in job["message"], job["message"]
    assert job["errors"][0]["file"] == "broken.docx" and job["doc_ids"] == []
    r = upload(base, ("broken.docx", b"PK\x03\x04" + b"garbage" * 50), ("good.docx", make_docx(5)))
    job = poll(base, r.headers["location"])
    assert job["status"] == "done" and job["doc_ids"] == ["good.docx"], job
    assert [e["file"] for e in job["errors"]] == ["broken.docx"]


def test_a_long_scan_goes_to_a_job_by_itself_with_ocr_page_progress(base: str) -> None:
    assert upload(base, ("short.txt", "短文件直接写入。".encode()), run_async=False).status_code == 201
    r = upload(base, ("scan.pdf", scan(3)), run_async=False)  # 3 pages to OCR > RAG_ASYNC_OCR_PAGES=2
    assert r.status_code == 202, r.text
    seen: list[dict[str, Any]] = []
    job = poll(base, r.headers["location"], seen=seen)
    assert job["status"] == "done", job
    assert job["progress"] == {"files_done": 1, "files_total": 1, "pages_done": 3, "pages_total": 3}
    pages = [j["progress"]["pages_done"] for j in seen if j["status"] == "running"]
    assert any(0 < p < 3 for p in pages), f"no page progress seen while running: {pages}"
    assert "scan.pdf" in hit_ids(base, "草原生态保护补助奖励")


def test_search_keeps_answering_while_a_job_ocrs_a_scan(base: str) -> None:
    """The job parses in a niced worker process (api/parsing.py): searches meanwhile keep their idle pace.
    Asserted: the median and the p95 within ``RATIO_BOUND`` of idle plus a few milliseconds (``SLACK_P50``,
    ``SLACK_P95``), p95 under 1 s. With the hash embedder a search takes ~6 ms, and on this 2-core machine a busy
    OCR worker on the other core doubles that floor however low its priority (quiet machine, load 0.5: idle p50 6
    ms / p95 13 ms, during 13 / 18 ms, ratio 2.16 / 1.46); the slack keeps the bound about the design (the parse
    off the server) and not that floor. Measured on the shared machine (bench/results/issue21_remeasure.md,
    scripts/job_latency.py, load 6.5-17.6): the median ratio 0.69-1.64 in 13 runs with the worker process,
    2.16-3.78 in 6 with the parse in a thread of the server; the p95 ratio 0.98-2.06 in 12 of the 13 (7.84 in one
    at load 17.6), 1.95-6.50 with the thread; with the real model (search ~60 ms) p95 ratio 0.98-1.37."""
    query = {"query": "科技创新平台", "top_k": 5}

    def search(c: httpx.Client) -> float:
        t = time.perf_counter()
        assert c.post(base + "/v1/search", json=query).status_code == 200
        return time.perf_counter() - t

    def idle(c: httpx.Client) -> list[float]:
        out = []
        for _ in range(40):
            out.append(search(c))
            time.sleep(0.05)
        return out

    with httpx.Client(timeout=30) as c:
        quiet = idle(c)
        r = upload(base, ("busy-scan.pdf", scan(3)))
        assert r.status_code == 202, r.text
        during = []
        while c.get(base + r.headers["location"]).json()["status"] in ("queued", "running"):
            during.append(search(c))
            time.sleep(0.05)
        quiet += idle(c)  # idle before and after: the machine's load drifts during a run
    p50, idle50 = percentile(during, 0.5), percentile(quiet, 0.5)
    p95, idle95 = percentile(during, 0.95), percentile(quiet, 0.95)
    print(f"\n/v1/search idle ({len(quiet)} searches) p50 {idle50 * 1000:.0f} ms, p95 {idle95 * 1000:.0f} ms; "
          f"during the OCR job ({len(during)} searches) p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"max {max(during) * 1000:.0f} ms; ratio p50 {p50 / idle50:.2f}, p95 {p95 / idle95:.2f}; "
          f"load average {os.getloadavg()[0]:.1f}")
    assert len(during) >= 5, "the job finished before anything was measured"
    assert p95 < 1.0, f"/v1/search p95 {p95:.1f} s during the job"
    assert p50 <= RATIO_BOUND * idle50 + SLACK_P50, f"/v1/search p50 {p50 * 1000:.0f} ms during the job, " \
        f"{p50 / idle50:.1f}x the idle {idle50 * 1000:.0f} ms"
    assert p95 <= RATIO_BOUND * idle95 + SLACK_P95, f"/v1/search p95 {p95 * 1000:.0f} ms during the job, " \
        f"{p95 / idle95:.1f}x the idle {idle95 * 1000:.0f} ms"


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, round(q * len(s)) - 1))]


def test_kill_9_mid_job_keeps_the_previous_index_and_the_restart_resumes_the_job(index: Path,
                                                                                tmp_path: Path) -> None:
    served = tmp_path / "index"
    shutil.copytree(index, served, symlinks=True)
    before = store.load(served)
    old_ids, old_version = set(before.documents), before.path.name
    proc, url = start_server(served, HASH_ENV, timeout=120)
    try:
        r = upload(url, ("long-scan.pdf", scan(4)))
        assert r.status_code == 202, r.text
        where = r.headers["location"]
        poll(url, where, until=("running",))
        deadline = time.monotonic() + 120
        while httpx.get(url + where, timeout=10).json()["progress"]["pages_done"] < 1:  # mid-OCR
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop_server(proc)
    after = store.load(served)  # checksums verified: never a partial version
    assert set(after.documents) == old_ids and after.path.name == old_version
    proc, url = start_server(served, HASH_ENV, timeout=120)
    try:
        job = httpx.get(url + where, timeout=10).json()
        assert job["status"] in ("queued", "running") and job["attempts"] in (1, 2), job
        assert "resumed" in job["message"] and "interrupted while parsing" in job["message"], job["message"]
        job = poll(url, where)
        assert job["status"] == "done" and job["attempts"] == 2 and job["doc_ids"] == ["long-scan.pdf"], job
        assert "long-scan.pdf" in hit_ids(url, "草原生态保护补助奖励")
        docs = {d["doc_id"] for d in httpx.get(url + "/v1/documents", timeout=10).json()["documents"]}
        assert docs == old_ids | {"long-scan.pdf"}
    finally:
        stop_server(proc)
    assert not any((tmp_path / "index.jobs" / "spool").iterdir())  # the spooled upload went with the job


# --- the job table's recovery rules, without a server ----------------------------------------------------------


def test_recovery_resumes_until_the_attempts_run_out_then_fails(tmp_path: Path) -> None:
    jobs = JobStore(tmp_path, attempts=2)
    job_id = jobs.create([("a.txt", b"text")], [], {"collection": "default"})
    for expected in ("queued", "failed"):
        assert jobs.claim() is not None  # a run that dies: the row stays 'running'
        jobs.recover(lambda d, h: False)
        assert jobs.get(job_id)["status"] == expected
    job = jobs.get(job_id)
    assert "interrupted while parsing by a server restart, 2 time(s)" in job["message"]
    assert not (tmp_path / "spool" / job_id).exists()


def test_recovery_counts_a_job_whose_index_write_landed_as_done(tmp_path: Path) -> None:
    jobs = JobStore(tmp_path, attempts=1)
    job_id = jobs.create([("a.txt", b"text")], [], {})
    jobs.claim()
    jobs.update(job_id, stage="indexing", docs=[["a.txt", "abc"]])
    jobs.recover(lambda d, h: (d, h) == ("a.txt", "abc"))
    job = jobs.get(job_id)
    assert job["status"] == "done" and job["result"] == {"added": ["a.txt"]}, job


def test_queue_is_bounded_and_jobs_are_private_to_their_key(tmp_path: Path) -> None:
    jobs = JobStore(tmp_path, max_active=1)
    job_id = jobs.create([("a.txt", b"x")], [], {}, owner="key-1")
    with pytest.raises(JobQueueFullError, match="RAG_MAX_QUEUED_JOBS"):
        jobs.create([("b.txt", b"y")], [], {})
    assert jobs.get(job_id, owner="key-1")["id"] == job_id
    with pytest.raises(Exception, match="no job"):
        jobs.get(job_id, owner="key-2")
