"""Request/response models at the HTTP edge."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.answer.conversation import Turn
from rag.core.types import Filters
from rag.output import AskResponse, Passage

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


ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"


def check_day(v: str | None) -> str | None:
    """A real calendar day ``YYYY-MM-DD`` (ValueError -> 422 otherwise)."""
    if v is None:
        return v
    try:
        return dt.date.fromisoformat(v).isoformat()
    except ValueError:
        raise ValueError(f"{v[:40]!r} is not a date: use YYYY-MM-DD, e.g. 2024-03-01") from None


class FilterFields(BaseModel):
    """Which documents a request searches: metadata filters (``rag.core.types.Filters``) and validity."""

    doc_ids: list[str] | None = Field(None, max_length=1000, description="Only these documents")
    collection: str | None = Field(None, max_length=100, description="Only this collection")
    types: list[str] | None = Field(None, description="Only these source types (txt, md, pdf, docx, html)")
    tags: list[str] | None = Field(None, description="Documents carrying all these tags")
    date_from: str | None = Field(None, pattern=ISO_DAY, description="Document date (upload date, else 发布日期, "
                                  "else 成文日期) on or after")
    date_to: str | None = Field(None, pattern=ISO_DAY)
    title: str | None = Field(None, max_length=200, description="Title contains this")
    issuer: str | None = Field(None, max_length=100, description="发文机关 contains this")
    doc_number: str | None = Field(None, max_length=100, description="发文字号, e.g. 内政发〔2023〕12号")
    subjects: list[str] | None = Field(None, max_length=50, description="主题词: documents carrying all of them")
    effective_from: str | None = Field(None, pattern=ISO_DAY, description="施行日期 on or after")
    effective_to: str | None = Field(None, pattern=ISO_DAY)
    expires_from: str | None = Field(None, pattern=ISO_DAY, description="有效期至 on or after")
    expires_to: str | None = Field(None, pattern=ISO_DAY)
    as_of: str | None = Field(None, pattern=ISO_DAY, description="Answer as of this day: the documents in force "
                              "then (default today)")
    include_superseded: bool | None = Field(None, strict=True, description="Also superseded and expired documents "
                                            "(each cited one flagged in warnings); default RAG_INCLUDE_SUPERSEDED")

    @field_validator("date_from", "date_to", "effective_from", "effective_to", "expires_from", "expires_to",
                     "as_of")
    @classmethod
    def real_day(cls, v: str | None) -> str | None:
        return check_day(v)

    def filters(self) -> Filters:
        return Filters(self.doc_ids, self.collection, self.types, self.tags, self.date_from, self.date_to,
                       self.title, self.issuer, self.doc_number, self.subjects, self.effective_from,
                       self.effective_to, self.expires_from, self.expires_to, self.as_of, self.include_superseded)


class SearchRequest(FilterFields):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY, description="Question or keywords")
    top_k: int = Field(5, ge=1, le=100, strict=True, description="Number of passages to return")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"

    @field_validator("query")
    @classmethod
    def not_blank(cls, v: str) -> str:
        return check_query(v)


class HistoryTurn(BaseModel):
    """An earlier turn of the conversation (oldest first in ``history``)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=MAX_QUERY)
    answer: str = Field("", max_length=20000, description="The answer given (helps the LLM condense step)")
    query: str = Field("", max_length=MAX_QUERY, description="The standalone query it was answered with "
                       "(query_used of its response), when known")
    short_answer: str = Field("", max_length=1000)
    doc_ids: list[str] = Field(default_factory=list, max_length=100, description="Documents it cited: a "
                               "follow-up prefers them")

    @field_validator("question", "answer", "query", "short_answer")
    @classmethod
    def plain(cls, v: str) -> str:
        if has_control_chars(v):
            raise ValueError("history contains control characters: send plain text")
        return v

    def turn(self) -> Turn:
        return Turn(self.question, self.answer, self.query, self.short_answer, list(self.doc_ids))


class ConversationFields(BaseModel):
    """Follow-up fields of a request (issue 16)."""

    history: list[HistoryTurn] | None = Field(None, max_length=100, description="Earlier turns, oldest first: "
                                              "a follow-up is made standalone from them")
    conversation_id: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{32}$",
                                        description="Continue a stored conversation (its turns are the history)")

    def turns(self) -> list[Turn]:
        return [h.turn() for h in self.history or []]


class AskRequest(SearchRequest, ConversationFields):
    pass


class ConversationAnswer(AskResponse):
    conversation_id: str | None = Field(None, description="The stored conversation (null when storage is off)")
    turn: int | None = Field(None, description="This turn's number in the conversation (from 1)")
    query_used: str = Field("", description="The standalone query searched and answered: the question, or its "
                            "rewrite from the history")
    rewrite: str = Field("none", description="none | rules | llm: how query_used was made")
    suggestions: list[str] = Field([], description="Up to three follow-up questions the cited passages answer")


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
