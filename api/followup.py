"""Follow-ups for the answer routes (issue 16): the earlier turns (sent as ``history``, as OpenAI ``messages``,
or stored under ``conversation_id``) -> the standalone query (rag/answer/conversation.py, with the LLM condense
step when one is configured) -> the turn logged before and after answering (rag/conversations.py).

``start`` blocks (SQLite, maybe the LLM): routes call it in the thread pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from api.access import principal_of
from rag.answer.conversation import Condense, Resolution, Turn, prefer_documents, resolve, suggest, trim
from rag.answer.llm import OpenAICompatGenerator
from rag.conversations import ConversationStore
from rag.core.config import Settings
from rag.core.errors import InvalidInputError
from rag.core.text import normalize

logger = logging.getLogger("api")

STORAGE_OFF = ("conversation storage is off (RAG_STORE_CONVERSATIONS=false): send the earlier turns in "
               "'history' (or the OpenAI 'messages') instead of a conversation_id")


def create_condenser(settings: Settings) -> OpenAICompatGenerator | None:
    """A client of its own for the condense step: short deadline, no retries, a short reply."""
    if not settings.llm_base_url or settings.condense == "rules":
        return None
    return OpenAICompatGenerator(settings.llm_base_url, settings.llm_model, settings.llm_api_key,
                                 timeout=settings.condense_timeout, retries=0, temperature=0.0, max_tokens=200,
                                 deadline=settings.condense_timeout, concurrency=settings.llm_concurrency,
                                 slot_wait=min(settings.llm_slot_wait, 1.0), max_reply_chars=2000)


def caller_owner(request: Request, settings: Settings) -> str:
    """Whose conversations (and jobs) these are: the principal's owner name (``key-<sha8>`` for a RAG_API_KEYS
    key, ``p-<name>`` for a named one; ``anonymous`` without a key once keys exist; "" = all, without keys)."""
    return principal_of(request).owner


def _same(a: str, b: str) -> bool:
    return bool(a) and normalize(a).strip(" 。.，,？?") == normalize(b).strip(" 。.，,？?")


class PreferringPipeline:
    """The pipeline for a follow-up: search moves hits of the previous turn's documents up, and an elliptical
    follow-up is not given the previous turn's answer again. The rewrite (``那减免所得税呢？`` -> ``1105家企业
    享受…加计扣除多少？`` with 减免所得税 in place of the attribute) keeps the previous question's words, and when
    both answers sit in one sentence the reader picks the old one; then the same passages are read again for
    the question as asked, and that answer is used when it differs."""

    def __init__(self, pipeline: Any, doc_ids: list[str], resolution: Resolution | None = None) -> None:
        self._p = pipeline
        self._doc_ids = doc_ids
        self._res = resolution

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)

    def search(self, query: str, top_k: int = 5, mode: str = "hybrid", timings: dict[str, float] | None = None,
               filters: Any = None, rerank: bool | None = None) -> tuple[list[Any], Any]:
        if not self._doc_ids:
            return self._p.search(query, top_k, mode, timings, filters, rerank)  # type: ignore[no-any-return]
        n = min(max(top_k * 2, top_k + 5), int(getattr(self._p.settings, "max_top_k", 100)))
        hits, qvec = self._p.search(query, max(n, top_k), mode, timings, filters, rerank)
        return prefer_documents(hits, self._doc_ids, top_k), qvec

    def extractive(self, query: str, qvec: Any, hits: list[Any], timings: dict[str, float]) -> Any:
        a = self._p.extractive(query, qvec, hits, timings)
        r = self._res
        if r is None or r.kind != "ellipsis" or not a.answerable or not _same(a.short_answer, r.previous_short):
            return a
        b = self._p.extractive(r.question.strip(), qvec, hits, timings)
        if not b.answerable or not b.short_answer or _same(b.short_answer, r.previous_short):
            return a
        b.warnings = [*b.warnings, f"the rewritten query gave the previous answer again; answered "
                                   f"{r.question.strip()!r} from the same passages"]
        return b


@dataclass
class FollowUp:
    resolution: Resolution
    store: ConversationStore | None = None
    conversation_id: str | None = None
    turn: int | None = None
    t0: float = field(default_factory=time.perf_counter)
    model: str = ""  # the LLM's name, stored with a turn it answered
    asked: list[str] = field(default_factory=list)  # the earlier questions (not suggested again)

    @property
    def query(self) -> str:
        return self.resolution.query

    def pipeline(self, pipeline: Any) -> Any:
        r = self.resolution
        return PreferringPipeline(pipeline, r.doc_ids, r) if r.doc_ids or r.kind == "ellipsis" else pipeline

    def fields(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "turn": self.turn, "query_used": self.resolution.query,
                "rewrite": self.resolution.method}

    def merge(self, out: dict[str, Any]) -> dict[str, Any]:
        """The response JSON with the conversation fields, the resolution's warnings and up to three suggested
        follow-up questions drawn from the cited passages."""
        out.update(self.fields())
        out["warnings"] = list(dict.fromkeys([*self.resolution.warnings, *(out.get("warnings") or [])]))
        out["suggestions"] = self.suggestions(out) if out.get("answerable") else []
        return out

    def suggestions(self, out: dict[str, Any]) -> list[str]:
        cites = out.get("citations") or []
        by_chunk = {p["chunk_id"]: p["text"] for p in out.get("passages") or []}
        texts = list(dict.fromkeys(by_chunk.get(c["chunk_id"], c["quote"]) for c in cites))
        try:
            return suggest(self.resolution.query, texts, [*self.asked, self.resolution.question],
                           answer=out.get("short_answer") or "")
        except Exception:  # noqa: BLE001 - suggestions are a convenience
            logger.exception("follow-up suggestions failed")
            return []

    def finish(self, out: dict[str, Any], model: str) -> None:
        if self.store is None or self.conversation_id is None or self.turn is None:
            return
        try:
            self.store.finish(self.conversation_id, self.turn, out, (time.perf_counter() - self.t0) * 1000, model)
        except Exception:  # noqa: BLE001 - the answer is sent even when logging it fails
            logger.exception("could not store turn %s of conversation %s", self.turn, self.conversation_id)

    def fail(self, model: str, why: str) -> None:
        if self.store is not None and self.conversation_id is not None and self.turn is not None:
            try:
                self.store.finish(self.conversation_id, self.turn, {"warnings": [why]},
                                  (time.perf_counter() - self.t0) * 1000, model, status="error")
            except Exception:  # noqa: BLE001
                logger.exception("could not store the failure of conversation %s", self.conversation_id)


def start(request: Request, question: str, history: list[Turn] | None = None,
          conversation_id: str | None = None, store_turn: bool = True) -> FollowUp:
    """Resolve ``question`` against the earlier turns and, when storing, write the turn (pending)."""
    settings: Settings = request.app.state.settings
    store: ConversationStore | None = getattr(request.app.state, "conversations", None)
    owner = caller_owner(request, settings)
    turns = list(history or [])
    if conversation_id:
        if store is None:
            raise InvalidInputError(STORAGE_OFF)
        stored = store.history(conversation_id, owner)  # NotFoundError (404) when unknown
        turns = stored or turns
    kept, warnings = trim(turns, settings.max_history_turns)
    condenser = getattr(request.app.state, "condenser", None)
    condense: Condense | None = None
    if condenser is not None:
        def condense(messages: list[dict[str, Any]]) -> str:
            return condenser.chat(messages, temperature=0.0, max_tokens=200)  # type: ignore[no-any-return]
    res = resolve(question, kept, condense, always_condense=settings.condense == "llm-always")
    res.warnings = [*warnings, *res.warnings]
    f = FollowUp(res, asked=[t.standalone for t in kept])
    if store is not None and store_turn:
        cid = conversation_id or store.create(owner, question)
        f.store, f.conversation_id = store, cid
        f.turn = store.begin(cid, question, res.query, res.method)
    return f
