"""The JSON shape of results: passages, citations and answers, as ``rag ask --json`` prints them and the HTTP
API returns them (its response models use these). Built from the plain records in ``rag.core.types``.

May import: ``rag.core``. Pydantic models live only here and in ``api/schemas.py`` (requests), at the edges.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rag.core.types import Answer, Citation, Hit


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
    path: str = Field("", description="Article path in a structured document (公文): \"第三章 > 第十二条\"")

    @classmethod
    def from_hit(cls, h: Hit) -> Passage:
        c = h.chunk
        return cls(chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, section=c.section, text=c.text,
                   start=c.start, end=c.end, score=round(h.score, 6), rank=h.rank,
                   dense_score=None if h.dense is None else round(h.dense, 4),
                   bm25_score=None if h.bm25 is None else round(h.bm25, 4), kind=c.kind, path=c.path)


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
    path: str = Field("", description="Article path of the cited passage (\"第三章 > 第十二条\"), \"\" when none")
    label: str = Field("", description="How to cite it: 《title》 plus the article (\"《…办法》第十二条\")")

    @classmethod
    def from_citation(cls, c: Citation) -> CitationOut:
        ch = c.hit.chunk
        return cls(n=c.n, doc_id=ch.doc_id, chunk_id=ch.chunk_id, title=ch.title, start=ch.start, end=ch.end,
                   quote=c.quote, quote_start=c.quote_start, quote_end=c.quote_end, score=c.support,
                   supported=c.supported, path=ch.path, label=label(ch.title, ch.path))


def label(title: str, path: str) -> str:
    """``《title》`` and the innermost article of ``path`` (``第三章 > 第十二条`` -> ``《…》第十二条``)."""
    t = title.strip()
    if t and not t.startswith("《"):
        t = f"《{t}》"
    last = path.split(">")[-1].strip() if path else ""
    return f"{t}{last}"


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
