"""Plain data records that flow through the pipeline (pydantic stays at the API edge)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    """A source document as loaded: ``text`` is the original file text, spans index into it."""

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sentence:
    """A sentence of a chunk: ``text`` is cleaned; ``start``/``end`` are offsets in the original document."""

    text: str
    start: int
    end: int


@dataclass
class Chunk:
    chunk_id: int
    doc_id: str
    text: str
    start: int
    end: int
    title: str = ""
    section: str = ""
    kind: str = "body"  # body | caption
    sentences: list[Sentence] = field(default_factory=list)
    page: int | None = None  # 1-based page of the chunk start (PDF sources)
    # 公文 structure at the chunk start, outermost first ("第三章 > 第十二条"; "" when the text has none):
    # rag/ingest/clean.py structure_label, rag/ingest/chunking.py
    path: str = ""

    def embed_text(self) -> str:
        """Text given to the embedder and BM25: section heading gives context to short chunks."""
        return f"{self.section}\n{self.text}" if self.section else self.text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Chunk:
        sents = [Sentence(**s) for s in d.get("sentences", [])]
        return cls(**{**d, "sentences": sents})


@dataclass
class Hit:
    """One retrieved chunk with its fused score and per-retriever scores."""

    chunk: Chunk
    score: float
    rank: int
    dense: float | None = None
    bm25: float | None = None


@dataclass
class Citation:
    n: int
    hit: Hit
    quote: str
    quote_start: int
    quote_end: int
    supported: bool = True
    support: float = 0.0


@dataclass
class Answer:
    text: str
    answerable: bool
    citations: list[Citation]
    hits: list[Hit]
    message: str = ""
    mode: str = "extractive"
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    short_answer: str = ""  # the bare answer span (rag/answer/reader.py), "" when none was found
    short_citation: int | None = None  # the [n] of the citation it was read from


@dataclass
class Filters:
    """Metadata filters on search; ``None`` fields do not filter."""

    doc_ids: list[str] | None = None
    collection: str | None = None
    types: list[str] | None = None  # source type: txt, md, pdf, docx, html
    tags: list[str] | None = None  # every tag must be present
    date_from: str | None = None  # ISO dates compared with meta["date"]
    date_to: str | None = None

    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def match(self, doc: Document) -> bool:
        m = doc.meta
        if self.doc_ids is not None and doc.doc_id not in self.doc_ids:
            return False
        if self.collection is not None and m.get("collection", "default") != self.collection:
            return False
        if self.types is not None and m.get("type") not in self.types:
            return False
        if self.tags and not set(self.tags) <= set(m.get("tags") or []):
            return False
        date = str(m.get("date") or "")
        if self.date_from and (not date or date < self.date_from):
            return False
        return not (self.date_to and (not date or date > self.date_to))
