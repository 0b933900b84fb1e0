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
