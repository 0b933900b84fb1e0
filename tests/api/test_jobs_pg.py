"""Upload jobs in PostgreSQL shared by several servers (issue 18, RAG_DATABASE_URL): two ``PostgresJobStore``s
on one real PostgreSQL (a throwaway server, tests/pg.py; skipped with the reason without it). A job submitted
through one is claimed exactly once and its spooled bytes are read back through the other; two stores claiming
concurrently run each of N jobs once; a store in another process that is killed (SIGKILL) or hung (SIGSTOP)
past its lease has its job queued again, while a live store's job is left alone, and the hung one, woken, finds
its job lost and writes nothing; a cancel through one server reaches the one running the job; a database that
goes away is a typed error naming it (503 in the API), not a driver exception."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from api.jobstore import PostgresJobStore
from rag.core.errors import JobQueueFullError, JobStoreUnavailableError, NotFoundError
from tests.conftest import ROOT
from tests.pg import throwaway_postgres

LEASE = 2.0  # seconds; renewed every LEASE / 3
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4096  # 1 MiB of every byte value, as an upload would spool it
# Another server: a store in its own process, driven by lines on stdin, answering one JSON line each.
REPLICA = """
import json, sys
from api.jobstore import PostgresJobStore
s = PostgresJobStore(sys.argv[1], attempts=2, lease=float(sys.argv[2]))
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "create":
        out = s.create([("scan.pdf", bytes.fromhex(args[0]))], [], {"collection": "default"})
    elif cmd == "claim":
        out = (s.claim() or {}).get("id")
    elif cmd == "index":
        s.renew()
        out = {"lost": s.lost(args[0]), "indexing": s.start_indexing(args[0], [["scan.pdf", "h"]])}
    print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


@pytest.fixture
def url(pg_url: str) -> str:
    """The server with empty job tables."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS upload_job_files, upload_jobs")
    return pg_url


@pytest.fixture
def stores(url: str) -> Iterator[list[PostgresJobStore]]:
    opened: list[PostgresJobStore] = []
    yield opened
    for s in opened:
        s.close()


def _open(stores: list[PostgresJobStore], url: str, **kw: Any) -> PostgresJobStore:
    s = PostgresJobStore(url, **{"attempts": 2, "max_active": 100, "lease": LEASE, **kw})
    stores.append(s)
    return s


def _spooled_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute("SELECT COUNT(*) FROM upload_job_files").fetchone()
        return int(row[0]) if row else -1


class Replica:
    """A store in another process (another API server, as far as the database can tell)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", REPLICA, url, str(LEASE)], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, *words: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def end(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_a_job_queued_through_one_server_is_claimed_once_and_its_bytes_read_through_the_other(
        url: str, stores: list[PostgresJobStore]) -> None:
    a, b = _open(stores, url), _open(stores, url)
    text = "呼和浩特市技术转移机构".encode()
    job_id = a.create([("a.txt", text), ("scan.pdf", PDF)], [("x.exe", "unsupported type")], {"collection": "c"},
                      owner="key-1")
    assert b.get(job_id, owner="key-1")["status"] == "queued" and _spooled_rows(url) == 2
    job = b.claim()
    assert job is not None and job["id"] == job_id and job["attempts"] == 1
    assert a.claim() is None and b.claim() is None  # claimed once
    assert b.spooled(job_id, "0") == text and b.spooled(job_id, "1") == PDF  # spooled by a, read by b
    assert [f["status"] for f in job["files"]] == ["queued", "queued", "failed"]
    assert a.get(job_id)["claimed_by"].startswith(b.replica + "/")
    assert b.start_indexing(job_id, [["a.txt", "h1"], ["scan.pdf", "h2"]])
    b.finish(job_id, "done", result={"added": ["a.txt", "scan.pdf"]})
    assert a.get(job_id)["status"] == "done" and a.get(job_id)["result"] == {"added": ["a.txt", "scan.pdf"]}
    assert _spooled_rows(url) == 0  # the bytes went with the job
    with pytest.raises(NotFoundError):
        a.spooled(job_id, "0")


