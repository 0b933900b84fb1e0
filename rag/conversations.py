"""Conversations in SQLite (standard library ``sqlite3``, issue 16): one row per conversation, one per turn.
The API writes them (api/followup.py); ``rag report`` and ``GET /v1/report`` read them (``report``).

A turn is written before it is answered (``begin``: question, rewritten query, status ``pending``) and
completed after (``finish``: answer, short answer, citations, refusal flag, latency, model, warnings, status
``done``), each in its own committed transaction in WAL mode, so a server killed mid-answer keeps the
question. Conversations not updated for ``retention_days`` are deleted (on open, then at most hourly on a
write). ``owner`` is the API key's name (``key-`` + the first 8 hex of its SHA-256; never the key), empty
without keys: a caller with a key sees only its own conversations.

Schema::

    conversations(id TEXT PRIMARY KEY, created REAL, updated REAL, owner TEXT, title TEXT)
    turns(conversation_id TEXT, turn INTEGER, created REAL, question TEXT, query TEXT, rewrite TEXT,
          status TEXT, answer TEXT, short_answer TEXT, citations TEXT (JSON), doc_ids TEXT (JSON),
          answerable INTEGER, latency_ms REAL, model TEXT, mode TEXT, warnings TEXT (JSON),
          PRIMARY KEY (conversation_id, turn))
    feedback(conversation_id TEXT, turn INTEGER, rating TEXT ('up' | 'down'), comment TEXT, created REAL,
             PRIMARY KEY (conversation_id, turn))  -- the latest rating of a turn
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rag.answer.conversation import Turn
from rag.core.config import Settings
from rag.core.errors import NotFoundError
from rag.core.text import normalize

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, owner TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE, turn INTEGER NOT NULL,
    created REAL NOT NULL, question TEXT NOT NULL, query TEXT NOT NULL, rewrite TEXT NOT NULL DEFAULT 'none',
    status TEXT NOT NULL DEFAULT 'pending', answer TEXT NOT NULL DEFAULT '', short_answer TEXT NOT NULL DEFAULT '',
    citations TEXT NOT NULL DEFAULT '[]', doc_ids TEXT NOT NULL DEFAULT '[]', answerable INTEGER,
    latency_ms REAL, model TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL DEFAULT '',
    warnings TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (conversation_id, turn));
CREATE TABLE IF NOT EXISTS feedback (
    conversation_id TEXT NOT NULL, turn INTEGER NOT NULL, rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '', created REAL NOT NULL, PRIMARY KEY (conversation_id, turn),
    FOREIGN KEY (conversation_id, turn) REFERENCES turns(conversation_id, turn) ON DELETE CASCADE);
"""
PURGE_EVERY = 3600.0


def db_path(settings: Settings) -> Path:
    url = settings.conversations_db.strip()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url:
        return Path(url)
    return Path(settings.index_dir).resolve().parent / "conversations.sqlite3"


def owner_name(key: str | None) -> str:
    return f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}" if key else ""


