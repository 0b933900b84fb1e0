"""Two API replicas share one upload queue (issue 18): both on one real milvus-lite server process and one real
PostgreSQL (RAG_DATABASE_URL, a throwaway server from tests/pg.py), uvicorn on loopback, hash embedder. A job
queued through one replica is polled to done and searched through the other, and neither keeps a jobs folder on
disk; a replica killed with SIGKILL in the middle of a job's OCR has that job resumed and finished by the other
once its lease (RAG_JOB_LEASE=2 s) lapses, from the bytes spooled in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_jobs import hit_ids, poll, scan, upload
from tests.api.test_milvus_replicas import _env
from tests.conftest import ROOT, SEEDS, start_server, stop_server
from tests.pg import throwaway_postgres

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


def _spooled_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute("SELECT COUNT(*) FROM upload_job_files").fetchone()
        return int(row[0]) if row else -1


def test_two_replicas_share_the_upload_queue_and_one_resumes_the_others_job(milvus_server, pg_url: str,
                                                                            tmp_path: Path) -> None:
    alias = f"jobqueue_{os.getpid()}"

    def env(n: int) -> dict[str, str]:
        return {**_env(milvus_server.uri, alias, tmp_path, n), "RAG_DATABASE_URL": pg_url, "RAG_JOB_LEASE": "2"}

    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(SEEDS)], cwd=ROOT,
                         env={**os.environ, **env(0)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (a, base_a), (b, base_b) = [start_server(tmp_path / "unused", env(n)) for n in (1, 2)]
    try:
        # queued through A, followed and searched through B
        r = upload(base_a, ("queue-note.txt", "经由副本甲排队的上传：关于沙漠锁边林带建设的通知。".encode()))
        assert r.status_code == 202, r.text
        job = poll(base_b, r.headers["location"])
        assert job["status"] == "done" and job["doc_ids"] == ["queue-note.txt"], job
        assert "queue-note.txt" in hit_ids(base_b, "沙漠锁边林带")
        assert any(j["job_id"] == job["job_id"] for j in httpx.get(base_b + "/v1/jobs", timeout=10).json())
        # A dies in the middle of a job; B (held still until then, so A took it) resumes it after the lease
        b.send_signal(signal.SIGSTOP)
        try:
            r = upload(base_a, ("dead-replica-scan.pdf", scan(2)))
            assert r.status_code == 202, r.text
            where = r.headers["location"]
            deadline = time.monotonic() + 120
            while httpx.get(base_a + where, timeout=10).json()["progress"]["pages_done"] < 1:  # mid-OCR on A
                assert time.monotonic() < deadline, "A never started the job"
                time.sleep(0.2)
            a.kill()
            a.wait(30)
        finally:
            b.send_signal(signal.SIGCONT)
        t0 = time.monotonic()
        job = poll(base_b, where)
        print(f"\nreplica A killed mid-OCR; B resumed and finished the job in {time.monotonic() - t0:.1f} s "
              f"(lease 2 s): {job['message']}")
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert "resumed: run 1 was interrupted while parsing" in job["message"], job["message"]
        assert job["progress"]["pages_done"] == 2 and "dead-replica-scan.pdf" in hit_ids(base_b, "草原生态保护补助奖励")
        assert _spooled_rows(pg_url) == 0  # the spooled bytes went with the jobs
        for n in (1, 2):  # no job state on the replicas' disks
            assert not (tmp_path / f"replica{n}" / "jobs").exists() and not (tmp_path / f"replica{n}").exists()
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                stop_server(proc)
