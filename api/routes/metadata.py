"""Edit a document's 公文 metadata (issue 17, item 4): ``PUT /v1/documents/{id}`` with a JSON body (a multipart
body there still replaces the file: ``api/routes/documents.py``), also at ``PUT /v1/documents/{id}/metadata``.

Partial: only the fields sent change; ``null`` removes one (the title cannot be removed). Dates are checked as
real ``YYYY-MM-DD`` days (422 otherwise). ``repeals`` (titles or 发文字号 of the documents this one repeals)
replaces what was read from the text, and the validity links of every document are recomputed. The edit is a
new index version written under the index lock without re-embedding (``rag/index/edit.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import Scope

from api.deps import PipelineDep, WriteAccess
from api.schemas import ErrorResponse, check_day
from rag.core import docmeta
from rag.core.types import Document
from rag.ingest.metadata import DOC_NUMBER


class JsonBodyRoute(APIRoute):
    """Matches only requests with a JSON body, so a JSON ``PUT /v1/documents/{id}`` edits the metadata while a
    multipart one goes on to the file-replacing route registered after it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match == Match.FULL:
            ctype = dict(scope.get("headers") or []).get(b"content-type", b"")
            if not ctype.split(b";")[0].strip().lower().endswith(b"json"):
                return Match.NONE, {}
        return match, child


router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[WriteAccess],
                   responses={422: {"model": ErrorResponse}})
json_router = APIRouter(prefix="/v1", tags=["documents"], dependencies=[WriteAccess], route_class=JsonBodyRoute)


class MetadataUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=300)
    issuer: str | None = Field(None, max_length=100, description="发文机关")
    doc_number: str | None = Field(None, max_length=100, description="发文字号, e.g. 内政发〔2023〕12号")
    date_written: str | None = Field(None, description="成文日期 YYYY-MM-DD")
    date_published: str | None = Field(None, description="发布日期 YYYY-MM-DD")
    date_effective: str | None = Field(None, description="施行日期 YYYY-MM-DD")
    date_expires: str | None = Field(None, description="有效期至 YYYY-MM-DD")
    subjects: list[str] | None = Field(None, max_length=50, description="主题词")
    repeals: list[str] | None = Field(None, max_length=50, description="Titles (《…》) or 发文字号 of the "
                                      "documents this one repeals; replaces those read from its text")

    @field_validator("date_written", "date_published", "date_effective", "date_expires")
    @classmethod
    def real_day(cls, v: str | None) -> str | None:
        return check_day(v)

    @field_validator("subjects", "repeals")
    @classmethod
    def words(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not w.strip() or len(w) > 200 for w in v):
            raise ValueError("each entry must be non-empty text of at most 200 characters")
        return None if v is None else [w.strip() for w in v]

    @model_validator(mode="after")
    def ordered(self) -> MetadataUpdate:
        if self.date_effective and self.date_expires and self.date_expires < self.date_effective:
            raise ValueError(f"date_expires {self.date_expires} is before date_effective {self.date_effective}")
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.model_fields_set}
        if out.get("doc_number"):
            out["doc_number"] = docmeta.normalise_number(out["doc_number"])
        if out.get("repeals"):
            out["repeals"] = [{"doc_number": docmeta.normalise_number(r)} if DOC_NUMBER.fullmatch(r)
                              else {"title": r.strip("《》")} for r in out["repeals"]]
        return out


class DocumentMeta(BaseModel):
    doc_id: str
    title: str
    status: str = Field(..., description=f"Today: one of {', '.join(docmeta.STATUSES)}")
    metadata: dict[str, Any] = Field(..., description="issuer, doc_number, dates, subjects, repeals")
    superseded_by: dict[str, Any] | None = Field(None, description="The document that repealed or amended it")
    supersedes: list[str] = []

    @classmethod
    def of(cls, d: Document) -> DocumentMeta:
        keys = (*docmeta.FIELDS, "repeals")
        return cls(doc_id=d.doc_id, title=d.title, status=docmeta.status(d.meta),
                   metadata={k: d.meta[k] for k in keys if k in d.meta and k != "title"},
                   superseded_by=d.meta.get("superseded_by"), supersedes=list(d.meta.get("supersedes") or []))


async def _edit(doc_id: str, body: MetadataUpdate, pipeline: Any) -> DocumentMeta:
    doc = await run_in_threadpool(pipeline.edit_metadata, doc_id, body.changes())
    return DocumentMeta.of(doc)


@router.put("/documents/{doc_id}/metadata", response_model=DocumentMeta)
async def edit_metadata(doc_id: str, body: MetadataUpdate, pipeline: PipelineDep) -> DocumentMeta:
    """Change a document's metadata (partial; null removes a field) without re-embedding it."""
    return await _edit(doc_id, body, pipeline)


@json_router.put("/documents/{doc_id}", response_model=DocumentMeta, include_in_schema=False)
async def edit_metadata_put(doc_id: str, body: MetadataUpdate, pipeline: PipelineDep) -> DocumentMeta:
    """``PUT /v1/documents/{id}`` with a JSON body: the same edit (a multipart body replaces the file)."""
    return await _edit(doc_id, body, pipeline)