class ConversationStore:
    def __init__(self, path: Path | str, retention_days: float = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a killed process loses no committed turn
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
        self._purged = 0.0
        self.purge()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    # -- writes ------------------------------------------------------------------------------------------------
    def create(self, owner: str = "", title: str = "") -> str:
        cid = uuid.uuid4().hex
        now = time.time()
        self._tx("INSERT INTO conversations(id, created, updated, owner, title) VALUES (?, ?, ?, ?, ?)",
                 (cid, now, now, owner, title[:200]))
        self._maybe_purge()
        return cid

    def begin(self, cid: str, question: str, query: str, rewrite: str) -> int:
        """Write the turn before answering it (status pending); returns its number (1-based)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._db.execute("SELECT COALESCE(MAX(turn), 0) + 1 FROM turns WHERE conversation_id = ?",
                                     (cid,)).fetchone()[0]
                self._db.execute("INSERT INTO turns(conversation_id, turn, created, question, query, rewrite) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (cid, n, now, question, query, rewrite))
                self._db.execute("UPDATE conversations SET updated = ?, title = CASE WHEN title = '' THEN ? "
                                 "ELSE title END WHERE id = ?", (now, question[:200], cid))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(n)

    def finish(self, cid: str, turn: int, answer: dict[str, Any], latency_ms: float, model: str,
               status: str = "done") -> None:
        cites = answer.get("citations") or []
        doc_ids = list(dict.fromkeys(c.get("doc_id", "") for c in cites if c.get("doc_id")))
        text = answer.get("answer") or answer.get("message") or ""
        self._tx("UPDATE turns SET status = ?, answer = ?, short_answer = ?, citations = ?, doc_ids = ?, "
                 "answerable = ?, latency_ms = ?, model = ?, mode = ?, warnings = ? "
                 "WHERE conversation_id = ? AND turn = ?",
                 (status, text, answer.get("short_answer") or "", json.dumps(cites, ensure_ascii=False),
                  json.dumps(doc_ids, ensure_ascii=False), None if "answerable" not in answer
                  else int(bool(answer["answerable"])), round(latency_ms, 2), model, answer.get("mode") or "",
                  json.dumps(answer.get("warnings") or [], ensure_ascii=False), cid, turn))
        self._tx("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), cid))

    def feedback(self, cid: str, turn: int, rating: str, comment: str = "", owner: str = "") -> None:
        """Rate a turn (up | down, the latest rating counts); NotFoundError for an unknown conversation or turn."""
        self._conversation(cid, owner)
        if self._tx("SELECT 1 FROM turns WHERE conversation_id = ? AND turn = ?", (cid, turn)).fetchone() is None:
            raise NotFoundError(f"conversation {cid!r} has no turn {turn}")
        self._tx("INSERT INTO feedback(conversation_id, turn, rating, comment, created) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(conversation_id, turn) DO UPDATE SET rating = excluded.rating, "
                 "comment = excluded.comment, created = excluded.created",
                 (cid, turn, rating, comment, time.time()))

    def delete(self, cid: str, owner: str = "") -> bool:
        self.get(cid, owner)  # 404 when unknown or someone else's
        with self._lock:
            self._db.execute("DELETE FROM feedback WHERE conversation_id = ?", (cid,))
            self._db.execute("DELETE FROM turns WHERE conversation_id = ?", (cid,))
            return self._db.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0

    def purge(self, now: float | None = None) -> int:
        """Delete conversations not updated for ``retention_days`` (0 = keep); the number deleted."""
        now = time.time() if now is None else now
        self._purged = now
        if self.retention_days <= 0:
            return 0
        cutoff = now - self.retention_days * 86400
        with self._lock:
            for table in ("feedback", "turns"):
                self._db.execute(f"DELETE FROM {table} WHERE conversation_id IN "
                                 "(SELECT id FROM conversations WHERE updated < ?)", (cutoff,))
            return self._db.execute("DELETE FROM conversations WHERE updated < ?", (cutoff,)).rowcount

    def _maybe_purge(self) -> None:
        if time.time() - self._purged > PURGE_EVERY:
            self.purge()

    # -- reads -------------------------------------------------------------------------------------------------
    def _conversation(self, cid: str, owner: str) -> sqlite3.Row:
        row = self._tx("SELECT * FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None or (owner and row["owner"] != owner):
            raise NotFoundError(f"conversation {cid!r} not found")
        return row  # type: ignore[no-any-return]

    def get(self, cid: str, owner: str = "") -> dict[str, Any]:
        row = self._conversation(cid, owner)
        turns = self._tx("SELECT t.*, f.rating, f.comment FROM turns t LEFT JOIN feedback f "
                         "ON f.conversation_id = t.conversation_id AND f.turn = t.turn "
                         "WHERE t.conversation_id = ? ORDER BY t.turn", (cid,)).fetchall()
        return {**_conv(row), "turns": [_turn(t) for t in turns]}

    def history(self, cid: str, owner: str = "") -> list[Turn]:
        """The earlier turns as follow-up resolution reads them (oldest first)."""
        return [Turn(t["question"], t["answer"], t["query"], t["short_answer"], t["doc_ids"])
                for t in self.get(cid, owner)["turns"]]

    def list_conversations(self, owner: str = "", limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        where, args = ("WHERE c.owner = ?", (owner,)) if owner else ("", ())
        rows = self._tx(f"SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS turns "
                        f"FROM conversations c {where} ORDER BY c.updated DESC LIMIT ? OFFSET ?",
                        (*args, limit, offset)).fetchall()
        return [{**_conv(r), "turns": r["turns"]} for r in rows]


    def turn_rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Every answered or pending turn created at or after ``since`` (epoch seconds), with its rating."""
        rows = self._tx("SELECT t.*, c.owner, f.rating, f.comment FROM turns t JOIN conversations c "
                        "ON c.id = t.conversation_id LEFT JOIN feedback f ON f.conversation_id = t.conversation_id "
                        "AND f.turn = t.turn WHERE t.created >= ? ORDER BY t.created", (since,)).fetchall()
        return [{**_turn(r), "conversation_id": r["conversation_id"], "owner": r["owner"]} for r in rows]


def _key(q: str) -> str:
    """Questions counted together: case, width, spaces and end punctuation aside."""
    return normalize(q).strip().rstrip("?？。.!！ ")


def _percentile(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return round(xs[k], 1)


def report(store: ConversationStore, days: float = 30, top: int = 20) -> dict[str, Any]:
    """For the people who keep the corpus: the most asked questions (by the standalone query), the refused ones
    (what the documents lack), answers rated 👎, latency percentiles and counts over the last ``days`` (0: all)."""
    since = time.time() - days * 86400 if days > 0 else 0.0
    rows = store.turn_rows(since)
    done = [r for r in rows if r["status"] == "done"]
    asked: dict[str, dict[str, Any]] = {}
    for r in done:
        k = _key(r["query"])
        e = asked.setdefault(k, {"query": r["query"], "count": 0, "refused": 0, "down": 0, "up": 0})
        e["count"] += 1
        e["refused"] += r["answerable"] is False
        if r["feedback"]:
            e[r["feedback"]["rating"]] += 1
    by_count = sorted(asked.values(), key=lambda e: (-e["count"], e["query"]))
    refused = sorted((e for e in asked.values() if e["refused"]), key=lambda e: (-e["refused"], e["query"]))
    down = [{"conversation_id": r["conversation_id"], "turn": r["turn"], "created": r["created"],
             "question": r["question"], "query": r["query"], "answer": r["answer"][:300],
             "comment": r["feedback"]["comment"]} for r in done if r["feedback"] and r["feedback"]["rating"] == "down"]
    lat = [float(r["latency_ms"]) for r in done if r["latency_ms"] is not None]
    return {"days": days, "turns": len(rows), "answered": sum(r["answerable"] is True for r in done),
            "refused": sum(r["answerable"] is False for r in done), "pending_or_failed": len(rows) - len(done),
            "conversations": len({r["conversation_id"] for r in rows}),
            "rewritten": sum(r["rewrite"] != "none" for r in done),
            "feedback": {"up": sum(bool(r["feedback"]) and r["feedback"]["rating"] == "up" for r in done),
                         "down": len(down)},
            "latency_ms": {f"p{p}": _percentile(lat, p) for p in (50, 90, 95, 99)},
            "most_asked": by_count[:top], "refused_questions": refused[:top], "rated_down": down[-top:][::-1]}


CSV_FIELDS = ["created", "conversation_id", "turn", "owner", "question", "query", "rewrite", "status", "answerable",
              "short_answer", "doc_ids", "latency_ms", "model", "mode", "rating", "comment"]


def report_csv(store: ConversationStore, days: float = 30) -> str:
    """One row per turn (the fields above) for a spreadsheet."""
    since = time.time() - days * 86400 if days > 0 else 0.0
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for r in store.turn_rows(since):
        fb = r["feedback"] or {}
        w.writerow([r["created"], r["conversation_id"], r["turn"], r["owner"], r["question"], r["query"],
                    r["rewrite"], r["status"], "" if r["answerable"] is None else int(r["answerable"]),
                    r["short_answer"], " ".join(r["doc_ids"]), r["latency_ms"], r["model"], r["mode"],
                    fb.get("rating", ""), fb.get("comment", "")])
    return out.getvalue()


def _conv(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "owner": row["owner"],
            "created": _iso(row["created"]), "updated": _iso(row["updated"])}


def _turn(row: sqlite3.Row) -> dict[str, Any]:
    return {"turn": row["turn"], "created": _iso(row["created"]), "question": row["question"],
            "query": row["query"], "rewrite": row["rewrite"], "status": row["status"], "answer": row["answer"],
            "short_answer": row["short_answer"], "citations": json.loads(row["citations"]),
            "doc_ids": json.loads(row["doc_ids"]),
            "answerable": None if row["answerable"] is None else bool(row["answerable"]),
            "latency_ms": row["latency_ms"], "model": row["model"], "mode": row["mode"],
            "warnings": json.loads(row["warnings"]),
            "feedback": None if row["rating"] is None else {"rating": row["rating"], "comment": row["comment"]}}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def open_store(settings: Settings) -> ConversationStore | None:
    """The app's store, or None when RAG_STORE_CONVERSATIONS=false (nothing is written, no file created)."""
    if not settings.store_conversations:
        return None
    return ConversationStore(db_path(settings), settings.conversation_retention_days)
