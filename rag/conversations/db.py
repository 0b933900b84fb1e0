"""The conversation store's two databases behind one small interface: SQLite (standard library ``sqlite3``, the
default: one file) and PostgreSQL (psycopg 3, ``RAG_DATABASE_URL=postgresql://…``: several servers, one store).

The store's SQL is written once with ``?`` placeholders and statements both accept (``ON CONFLICT … DO UPDATE``,
``COALESCE``, ``LIMIT … OFFSET``); PostgreSQL gets ``%s`` placeholders and DOUBLE PRECISION for the epoch-second
columns (its REAL is 4 bytes: a timestamp would lose its minutes). Every ``run`` is its own committed
transaction (autocommit); ``transaction()`` groups statements. One connection per store, used under a lock.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError

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
URL_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_LOCK = 0x72616716  # pg_advisory_xact_lock key: two servers starting at once create the tables once


@dataclass
class Result:
    rows: list[dict[str, Any]]
    rowcount: int

    def one(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


Run = Callable[..., Result]  # run(sql, args=()) inside a transaction


def is_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class SQLiteDatabase:
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.where = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a killed process loses no committed turn
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        cur = self._db.execute(sql, args)
        rows = [dict(r) for r in cur.fetchall()] if cur.description else []
        return Result(rows, cur.rowcount)

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        with self._lock:
            return self._run(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Run]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock now: no other writer between read and insert
            try:
                yield self._run
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresDatabase:
    kind = "postgresql"

    def __init__(self, url: str, connect_timeout: float = 10) -> None:
        try:
            import psycopg  # noqa: F401 - checked here so the error says what to install
        except ImportError as e:
            raise ConfigError("RAG_DATABASE_URL is a PostgreSQL URL but psycopg is not installed: "
                                    "pip install -e '.[postgres]'") from e
        self.url, self.where = url, redact(url)
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            self._connect()
            conn: Any = self._conn
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for stmt in SCHEMA.replace(" REAL", " DOUBLE PRECISION").split(";"):
                    if stmt.strip():
                        conn.execute(stmt)

    def _connect(self) -> None:
        import psycopg
        from psycopg.rows import dict_row

        try:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=max(1, int(self._timeout)))
        except psycopg.OperationalError as e:
            raise ConfigError(f"cannot connect to the conversations database {self.where}: "
                                    f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e

    def _ready(self) -> None:
        if self._conn is None or self._conn.closed or self._conn.broken:  # the server restarted: reconnect
            self._connect()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        cur = self._conn.execute(sql.replace("?", "%s"), args)
        rows = list(cur.fetchall()) if cur.description else []
        return Result(rows, cur.rowcount)

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        import psycopg

        with self._lock:
            self._ready()
            try:
                return self._run(sql, args)
            except psycopg.OperationalError:
                if not self._conn.broken:
                    raise
                self._connect()  # one retry on a fresh connection (a single autocommit statement)
                return self._run(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Run]:
        with self._lock:
            self._ready()
            with self._conn.transaction():
                yield self._run

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


Database = SQLiteDatabase | PostgresDatabase


def connect(target: Path | str) -> Database:
    """PostgreSQL for a ``postgresql://`` URL, else the SQLite file at ``target`` (``sqlite:///`` stripped)."""
    if is_url(target):
        return PostgresDatabase(str(target))
    t = str(target)
    return SQLiteDatabase(Path(t[len("sqlite:///"):] if t.startswith("sqlite:///") else t))
