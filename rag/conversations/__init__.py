"""Conversations and feedback (issue 16): one row per conversation, one per turn, the latest rating per turn.
The API writes them (api/followup.py); ``rag report`` and ``GET /v1/report`` read them (``report``).

Where: SQLite by default (``RAG_CONVERSATIONS_DB``, else ``conversations.sqlite3`` beside the index folder, WAL
mode); PostgreSQL when ``RAG_DATABASE_URL=postgresql://user:password@host:5432/db`` (psycopg 3:
``pip install -e '.[postgres]'``), for deployments where several servers share one store. ``db.py`` holds
both; ``store.py`` the store (write-ahead turns, retention, owners); ``report.py`` the questions report.

Schema (both databases; PostgreSQL stores the REAL epoch seconds as DOUBLE PRECISION)::

    conversations(id TEXT PRIMARY KEY, created REAL, updated REAL, owner TEXT, title TEXT)
    turns(conversation_id TEXT, turn INTEGER, created REAL, question TEXT, query TEXT, rewrite TEXT,
          status TEXT, answer TEXT, short_answer TEXT, citations TEXT (JSON), doc_ids TEXT (JSON),
          answerable INTEGER, latency_ms REAL, model TEXT, mode TEXT, warnings TEXT (JSON),
          PRIMARY KEY (conversation_id, turn))
    feedback(conversation_id TEXT, turn INTEGER, rating TEXT ('up' | 'down'), comment TEXT, created REAL,
             PRIMARY KEY (conversation_id, turn))  -- the latest rating of a turn
"""

from __future__ import annotations

from pathlib import Path

from rag.conversations.db import is_url, redact
from rag.conversations.report import CSV_FIELDS, report, report_csv
from rag.conversations.store import ConversationStore, owner_name
from rag.core.config import Settings


def db_path(settings: Settings) -> Path:
    """The SQLite file (used when no RAG_DATABASE_URL is set)."""
    url = settings.conversations_db.strip()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url:
        return Path(url)
    return Path(settings.index_dir).resolve().parent / "conversations.sqlite3"


def store_target(settings: Settings) -> Path | str:
    """RAG_DATABASE_URL when it is set (PostgreSQL), else the SQLite file."""
    url = settings.database_url.strip()
    return url if url else db_path(settings)


def open_store(settings: Settings) -> ConversationStore | None:
    """The app's store, or None when RAG_STORE_CONVERSATIONS=false (nothing is written, no file created)."""
    if not settings.store_conversations:
        return None
    return ConversationStore(store_target(settings), settings.conversation_retention_days)


__all__ = ["CSV_FIELDS", "ConversationStore", "db_path", "is_url", "open_store", "owner_name", "redact", "report",
           "report_csv", "store_target"]
