"""The audit log (issue 20): one row per write request — upload, replace, delete, metadata edit, conversation
delete, feedback, any other write with a key — with the principal's name, role and how it signed in, the time,
the route and status, the document ids and the sha256 of their text; never a key or a token.

Rows go to the table ``audit`` in the project's database: the conversations' one (``rag.conversations``: the
SQLite file, or PostgreSQL when RAG_DATABASE_URL is set), one committed insert per request.
:class:`AuditMiddleware` writes them after the response: the principal comes from the request state
(api/access.py), the documents from what the pipeline view noted while changing them (api/scoped.py: ids and
content hashes) and from the JSON answer (job ids; ``added``/``replaced``/``deleted``), feedback from its JSON
body. ``GET /v1/audit`` (admin) reads them.

Schema::

    audit(id INTEGER PRIMARY KEY, time REAL, principal TEXT, role TEXT, source TEXT, action TEXT, method TEXT,
          path TEXT, status INTEGER, client TEXT, doc_ids TEXT (JSON), hashes TEXT (JSON: doc_id -> sha256),
          detail TEXT (JSON))
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.conversations.db import Database, connect

logger = logging.getLogger("api")
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL,
    source TEXT NOT NULL, action TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
    client TEXT NOT NULL DEFAULT '', doc_ids TEXT NOT NULL DEFAULT '[]', hashes TEXT NOT NULL DEFAULT '{}',
    detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
CREATE INDEX IF NOT EXISTS audit_principal ON audit(principal, time);
"""
# PostgreSQL: a serial id, and epoch seconds in 8 bytes (its REAL is 4: a timestamp would lose its minutes)
SCHEMA_PG = SCHEMA.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY").replace(
    " REAL", " DOUBLE PRECISION")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
READ_POSTS = {"/v1/search", "/v1/ask", "/v1/answer", "/v1/chat/completions", "/retrieval"}  # reads sent as POST
CAPTURE = 65536  # JSON bodies read for ids (answers of write routes, feedback requests) up to this size


def action_of(method: str, path: str, json_body: bool = False) -> str:
    if path.startswith("/v1/documents"):
        if path.endswith("/metadata") or (method == "PUT" and json_body):  # JSON PUT /v1/documents/{id}: metadata
            return "metadata"
        return {"POST": "upload", "PUT": "replace", "DELETE": "delete", "PATCH": "metadata"}.get(method, "write")
    if path == "/v1/feedback":
        return "feedback"
    if path.startswith("/v1/jobs/") and method == "DELETE":
        return "job-cancel"
    if path.startswith("/v1/conversations/") and method == "DELETE":
        return "conversation-delete"
    return "write"