def test_two_servers_claiming_at_once_run_each_job_once(url: str, stores: list[PostgresJobStore]) -> None:
    a, b = _open(stores, url), _open(stores, url)
    n = 60
    queued = {a.create([(f"{i}.txt", f"doc {i}".encode())], [], {}) for i in range(n)}
    runs: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(s: PostgresJobStore, who: str) -> None:
        try:
            start.wait()
            while (job := s.claim()) is not None:
                runs.append((who, job["id"]))
                name = job["files"][0]["file"]
                assert s.spooled(job["id"], "0") == f"doc {name[:-4]}".encode()
                time.sleep(0.005)  # the job's work, while the other server claims
                assert s.start_indexing(job["id"], [[name, "h"]])
                s.finish(job["id"], "done")
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s, who)) for s, who in ((a, "a"), (a, "a"), (b, "b"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    ids = [j for _, j in runs]
    assert len(ids) == n and set(ids) == queued  # every job ran, none twice
    assert {who for who, _ in runs} == {"a", "b"}, "both servers took jobs"
    done = a.list(limit=1000)
    assert len(done) == n and all(j["status"] == "done" and j["attempts"] == 1 for j in done)
    print(f"\n{n} jobs, two servers x two workers: server a ran {sum(w == 'a' for w, _ in runs)}, "
          f"b ran {sum(w == 'b' for w, _ in runs)}, none twice")


def test_a_dead_servers_job_is_requeued_after_its_lease_and_a_live_ones_is_not(
        url: str, stores: list[PostgresJobStore]) -> None:
    live, other = _open(stores, url), _open(stores, url)
    dead = Replica(url)
    try:
        lost_job = dead.ask("create", PDF[:4096].hex())
        assert dead.ask("claim") == lost_job
        kept_job = live.create([("b.txt", b"kept")], [], {})
        assert live.claim()["id"] == kept_job  # type: ignore[index]
        os.kill(dead.proc.pid, signal.SIGKILL)  # the server dies holding its job
        dead.proc.wait(10)
        early = other.recover(lambda d, h: False)
        assert early.requeued == [] and other.status(lost_job) == "running"  # its lease has not lapsed yet
        time.sleep(LEASE + 1.0)  # past the dead one's lease; the live one renewed meanwhile
        rec = other.recover(lambda d, h: False)
        assert rec.requeued == [lost_job], rec
        assert other.status(kept_job) == "running" and not live.lost(kept_job)
        job = other.claim()
        assert job is not None and job["id"] == lost_job and job["attempts"] == 2
        assert "resumed: run 1 was interrupted while parsing" in job["message"]
        assert other.spooled(lost_job, "0") == PDF[:4096]  # spooled by the dead process, read here
        live.renew()
        assert not live.lost(kept_job) and live.start_indexing(kept_job, [["b.txt", "h"]])
        live.finish(kept_job, "done")
        assert other.get(kept_job)["status"] == "done"
    finally:
        dead.end()


def test_a_hung_server_woken_after_its_lease_finds_its_job_lost_and_writes_nothing(
        url: str, stores: list[PostgresJobStore]) -> None:
    other = _open(stores, url)
    hung = Replica(url)
    try:
        job_id = hung.ask("create", b"scan".hex())
        assert hung.ask("claim") == job_id
        os.kill(hung.proc.pid, signal.SIGSTOP)  # a server that stops renewing (hung, or cut off)
        try:
            time.sleep(LEASE + 1.0)
            assert other.recover(lambda d, h: False).requeued == [job_id]
            assert other.claim()["id"] == job_id  # type: ignore[index]
        finally:
            os.kill(hung.proc.pid, signal.SIGCONT)
        assert hung.ask("index", job_id) == {"lost": True, "indexing": False}  # it stops before the write
        assert other.get(job_id)["stage"] == "parsing" and other.start_indexing(job_id, [["scan.pdf", "h"]])
        other.finish(job_id, "done")
        assert other.get(job_id)["status"] == "done" and other.get(job_id)["attempts"] == 2
    finally:
        hung.end()


def test_recovery_rules_on_handed_back_jobs(url: str, stores: list[PostgresJobStore]) -> None:
    """A server that stops cleanly hands its leases back (close): the next recover settles its jobs at once,
    by the same rules as SQLite: resumed until the attempts run out, then failed; done if its write landed."""
    first = _open(stores, url, attempts=2)
    job_id = first.create([("a.txt", b"text")], [], {})
    landed = first.create([("b.txt", b"text")], [], {})
    for expected in ("queued", "failed"):
        s = PostgresJobStore(url, attempts=2, lease=LEASE)
        assert s.claim()["id"] == job_id  # type: ignore[index]
        s.close()
        first.recover(lambda d, h: False)
        assert first.status(job_id) == expected
    message = first.get(job_id)["message"]
    assert "interrupted while parsing by a server that died or hung (its lease lapsed), 2 time(s)" in message
    s = PostgresJobStore(url, attempts=1, lease=LEASE)
    assert s.claim()["id"] == landed and s.start_indexing(landed, [["b.txt", "abc"]])  # type: ignore[index]
    s.close()
    rec = first.recover(lambda d, h: (d, h) == ("b.txt", "abc"))
    assert [j["id"] for j in rec.landed] == [landed]
    assert first.get(landed)["status"] == "done" and first.get(landed)["result"] == {"added": ["b.txt"]}
    assert _spooled_rows(url) == 0


def test_cancel_through_another_server_stops_the_running_one(url: str, stores: list[PostgresJobStore]) -> None:
    runner, front = _open(stores, url), _open(stores, url)
    job_id = front.create([("a.txt", b"x")], [], {}, owner="key-1")
    assert runner.claim()["id"] == job_id  # type: ignore[index]
    with pytest.raises(NotFoundError):
        front.cancel(job_id, owner="key-2")
    assert front.cancel(job_id, owner="key-1")["status"] == "cancelled"
    runner.renew()  # its next lease renewal finds the job no longer running
    assert runner.lost(job_id) and not runner.start_indexing(job_id, [["a.txt", "h"]])
    runner.finish(job_id, "cancelled")
    assert front.get(job_id)["status"] == "cancelled" and _spooled_rows(url) == 0


def test_the_queue_bound_holds_across_servers(url: str, stores: list[PostgresJobStore]) -> None:
    a, b = _open(stores, url, max_active=2), _open(stores, url, max_active=2)
    a.create([("a.txt", b"x")], [], {})
    b.create([("b.txt", b"y")], [], {})
    with pytest.raises(JobQueueFullError, match="RAG_MAX_QUEUED_JOBS"):
        a.create([("c.txt", b"z")], [], {})
    assert _spooled_rows(url) == 2  # the refused job left no bytes behind


def test_a_database_that_goes_away_is_a_typed_503_naming_it() -> None:
    from api.main import _status

    with throwaway_postgres() as gone:
        s = PostgresJobStore(gone, lease=LEASE)
        job_id = s.create([("a.txt", b"x")], [], {})
        assert s.status(job_id) == "queued"
    try:  # that server is stopped and its files deleted now
        with pytest.raises(JobStoreUnavailableError, match=r"upload job database postgresql://rag@127\.0\.0\.1:\d+/"
                           r"postgres is unavailable") as e:
            s.get(job_id)
        assert _status(e.value) == 503
        with pytest.raises(JobStoreUnavailableError):
            s.create([("b.txt", b"y")], [], {})
    finally:
        s.close()
