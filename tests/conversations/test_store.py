"""The conversation store's contract on every database (rag/conversations, issue 16): SQLite (a file) and
PostgreSQL (a throwaway server from tests/pg.py, skipped with the reason when PostgreSQL is not installed).

Round trip (conversation, turns, feedback, report, delete), retention, turn numbers under concurrent writers,
and write-ahead: a process killed with SIGKILL after ``begin`` leaves its turn stored (pending).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.conversations import ConversationStore, open_store, redact, report, report_csv, store_target
from rag.core.config import Settings
from rag.core.errors import NotFoundError
from tests.pg import throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store location per test: a new SQLite file, or a new database on the module's server."""
    if request.param == "sqlite":
        yield str(tmp_path / "c.sqlite3")
        return
    import psycopg

    url: str = request.getfixturevalue("pg_url")
    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield url.rsplit("/", 1)[0] + "/" + name


def test_round_trip(target: str) -> None:
    s = ConversationStore(target)
    assert s.kind == ("postgresql" if target.startswith("postgresql://") else "sqlite")
    cid = s.create("key-0123abcd", "")
    assert s.begin(cid, "呼和浩特市共培育了多少家技术转移机构？", "呼和浩特市共培育了多少家技术转移机构？", "none") == 1
    s.finish(cid, 1, {"answer": "全市共培育技术转移机构34家。[1]", "short_answer": "34家", "answerable": True,
                      "mode": "extractive", "citations": [{"doc_id": "001.txt", "quote": "技术转移机构34家"}],
                      "warnings": []}, 123.456, "policy-rag-extractive")
    assert s.begin(cid, "那新型研发机构呢？", "呼和浩特市共培育了多少家新型研发机构？", "rules") == 2
    got = s.get(cid, "key-0123abcd")
    assert got["title"] == "呼和浩特市共培育了多少家技术转移机构？" and got["owner"] == "key-0123abcd"
    t1, t2 = got["turns"]
    assert (t1["status"], t1["short_answer"], t1["doc_ids"], t1["answerable"]) == ("done", "34家", ["001.txt"], True)
    assert t1["latency_ms"] == pytest.approx(123.46) and t1["citations"][0]["quote"] == "技术转移机构34家"
    assert (t2["status"], t2["rewrite"], t2["answerable"], t2["feedback"]) == ("pending", "rules", None, None)
    hist = s.history(cid)
    assert [h.standalone for h in hist] == [t1["query"], "呼和浩特市共培育了多少家新型研发机构？"]
    assert hist[0].doc_ids == ["001.txt"]
    # feedback: the latest rating counts; unknown turn or conversation, or someone else's -> NotFoundError
    s.feedback(cid, 1, "down", "没说是哪一年")
    s.feedback(cid, 1, "up")
    assert s.get(cid)["turns"][0]["feedback"] == {"rating": "up", "comment": ""}
    for bad in [lambda: s.feedback(cid, 3, "up"), lambda: s.feedback("f" * 32, 1, "up"),
                lambda: s.feedback(cid, 1, "up", owner="key-other"), lambda: s.get(cid, "key-other"),
                lambda: s.begin("f" * 32, "q", "q", "none")]:
        with pytest.raises(NotFoundError):
            bad()
    other = s.create("key-other", "x")
    assert [c["id"] for c in s.list_conversations("key-0123abcd")] == [cid]
    assert {c["id"]: c["turns"] for c in s.list_conversations()} == {cid: 2, other: 0}
    assert [c["id"] for c in s.list_conversations(limit=1, offset=1)] == [cid]  # newest first
    r = report(s, days=1)
    assert (r["turns"], r["answered"], r["pending_or_failed"], r["rewritten"], r["feedback"]) == \
        (2, 1, 1, 0, {"up": 1, "down": 0})
    assert report_csv(s, days=1).count("\n") == 3  # header + one row per turn
    assert s.delete(cid) is True
    with pytest.raises(NotFoundError):
        s.get(cid)
    with pytest.raises(NotFoundError):
        s.delete(cid)
    s.close()
    s2 = ConversationStore(target)  # reopened: the schema is there, the other conversation kept
    assert [c["id"] for c in s2.list_conversations()] == [other]
    s2.close()


