"""Request/response models at the HTTP edge."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.core.types import Answer, Citation, Filters, Hit

MAX_QUERY = 1000


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=MAX_QUERY, description="Question or keywords")
    top_k: int = Field(5, ge=1, le=100, description="Number of passages to return")
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
        v = v.strip()
        if not v:
            raise ValueError("query is empty or whitespace: send a question or keywords")
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in v):
            raise ValueError("query contains control characters: send plain text")
        return v


class AskRequest(SearchRequest):
    pass


class Passage(BaseModel):
    chunk_id: int
    doc_id: str
    title: str
    section: str = ""
    text: str
    start: int = Field(..., description="Start offset of the passage in the original document text")
    end: int = Field(..., description="End offset (exclusive) in the original document text")
    score: float = Field(..., description="Fused rank score (RRF in hybrid mode)")
    rank: int
    dense_score: float | None = Field(None, description="Cosine similarity to the query")
    bm25_score: float | None = None
    kind: str = "body"

    @classmethod
    def from_hit(cls, h: Hit) -> Passage:
        c = h.chunk
        return cls(chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, section=c.section, text=c.text,
                   start=c.start, end=c.end, score=round(h.score, 6), rank=h.rank,
                   dense_score=None if h.dense is None else round(h.dense, 4),
                   bm25_score=None if h.bm25 is None else round(h.bm25, 4), kind=c.kind)


class SearchResponse(BaseModel):
    results: list[Passage]
    took_ms: float


class CitationOut(BaseModel):
    n: int = Field(..., description="The [n] marker in the answer text")
    doc_id: str
    chunk_id: int
    title: str
    start: int = Field(..., description="Start of the passage in the original document")
    end: int
    quote: str = Field(..., description="The supporting sentence")
    quote_start: int = Field(..., description="Start of the quote in the original document")
    quote_end: int
    score: float
    supported: bool

    @classmethod
    def from_citation(cls, c: Citation) -> CitationOut:
        ch = c.hit.chunk
        return cls(n=c.n, doc_id=ch.doc_id, chunk_id=ch.chunk_id, title=ch.title, start=ch.start, end=ch.end,
                   quote=c.quote, quote_start=c.quote_start, quote_end=c.quote_end, score=c.support,
                   supported=c.supported)


class AskResponse(BaseModel):
    answer: str = Field(..., description="Answer with [n] citation markers; empty when not answerable")
    answerable: bool
    message: str = Field("", description="Why there is no answer, in the language of the question")
    short_answer: str = Field("", description="The bare answer span read from a cited sentence (\"45.8亿元\"); "
                              "empty when none was found or not answerable")
    short_citation: int | None = Field(None, description="The [n] of the citation the short answer was read from")
    citations: list[CitationOut]
    passages: list[Passage]
    mode: str = "extractive"
    warnings: list[str] = []
    timings: dict[str, float] = {}
    took_ms: float = 0.0

    @classmethod
    def from_answer(cls, a: Answer, took_ms: float = 0.0) -> AskResponse:
        return cls(answer=a.text, answerable=a.answerable, message=a.message, short_answer=a.short_answer,
                   short_citation=a.short_citation, citations=[CitationOut.from_citation(c) for c in a.citations],
                   passages=[Passage.from_hit(h) for h in a.hits], mode=a.mode, warnings=a.warnings,
                   timings=a.timings, took_ms=round(took_ms, 2))


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
