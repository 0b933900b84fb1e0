"""Request/response models at the HTTP edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.core.types import Filters
from rag.output import Passage

MAX_QUERY = 1000


def has_control_chars(text: str) -> bool:
    """NUL, ESC and the other C0 controls except tab and line breaks (plain text never has them)."""
    return any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text)


def check_query(v: str, what: str = "query") -> str:
    """The stripped query; ValueError (-> 422) when it is blank or holds control characters."""
    v = v.strip()
    if not v:
        raise ValueError(f"{what} is empty or whitespace: send a question or keywords")
    if has_control_chars(v):
        raise ValueError(f"{what} contains control characters: send plain text")
    return v


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY, description="Question or keywords")
    top_k: int = Field(5, ge=1, le=100, strict=True, description="Number of passages to return")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    doc_ids: list[str] | None = Field(None, max_length=1000, description="Only these documents")
    collection: str | None = Field(None, max_length=100, description="Only this collection")
    types: list[str] | None = Field(None, description="Only these source types (txt, md, pdf, docx, html)")
    tags: list[str] | None = Field(None, description="Documents carrying all these tags")
    date_from: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    date_to: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")

    def filters(self) -> Filters:
        return Filters(self.doc_ids, self.collection, self.types, self.tags, self.date_from, self.date_to)

    @field_validator("query")
    @classmethod
    def not_blank(cls, v: str) -> str:
        return check_query(v)


class AskRequest(SearchRequest):
    pass


class SearchResponse(BaseModel):
    results: list[Passage]
    took_ms: float


class ErrorResponse(BaseModel):
    error: str
    message: str
    detail: list[dict] | None = None


class Health(BaseModel):
    status: str
    ready: bool
    index_chunks: int = 0
    index_documents: int = 0
    model: str = ""
    index_version: str = ""
    llm: bool = Field(False, description="An LLM is configured (RAG_LLM_BASE_URL): mode=llm can generate")
    error: str = ""
