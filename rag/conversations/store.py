"""``ConversationStore``: conversations, their turns and feedback in SQLite or PostgreSQL (``db.py``).

A turn is written before it is answered (``begin``: question, rewritten query, status ``pending``) and completed
after (``finish``: answer, short answer, citations, refusal flag, latency, model, warnings, status ``done``),
each in its own committed transaction, so a server killed mid-answer keeps the question. Conversations not
updated for ``retention_days`` are deleted (on open, then at most hourly on a write). ``owner`` is the API
key's name (``key-`` + the first 8 hex of its SHA-256; never the key), empty without keys: a caller with a key
sees only its own conversations.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from rag.answer.conversation import Turn
from rag.conversations.db import Result, connect
from rag.core.errors import NotFoundError

PURGE_EVERY = 3600.0


def owner_name(key: str | None) -> str:
    return f"key-{hashlib.sha256(key.encode()).hexdigest()[:8]}" if key else ""


class ConversationStore:
    """``target``: a SQLite file (path or ``sqlite:///path``) or a ``postgresql://`` URL."""

    def __init__(self, target: Path | str, retention_days: float = 0) -> None:
        self.db = connect(target)
        self.retention_days = retention_days
        self._purged = 0.0
        self.purge()

    @property
    def kind(self) -> str:
        return self.db.kind

    def close(self) -> None:
        self.db.close()

    def _tx(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        return self.db.run(sql, args)

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
        with self.db.transaction() as run:
            # the conversation's row first: locks it (PostgreSQL), so two turns never get the same number
            if run("UPDATE conversations SET updated = ?, title = CASE WHEN title = '' THEN ? ELSE title END "
                   "WHERE id = ?", (now, question[:200], cid)).rowcount == 0:
                raise NotFoundError(f"conversation {cid!r} not found")
            got = run("SELECT COALESCE(MAX(turn), 0) + 1 AS n FROM turns WHERE conversation_id = ?", (cid,)).one()
            n = int(got["n"]) if got else 1
            run("INSERT INTO turns(conversation_id, turn, created, question, query, rewrite) "
                "VALUES (?, ?, ?, ?, ?, ?)", (cid, n, now, question, query, rewrite))
        return n

    def finish(self, cid: str, turn: int, answer: dict[str, Any], latency_ms: float, model: str,
               status: str = "done") -> None:
        cites = answer.get("citations") or []
        doc_ids = list(dict.fromkeys(c.get("doc_id", "") for c in cites if c.get("doc_id")))
        text = answer.get("answer") or answer.get("message") or ""
        with self.db.transaction() as run:
            run("UPDATE turns SET status = ?, answer = ?, short_answer = ?, citations = ?, doc_ids = ?, "
                "answerable = ?, latency_ms = ?, model = ?, mode = ?, warnings = ? "
                "WHERE conversation_id = ? AND turn = ?",
                (status, text, answer.get("short_answer") or "", json.dumps(cites, ensure_ascii=False),
                 json.dumps(doc_ids, ensure_ascii=False), None if "answerable" not in answer
                 else int(bool(answer["answerable"])), round(latency_ms, 2), model, answer.get("mode") or "",
                 json.dumps(answer.get("warnings") or [], ensure_ascii=False), cid, turn))
            run("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), cid))

    def feedback(self, cid: str, turn: int, rating: str, comment: str = "", owner: str = "") -> None:
        """Rate a turn (up | down, the latest rating counts); NotFoundError for an unknown conversation or turn."""
        self._conversation(cid, owner)
        if self._tx("SELECT 1 AS x FROM turns WHERE conversation_id = ? AND turn = ?", (cid, turn)).one() is None:
            raise NotFoundError(f"conversation {cid!r} has no turn {turn}")
        self._tx("INSERT INTO feedback(conversation_id, turn, rating, comment, created) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(conversation_id, turn) DO UPDATE SET rating = excluded.rating, "
                 "comment = excluded.comment, created = excluded.created",
                 (cid, turn, rating, comment, time.time()))

    def delete(self, cid: str, owner: str = "") -> bool:
        self.get(cid, owner)  # 404 when unknown or someone else's
        with self.db.transaction() as run:
            run("DELETE FROM feedback WHERE conversation_id = ?", (cid,))
            run("DELETE FROM turns WHERE conversation_id = ?", (cid,))
            return run("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0

    def purge(self, now: float | None = None) -> int:
        """Delete conversations not updated for ``retention_days`` (0 = keep); the number deleted."""
        now = time.time() if now is None else now
        self._purged = now
        if self.retention_days <= 0:
            return 0
        cutoff = now - self.retention_days * 86400
        with self.db.transaction() as run:
            for table in ("feedback", "turns"):
                run(f"DELETE FROM {table} WHERE conversation_id IN "
                    "(SELECT id FROM conversations WHERE updated < ?)", (cutoff,))
            return run("DELETE FROM conversations WHERE updated < ?", (cutoff,)).rowcount

    def _maybe_purge(self) -> None:
        if time.time() - self._purged > PURGE_EVERY:
            self.purge()

    # -- reads -------------------------------------------------------------------------------------------------
    def _conversation(self, cid: str, owner: str) -> dict[str, Any]:
        row = self._tx("SELECT * FROM conversations WHERE id = ?", (cid,)).one()
        if row is None or (owner and row["owner"] != owner):
            raise NotFoundError(f"conversation {cid!r} not found")
        return row

    def get(self, cid: str, owner: str = "") -> dict[str, Any]:
        row = self._conversation(cid, owner)
        turns = self._tx("SELECT t.*, f.rating, f.comment FROM turns t LEFT JOIN feedback f "
                         "ON f.conversation_id = t.conversation_id AND f.turn = t.turn "
                         "WHERE t.conversation_id = ? ORDER BY t.turn", (cid,)).rows
        return {**_conv(row), "turns": [_turn(t) for t in turns]}

    def history(self, cid: str, owner: str = "") -> list[Turn]:
        """The earlier turns as follow-up resolution reads them (oldest first)."""
        return [Turn(t["question"], t["answer"], t["query"], t["short_answer"], t["doc_ids"])
                for t in self.get(cid, owner)["turns"]]

    def list_conversations(self, owner: str = "", limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        where, args = ("WHERE c.owner = ?", (owner,)) if owner else ("", ())
        rows = self._tx(f"SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS turns "
                        f"FROM conversations c {where} ORDER BY c.updated DESC LIMIT ? OFFSET ?",
                        (*args, limit, offset)).rows
        return [{**_conv(r), "turns": int(r["turns"])} for r in rows]

    def turn_rows(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Every answered or pending turn created at or after ``since`` (epoch seconds), with its rating."""
        rows = self._tx("SELECT t.*, c.owner, f.rating, f.comment FROM turns t JOIN conversations c "
                        "ON c.id = t.conversation_id LEFT JOIN feedback f ON f.conversation_id = t.conversation_id "
                        "AND f.turn = t.turn WHERE t.created >= ? ORDER BY t.created", (since,)).rows
        return [{**_turn(r), "conversation_id": r["conversation_id"], "owner": r["owner"]} for r in rows]


def _conv(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "title": row["title"], "owner": row["owner"],
            "created": _iso(row["created"]), "updated": _iso(row["updated"])}


def _turn(row: dict[str, Any]) -> dict[str, Any]:
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