def test_retention_deletes_old_conversations_with_their_turns_and_feedback(target: str) -> None:
    s = ConversationStore(target, retention_days=1)
    keep, old = s.create(), s.create()
    for cid in (keep, old):
        s.begin(cid, "q", "q", "none")
        s.feedback(cid, 1, "down")
    s._tx("UPDATE conversations SET updated = ? WHERE id = ?", (time.time() - 2 * 86400, old))
    assert s.purge() == 1 and [c["id"] for c in s.list_conversations()] == [keep]
    assert s._tx("SELECT COUNT(*) AS n FROM turns WHERE conversation_id = ?", (old,)).rows[0]["n"] == 0
    assert s._tx("SELECT COUNT(*) AS n FROM feedback WHERE conversation_id = ?", (old,)).rows[0]["n"] == 0
    s.close()


def test_concurrent_writers_number_turns_once(target: str) -> None:
    """Two stores (two servers) adding turns to one conversation at once: numbers 1..N, none lost."""
    a, b = ConversationStore(target), ConversationStore(target)
    cid = a.create()
    got: list[int] = []

    def add(store: ConversationStore, i: int) -> None:
        got.append(store.begin(cid, f"q{i}", f"q{i}", "none"))
    threads = [threading.Thread(target=add, args=(a if i % 2 else b, i)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == list(range(1, 13)) and len(a.get(cid)["turns"]) == 12
    a.close()
    b.close()


KILLED = """
import sys, time
from rag.conversations import ConversationStore
s = ConversationStore(sys.argv[1])
cid = s.create('', 'killed')
s.begin(cid, '鄂尔多斯实验室的主任是谁？', '鄂尔多斯实验室的主任是谁？', 'none')
print(cid, flush=True)
time.sleep(60)  # 'answering': killed here
"""


def test_a_turn_survives_sigkill_after_begin(target: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED, target], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        cid = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL and len(cid) == 32
    s = ConversationStore(target)
    turns = s.get(cid)["turns"]
    assert [(t["turn"], t["question"], t["status"]) for t in turns] == [(1, "鄂尔多斯实验室的主任是谁？", "pending")]
    s.close()


def test_settings_choose_the_database(tmp_path: Path) -> None:
    base = Settings(index_dir=tmp_path / "index", conversations_db="", database_url="")
    assert store_target(base) == tmp_path / "conversations.sqlite3"
    url = "postgresql://rag:s3cret@db.example:5432/rag"
    assert store_target(base.model_copy(update={"database_url": url})) == url
    assert redact(url) == "postgresql://rag:***@db.example:5432/rag"
    assert open_store(base.model_copy(update={"store_conversations": False})) is None


def test_unreachable_postgres_says_where_without_the_password() -> None:
    pytest.importorskip("psycopg")
    from rag.core.errors import ConfigError
    from tests.conftest import free_port

    with pytest.raises(ConfigError) as e:
        ConversationStore(f"postgresql://rag:s3cret@127.0.0.1:{free_port()}/rag")
    assert "127.0.0.1" in e.value.message and "s3cret" not in e.value.message


def test_rag_report_reads_the_configured_database(target: str) -> None:
    s = ConversationStore(target)
    cid = s.create()
    s.begin(cid, "呼和浩特市共培育了多少家技术转移机构？", "呼和浩特市共培育了多少家技术转移机构？", "none")
    s.finish(cid, 1, {"answer": "34家", "answerable": False}, 5.0, "m")
    s.close()
    url = target if target.startswith("postgresql://") else ""
    env = {**os.environ, "RAG_DATABASE_URL": url, "RAG_CONVERSATIONS_DB": "" if url else target}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "report", "--json", "--days", "1"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout)
    assert (r["turns"], r["refused"]) == (1, 1)
    assert r["refused_questions"][0]["query"] == "呼和浩特市共培育了多少家技术转移机构？"
