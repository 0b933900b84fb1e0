"""Plain data records that flow through the pipeline (pydantic stays at the API edge)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rag.core import docmeta


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
    """Metadata filters on search; ``None`` fields do not filter. Text fields match a part of the value
    (``doc_number`` the whole number, brackets normalised); date ranges are inclusive ISO dates. ``as_of`` and
    ``include_superseded`` choose documents by validity (``rag/core/docmeta.py``; the pipeline applies them,
    with ``Settings.include_superseded`` as the default)."""

    doc_ids: list[str] | None = None
    collection: str | None = None
    # the caller's readable collections (issue 20; None = all), set by the API from its principal, never by a client
    collections: frozenset[str] | None = field(default=None, kw_only=True)
    types: list[str] | None = None  # source type: txt, md, pdf, docx, html
    tags: list[str] | None = None  # every tag must be present
    date_from: str | None = None  # the document's date: meta["date"], else 发布日期, else 成文日期
    date_to: str | None = None
    title: str | None = None
    issuer: str | None = None  # 发文机关
    doc_number: str | None = None  # 发文字号
    subjects: list[str] | None = None  # every 主题词 must be present
    effective_from: str | None = None  # 施行日期
    effective_to: str | None = None
    expires_from: str | None = None  # 有效期至
    expires_to: str | None = None
    as_of: str | None = None  # validity on this day instead of today
    include_superseded: bool | None = None

    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def match(self, doc: Document) -> bool:
        """The metadata filters (validity is the pipeline's: ``docmeta.usable``)."""
        m = doc.meta
        if self.doc_ids is not None and doc.doc_id not in self.doc_ids:
            return False
        if self.collection is not None and m.get("collection", "default") != self.collection:
            return False
        if self.collections is not None and m.get("collection", "default") not in self.collections:
            return False
        if self.types is not None and m.get("type") not in self.types:
            return False
        if self.tags and not set(self.tags) <= set(m.get("tags") or []):
            return False
        if self.title is not None and not (docmeta.contains(doc.title, self.title)
                                           or docmeta.contains(m.get("title"), self.title)):
            return False
        if self.issuer is not None and not docmeta.contains(m.get("issuer"), self.issuer):
            return False
        if self.doc_number is not None and \
                docmeta.normalise_number(self.doc_number) != docmeta.normalise_number(str(m.get("doc_number") or "")):
            return False
        if self.subjects and not set(self.subjects) <= set(m.get("subjects") or []):
            return False
        return (docmeta.in_range(docmeta.issued(m), self.date_from, self.date_to)
                and docmeta.in_range(m.get("date_effective"), self.effective_from, self.effective_to)
                and docmeta.in_range(m.get("date_expires"), self.expires_from, self.expires_to))