class AuditLog:
    def __init__(self, target: Path | str) -> None:
        """``target``: a SQLite file or a ``postgresql://`` URL (``rag.conversations.store_target``); opened at
        the first write or read, so a server that writes nothing creates no file (RAG_STORE_CONVERSATIONS=false)."""
        self.target = target
        self._conn: Database | None = None
        self._lock = threading.Lock()

    @property
    def _db(self) -> Database:
        with self._lock:
            if self._conn is None:
                db = connect(self.target)
                for stmt in (SCHEMA_PG if db.kind == "postgresql" else SCHEMA).split(";"):
                    if stmt.strip():
                        db.run(stmt)
                self._conn = db
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def record(self, principal: str, role: str, source: str, action: str, method: str, path: str, status: int,
               client: str = "", doc_ids: list[str] | None = None, hashes: dict[str, str] | None = None,
               detail: dict[str, Any] | None = None, at: float | None = None) -> None:
        self._db.run(
            "INSERT INTO audit(time, principal, role, source, action, method, path, status, client, doc_ids, "
            "hashes, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time() if at is None else at, principal, role, source, action, method, path[:500], status,
             client, json.dumps(list(dict.fromkeys(doc_ids or [])), ensure_ascii=False),
             json.dumps(hashes or {}, ensure_ascii=False), json.dumps(detail or {}, ensure_ascii=False)))

    def query(self, principal: str | None = None, action: str | None = None, doc_id: str | None = None,
              since: float | None = None, until: float | None = None, status: int | None = None,
              limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first; every filter optional (``doc_id``: rows naming that document)."""
        where, args = [], []  # type: ignore[var-annotated]
        for sql, v in (("principal = ?", principal), ("action = ?", action), ("time >= ?", since),
                       ("time <= ?", until), ("status = ?", status)):
            if v is not None:
                where.append(sql)
                args.append(v)
        if doc_id is not None:  # its JSON string inside the list (LIKE: the same SQL on both databases)
            quoted = json.dumps(doc_id, ensure_ascii=False)
            where.append("doc_ids LIKE ? ESCAPE '!'")
            args.append("%" + re.sub(r"([!%_])", r"!\1", quoted) + "%")
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._db.run(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset)).rows
        return [{"id": r["id"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["time"])),
                 "epoch": r["time"], "principal": r["principal"], "role": r["role"], "source": r["source"],
                 "action": r["action"], "method": r["method"], "path": r["path"], "status": r["status"],
                 "client": r["client"], "doc_ids": json.loads(r["doc_ids"]), "hashes": json.loads(r["hashes"]),
                 "detail": json.loads(r["detail"])} for r in rows]


def note(state: Any, doc_ids: list[str], hashes: dict[str, str], **detail: Any) -> None:
    """What a write changed, noted on the request state for the audit row (api/scoped.py calls it)."""
    entry = getattr(state, "audit", None)
    if entry is None:
        entry = {"doc_ids": [], "hashes": {}, "detail": {}}
        state.audit = entry
    entry["doc_ids"] += doc_ids
    entry["hashes"].update(hashes)
    entry["detail"].update(detail)


def _ids_from_answer(body: bytes) -> tuple[list[str], dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        return [], {}
    if not isinstance(data, dict):
        return [], {}
    ids = [str(d) for k in ("added", "replaced", "deleted", "unchanged") for d in data.get(k) or []]
    detail = {k: data[k] for k in ("job_id", "version", "error") if isinstance(data.get(k), (str, int))}
    if isinstance(data.get("doc_id"), str):
        ids.append(data["doc_id"])
    return ids, detail


def _json(scope: Scope) -> bool:
    return any(k == b"content-type" and v.split(b";")[0].strip() == b"application/json"
               for k, v in scope.get("headers", ()))


class AuditMiddleware:
    """One audit row per write request (see the module doc); reads are not logged here."""

    def __init__(self, app: ASGIApp, log: Any) -> None:
        self.app, self.log = app, log  # log: a callable returning the AuditLog (None: not open yet)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        if scope["type"] != "http" or method not in WRITES or path in READ_POSTS or not (
                path.startswith("/v1/") or path == "/retrieval"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status, answer, request = [0], bytearray(), bytearray()
        feedback = path == "/v1/feedback"

        async def tee() -> Message:
            message = await receive()
            if feedback and message["type"] == "http.request" and len(request) < CAPTURE:
                request.extend(message.get("body", b"")[:CAPTURE])
            return message

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            elif message["type"] == "http.response.body" and len(answer) < CAPTURE:
                answer.extend(message.get("body", b"")[:CAPTURE])
            await send(message)

        try:
            await self.app(scope, tee, watch)
        finally:
            self._write(scope, state, method, path, status[0] or 500, bytes(answer), bytes(request))

    def _write(self, scope: Scope, state: dict[str, Any], method: str, path: str, status: int, answer: bytes,
               request: bytes) -> None:
        log = self.log()
        p = state.get("principal")
        if log is None or (p is None and status in (401, 403, 429)):
            return  # refused before anyone was identified: the access log has it
        noted = state.get("audit") or {"doc_ids": [], "hashes": {}, "detail": {}}
        ids, detail = _ids_from_answer(answer) if status < 300 else ([], {})
        if path == "/v1/feedback" and request:
            try:
                fb = json.loads(request)
                detail.update({k: fb[k] for k in ("conversation_id", "turn", "rating") if k in fb})
            except (ValueError, TypeError):
                pass
        m = re.match(r"^/v1/(?:documents|conversations)/([^/]+)", path)
        if m and path.startswith("/v1/documents/"):
            ids = [m.group(1), *ids]
        elif m:
            detail["conversation_id"] = m.group(1)
        client = scope.get("client") or ("", 0)
        try:
            log.record(getattr(p, "name", "unknown"), getattr(p, "role", ""), getattr(p, "source", ""),
                       action_of(method, path, _json(scope)), method, path, status, str(client[0]),
                       [*noted["doc_ids"], *ids], noted["hashes"], {**detail, **noted["detail"]})
        except Exception:  # noqa: BLE001 - the answer is already sent; say so loudly
            logger.exception("could not write the audit row for %s %s", method, path)
