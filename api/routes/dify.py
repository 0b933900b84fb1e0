"""Dify external knowledge API: POST /retrieval.

Point a Dify "external knowledge API" at this service's base URL (Dify appends /retrieval). Records are
the hybrid-ranked passages; ``score`` is the dense cosine to the query, filtered by ``score_threshold``.
With RAG_DIFY_API_KEY set, ``Authorization: Bearer KEY`` is required (Dify's error codes 1001/1002);
otherwise the API's read access rules apply (RAG_API_KEYS when read keys are required). Rate-limited.
Dify's ``metadata_condition`` filters the documents searched (``api/dify_filters.py``), as do the filter fields of
/v1/search sent beside it (``issuer``, ``as_of``, ``include_superseded``, …); by default only documents in force.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from api import followup
from api.deps import PipelineDep, _limit, limit_failed_auth, require_read
from api.dify_filters import apply_condition
from api.schemas import FilterFields, HistoryTurn, check_query
from api.security import key_matches
from rag.core import docmeta
from rag.core.types import Document

router = APIRouter(tags=["dify"])
META_KEYS = ("issuer", "doc_number", "date_written", "date_published", "date_effective", "date_expires", "subjects")


class RetrievalSetting(BaseModel):
    model_config = ConfigDict(extra="allow")

    top_k: int = Field(5, ge=1, le=100, strict=True)
    score_threshold: float = Field(0.0, ge=0.0, le=1.0)


class RetrievalRequest(FilterFields):
    model_config = ConfigDict(extra="allow")  # metadata_condition etc.

    knowledge_id: str = ""
    query: str = Field(..., min_length=1)
    retrieval_setting: RetrievalSetting = Field(default_factory=lambda: RetrievalSetting.model_validate({}))
    # issue 16: Dify sends the query only; a caller that has the conversation may send it, and a follow-up is
    # then searched as its standalone rewrite (query_used)
    history: list[HistoryTurn] | None = Field(None, max_length=100)
    conversation_id: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{32}$")

    @field_validator("query")
    @classmethod
    def plain_query(cls, v: str) -> str:
        return check_query(v)


class Record(BaseModel):
    content: str
    score: float
    title: str
    metadata: dict[str, Any] = {}


class RetrievalResponse(BaseModel):
    records: list[Record]
    query_used: str | None = Field(None, description="The standalone query searched (extension)")


def _auth_error(request: Request, key: str) -> JSONResponse | None:
    if not key:
        return None
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse({"error_code": 1001, "error_msg": "Invalid Authorization header format. "
                             "Expected 'Bearer <api-key>' format."}, status_code=403)
    if not key_matches(token.strip(), key):
        return JSONResponse({"error_code": 1002, "error_msg": "Authorization failed"}, status_code=403)
    return None


def _document_fields(doc: Document | None, as_of: str | None) -> dict[str, Any]:
    """The 公文 metadata of a record's document and its status (on ``as_of``, default today)."""
    if doc is None:
        return {}
    out: dict[str, Any] = {k: doc.meta[k] for k in META_KEYS if doc.meta.get(k)}
    out["status"] = docmeta.status(doc.meta, as_of)
    return out


@router.post("/retrieval", response_model=RetrievalResponse)
async def retrieval(req: RetrievalRequest, request: Request, pipeline: PipelineDep):  # type: ignore[no-untyped-def]
    """Passages for a Dify knowledge-base query: content, cosine score, title and source metadata."""
    key = getattr(pipeline.settings, "dify_api_key", "")
    if key:
        err = _auth_error(request, key)
        if err is not None:
            limit_failed_auth(request)  # 429 once this address has failed too often
            return err
        _limit(request, "dify")
    else:
        require_read(request)
    rs = req.retrieval_setting
    fu = await run_in_threadpool(followup.start, request, req.query,
                                 [h.turn() for h in req.history or []], req.conversation_id, False)
    filters = apply_condition(req.filters(), (req.model_extra or {}).get("metadata_condition"))
    hits, _ = await run_in_threadpool(fu.pipeline(pipeline).search, fu.query, rs.top_k, "hybrid", None, filters)
    records = []
    docs = getattr(pipeline.index, "documents", {})
    for h in hits:
        score = float(h.dense) if h.dense is not None else 0.0
        if score < rs.score_threshold:
            continue
        c = h.chunk
        records.append(Record(content=c.text, score=round(score, 4), title=c.title or c.doc_id,
                              metadata={"path": c.doc_id, "doc_id": c.doc_id, "chunk_id": c.chunk_id,
                                        "section": c.section, "start": c.start, "end": c.end, "rank": h.rank,
                                        "hybrid_score": round(h.score, 6),
                                        "bm25_score": None if h.bm25 is None else round(h.bm25, 4),
                                        **_document_fields(docs.get(c.doc_id), filters.as_of)}))
    return RetrievalResponse(records=records, query_used=fu.query)
